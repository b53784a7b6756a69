"""Offline evaluation: per-user holdout, ranking metrics, coverage and diversity.

Protocol: hold out a seeded random 20 % of each user's interactions; fit every model on the rest;
for each user with at least one held-out item rated >= 4 (the relevant items), recommend 10 items
excluding the user's training items and score the list.

Usage::

    python -m service.ml.evaluation DATASET_DIR [--json] [--k 10] [--seed 0]
        [--hybrid-weight auto|0.6] [--users N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from service.errors import DatasetError
from service.ml.datasets import Dataset, load_dataset
from service.ml.model_set import HybridWeight, fit_model_set, ordered_models
from service.ml.ranking import intra_list_diversity, ndcg_at_k, precision_at_k, recall_at_k
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Popularity,
    Recommender,
)
from service.ml.splits import HOLDOUT_FRACTION, Holdout

__all__ = ["NDCG", "K", "Scores", "evaluate", "evaluate_model", "holdout_metrics", "main"]

logger = logging.getLogger(__name__)

K = 10
"""Length of the evaluated recommendation lists."""
NDCG = f"ndcg_at_{K}"
"""The metric quality gates compare, as named in the artifacts' metadata.

Metric names use only characters S3 metadata keys keep as they are, so the MinIO console shows
``metric-ndcg_at_10`` rather than an escaped name.
"""


@dataclass(frozen=True)
class Scores:
    """Mean metrics of one algorithm over the evaluated users."""

    precision: float
    recall: float
    ndcg: float
    coverage: float
    diversity: float
    users: int
    seconds: float

    def metrics(self) -> dict[str, float]:
        """The metrics as artifacts record them (``ndcg_at_10``, ...)."""
        return {
            NDCG: self.ndcg,
            f"precision_at_{K}": self.precision,
            f"recall_at_{K}": self.recall,
            "coverage": self.coverage,
            "diversity": self.diversity,
        }


def evaluate_model(
    model: Recommender,
    relevant: dict[str, set[str]],
    content: ContentBased,
    k: int = 10,
    **options: Any,
) -> Scores:
    """Score ``model``'s top-``k`` lists for the users in ``relevant``.

    ``model`` is fitted on the training part of the split.

    ``content`` supplies the item vectors for intra-list diversity; ``options`` go to ``recommend``
    (``mmr_lambda`` for the hybrid).
    """
    start = time.perf_counter()
    precision, recall, ndcg, diversity = [], [], [], []
    shown: set[str] = set()
    for user_id, truth in relevant.items():
        if model.user_position(user_id) is None:
            continue
        ranked = [item for item, _ in model.recommend(user_id, k, **options).items]
        shown.update(ranked)
        precision.append(precision_at_k(ranked, truth, k))
        recall.append(recall_at_k(ranked, truth, k))
        ndcg.append(ndcg_at_k(ranked, truth, k))
        positions = np.array([content.catalogue_.position(i) for i in ranked], dtype=np.intp)
        diversity.append(intra_list_diversity(content.pairwise(positions)))
    return Scores(
        precision=_mean(precision),
        recall=_mean(recall),
        ndcg=_mean(ndcg),
        coverage=len(shown) / len(model.catalogue_),
        diversity=_mean(diversity),
        users=len(ndcg),
        seconds=time.perf_counter() - start,
    )


def holdout_metrics(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    seed: int = 0,
    hybrid_weight: HybridWeight = "auto",
    before_each: Callable[[str], object] | None = None,
) -> dict[str, dict[str, float]]:
    """The quality each model of ``names`` reaches on a seeded holdout of ``dataset``.

    What a training records in each artifact, whoever runs it (the service or
    ``wisata-retrain``): fitted on the training part, the model's top-:data:`K` lists of the
    held-out users give ``ndcg_at_10``, ``precision_at_10``, ``recall_at_10``, ``coverage`` and
    ``diversity``. ``before_each`` is called with each model's name before it is fitted.
    """
    wanted = ordered_models(names)
    holdout = Holdout.of(dataset, seed)
    needed = {ContentBased.name, *wanted}  # the content model's vectors measure diversity
    if Hybrid.name in wanted:
        needed.add(Collaborative.name)
    fitted = fit_model_set(
        holdout.part, needed, hybrid_weight=hybrid_weight, before_each=before_each
    )
    metrics: dict[str, dict[str, float]] = {}
    for name in wanted:
        scores = evaluate_model(fitted.models[name], holdout.relevant, fitted.content, K)
        if scores.users == 0:
            logger.warning(
                "%s: no held-out user has a rating >= 4, so its metrics are zeros; "
                "the dataset is too small to judge the model",
                name,
            )
        metrics[name] = scores.metrics()
    return metrics


def evaluate(
    dataset: Dataset,
    *,
    k: int = K,
    seed: int = 0,
    fraction: float = HOLDOUT_FRACTION,
    hybrid_weight: HybridWeight = "auto",
    max_users: int | None = None,
) -> dict[str, dict[str, float | int]]:
    """Run the protocol on ``dataset``; return metrics keyed by algorithm."""
    holdout = Holdout.of(dataset, seed, fraction)
    relevant = holdout.relevant
    if max_users is not None:
        relevant = dict(sorted(relevant.items())[:max_users])
    start = time.perf_counter()
    popularity = Popularity().fit(holdout.part)
    popularity_seconds = time.perf_counter() - start
    fitted = fit_model_set(holdout.part, hybrid_weight=hybrid_weight)
    hybrid = fitted.models[Hybrid.name]
    assert isinstance(hybrid, Hybrid)
    runs: dict[str, tuple[Recommender, float, dict[str, Any]]] = {
        "popularity": (popularity, popularity_seconds, {}),
        "content": (fitted.content, fitted.seconds[ContentBased.name], {}),
        "collaborative": (
            fitted.models[Collaborative.name],
            fitted.seconds[Collaborative.name],
            {},
        ),
        "hybrid_lambda_1.0": (hybrid, fitted.seconds[Hybrid.name], {"mmr_lambda": 1.0}),
        "hybrid_lambda_0.7": (hybrid, fitted.seconds[Hybrid.name], {"mmr_lambda": 0.7}),
    }
    results: dict[str, dict[str, float | int]] = {}
    for name, (model, seconds, options) in runs.items():
        scores = evaluate_model(model, relevant, fitted.content, k, **options)
        row: dict[str, float | int] = asdict(scores)
        row["fit_seconds"] = seconds
        results[name] = row
    results["hybrid_lambda_1.0"]["content_weight"] = hybrid.weights_[0]
    results["hybrid_lambda_0.7"]["content_weight"] = hybrid.weights_[0]
    return results


def format_table(results: dict[str, dict[str, float | int]], k: int = 10) -> str:
    """Render ``results`` as a markdown table."""
    header = (
        f"| algorithm | precision@{k} | recall@{k} | NDCG@{k} | coverage | diversity | users "
        "| fit s |"
    )
    lines = [header, "|" + " --- |" * 8]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['ndcg']:.3f} "
            f"| {row['coverage']:.3f} | {row['diversity']:.3f} | {row['users']} "
            f"| {row['fit_seconds']:.1f} |"
        )
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _weight(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"the content weight must be within 0..1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m service.ml.evaluation",
        description="Evaluate the recommenders on a dataset.",
    )
    parser.add_argument("dataset", help="dataset directory (wisata, Kaggle tourism or MovieLens)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="holdout seed (default 0)")
    parser.add_argument("--hybrid-weight", type=_weight, default="auto", help="content weight")
    parser.add_argument("--users", type=int, default=None, help="evaluate at most N users")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        dataset = load_dataset(args.dataset)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = evaluate(
        dataset, k=args.k, seed=args.seed, hybrid_weight=args.hybrid_weight, max_users=args.users
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"dataset: {dataset.source} ({dataset.layout}), k={args.k}, seed={args.seed}")
        print(format_table(results, args.k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
