"""The evaluation protocol and its command line, on the packaged demo data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.ml.datasets import load_dataset
from service.ml.evaluation import evaluate, main
from service.ml.ranking import intra_list_diversity, ndcg_at_k, precision_at_k, recall_at_k
from service.ml.splits import holdout_split, relevant_items
from service.sample_data import SAMPLE_DATA_DIR

ALGORITHMS = {"popularity", "content", "collaborative", "hybrid_lambda_1.0", "hybrid_lambda_0.7"}


def test_metrics_on_a_hand_checked_list() -> None:
    ranked = ["a", "b", "c", "d"]
    relevant = {"b", "d", "z"}

    assert precision_at_k(ranked, relevant, 4) == 0.5
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(
        (1 / np.log2(3) + 1 / np.log2(5)) / ideal
    )
    assert ndcg_at_k(["b", "d", "z"], relevant, 3) == pytest.approx(1.0)
    assert intra_list_diversity(np.eye(3)) == 1.0
    assert intra_list_diversity(np.ones((3, 3))) == 0.0


def test_holdout_keeps_a_fifth_per_user_and_at_least_one_training_item() -> None:
    frame = pd.DataFrame(
        {"user_id": ["a"] * 10 + ["b"] * 5 + ["c"], "item_id": range(16), "rating": 4.0}
    )
    train, test = holdout_split(frame, 0.2, seed=3)

    assert test["user_id"].value_counts().to_dict() == {"a": 2, "b": 1}
    assert set(train["user_id"]) == {"a", "b", "c"}
    assert not set(train.index) & set(test.index)
    again_train, _ = holdout_split(frame, 0.2, seed=3)
    assert again_train.index.equals(train.index)


def test_relevant_items_are_the_well_rated_held_out_ones() -> None:
    test = pd.DataFrame(
        {"user_id": ["a", "a", "b"], "item_id": ["1", "2", "3"], "rating": [4, 3.5, 5]}
    )
    assert relevant_items(test) == {"a": {"1"}, "b": {"3"}}


@pytest.fixture(scope="module")
def demo_results() -> dict[str, dict[str, float | int]]:
    return evaluate(load_dataset(SAMPLE_DATA_DIR), hybrid_weight=0.6)


def test_evaluation_reports_every_algorithm_and_metric(
    demo_results: dict[str, dict[str, float | int]],
) -> None:
    assert set(demo_results) == ALGORITHMS
    for row in demo_results.values():
        for metric in ("precision", "recall", "ndcg", "coverage", "diversity"):
            assert 0.0 <= row[metric] <= 1.0
        assert row["users"] > 200


def test_the_demo_tastes_are_learnable(demo_results: dict[str, dict[str, float | int]]) -> None:
    # The generated ratings carry category and city tastes: personalised models must beat
    # recommending the same popular places to everyone.
    assert demo_results["collaborative"]["ndcg"] > demo_results["popularity"]["ndcg"]
    assert demo_results["hybrid_lambda_1.0"]["ndcg"] > demo_results["popularity"]["ndcg"]


def test_mmr_trades_relevance_for_diversity(
    demo_results: dict[str, dict[str, float | int]],
) -> None:
    assert (
        demo_results["hybrid_lambda_0.7"]["diversity"]
        > demo_results["hybrid_lambda_1.0"]["diversity"]
    )


def test_cli_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SAMPLE_DATA_DIR), "--users", "40", "--hybrid-weight", "0.6"]) == 0
    table = capsys.readouterr().out
    assert "| hybrid_lambda_0.7 |" in table and "NDCG@10" in table

    assert main([str(SAMPLE_DATA_DIR), "--json", "--users", "40", "--hybrid-weight", "0.6"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert set(parsed) == ALGORITHMS
    assert parsed["hybrid_lambda_1.0"]["content_weight"] == 0.6


def test_cli_reports_a_bad_dataset_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
