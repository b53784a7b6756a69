"""Real datasets from ../shared/data: the readers at full size and the accuracy targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.ml.datasets import Dataset, load_dataset
from service.ml.evaluation import evaluate

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MOVIELENS = SHARED / "movielens-latest-small"
TOURISM = SHARED / "indonesia-tourism"

pytestmark = pytest.mark.realdata


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: real-data tests need ../shared/data beside the project")
    return folder


@pytest.fixture(scope="module")
def movielens() -> Dataset:
    return load_dataset(require(MOVIELENS))


def test_tourism_reader_applies_the_duplicate_policy() -> None:
    dataset = load_dataset(require(TOURISM))

    assert dataset.layout == "tourism"
    assert dataset.n_items == 437
    assert dataset.n_users == 300
    assert dataset.merged_duplicates == 403
    assert dataset.n_interactions == 10_001 - 403
    assert set(dataset.items["categories"].sum()) == {
        "Budaya",
        "Taman Hiburan",
        "Cagar Alam",
        "Bahari",
        "Pusat Perbelanjaan",
        "Tempat Ibadah",
    }


def test_movielens_reader_at_full_size(movielens: Dataset) -> None:
    assert (movielens.n_items, movielens.n_users, movielens.n_interactions) == (9742, 610, 100_836)
    toy_story = movielens.items.set_index("id").loc["1"]
    assert toy_story["name"] == "Toy Story (1995)"
    assert "pixar" in toy_story["description"]


@pytest.mark.slow
def test_movielens_accuracy_targets(movielens: Dataset) -> None:
    results = evaluate(movielens, hybrid_weight="auto")
    popularity = results["popularity"]["ndcg"]
    collaborative = results["collaborative"]["ndcg"]
    content = results["content"]["ndcg"]

    assert collaborative >= 1.4 * popularity
    assert results["hybrid_lambda_1.0"]["ndcg"] >= max(content, collaborative)
