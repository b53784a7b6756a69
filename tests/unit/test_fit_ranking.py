"""The fit-time ranking's shortcuts (block selection, the similarity table, threads) rank exactly
what the per-user definitions rank."""

from __future__ import annotations

import multiprocessing
import os
import threading

import cloudpickle
import numpy as np
import pytest

from service.ml.datasets import Dataset, load_dataset
from service.ml.model_set import fit_model_set
from service.ml.recommenders import Collaborative, ContentBased, Hybrid, shortlists, weight_search
from service.ml.recommenders import content as content_module
from service.ml.recommenders.shortlists import top_k, top_k_rows
from service.sample_data import SAMPLE_DATA_DIR

TABLES = ("shortlist_", "shortlist_scores_", "neighbours_", "neighbour_scores_")


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(SAMPLE_DATA_DIR)


def ranked_tables(dataset: Dataset) -> dict[tuple[str, str], np.ndarray]:
    models = fit_model_set(dataset, hybrid_weight=0.6).models
    tables = {
        (name, table): getattr(model, table) for name, model in models.items() for table in TABLES
    }
    tables[("hybrid", "spans_")] = models["hybrid"].spans_
    return tables


def assert_same_tables(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, table in expected.items():
        assert table is not None, key
        assert got[key].dtype == table.dtype, key
        assert np.array_equal(got[key], table), key


def best_by_definition(scores: np.ndarray, n: int, exclude: np.ndarray) -> np.ndarray:
    """The finite scores not excluded, highest first and ties by position: the first ``n``."""
    allowed = np.isfinite(scores)
    allowed[exclude] = False
    positions = np.flatnonzero(allowed)
    return positions[np.lexsort((positions, -scores[positions]))][:n]


@pytest.mark.parametrize("seed", range(6))
def test_top_k_is_the_n_highest_scores_with_ties_broken_by_position(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        m = int(rng.integers(1, 3000))
        n = int(rng.integers(1, 150))
        # Few distinct values in some rows (long ties), a continuum in others.
        scores = np.round(rng.normal(size=m), int(rng.integers(0, 4)))
        scores[rng.random(m) < 0.05] = np.nan
        scores[rng.random(m) < 0.05] = -np.inf
        exclude = rng.choice(m, int(rng.integers(0, m + 1)), replace=False).astype(np.intp)
        got = top_k(scores, n, exclude)
        expected = best_by_definition(scores, n, exclude)
        assert got.dtype == np.intp and np.array_equal(got, expected), (m, n)


@pytest.mark.parametrize("seed", range(4))
def test_selecting_for_a_block_picks_what_top_k_picks_for_each_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, m, n = 40, 300, 25
    # Scores rounded to one decimal: ties at the n-th score in most rows, across the partition.
    scores = np.round(rng.random((rows, m)), 1)
    scores[3, 10:20] = np.nan
    scores[5] = 0.0  # every score tied
    excludes = [
        rng.choice(m, size, replace=False).astype(np.intp) for size in rng.integers(0, 40, rows)
    ]
    excludes[7] = np.arange(m - 10, dtype=np.intp)  # fewer than n left
    excludes[8] = np.empty(0, dtype=np.intp)
    got = top_k_rows(scores, n, excludes)
    expected = [top_k(row, n, exclude) for row, exclude in zip(scores, excludes, strict=True)]
    assert len(got) == rows
    for row, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.dtype == e.dtype and np.array_equal(g, e), row
    assert got[7].size == 10
    # The block's scores are left as they were.
    assert np.isnan(scores[3, 10])


@pytest.mark.parametrize("n", [1, 3, 25, 99])
def test_selecting_for_a_block_with_infinities_and_long_excluded_runs_picks_what_top_k_picks(
    n: int,
) -> None:
    rng = np.random.default_rng(n)
    rows, m = 12, 400
    scores = np.round(rng.normal(size=(rows, m)), 2)
    scores[0, [5, 50]] = np.inf  # top_k's own handling of +inf
    scores[1, ::3] = -np.inf
    scores[2, :] = np.round(scores[2], 0)  # few distinct scores: long ties at the n-th
    scores[3, 7] = np.nan
    excludes = [np.empty(0, dtype=np.intp) for _ in range(rows)]
    excludes[4] = np.arange(0, m // 2, dtype=np.intp)  # every score of the first half
    excludes[5] = np.arange(m - n - 1, dtype=np.intp)  # one score more than n left
    excludes[6] = rng.choice(m, m - 2, replace=False).astype(np.intp)  # fewer than n left
    got = top_k_rows(scores, n, excludes)
    expected = [top_k(row, n, exclude) for row, exclude in zip(scores, excludes, strict=True)]
    for row, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.dtype == e.dtype and np.array_equal(g, e), row
    assert got[6].size == min(n, 2)


def test_selecting_more_than_a_row_holds_gives_every_row_whole() -> None:
    scores = np.arange(12, dtype=np.float64).reshape(3, 4)
    got = top_k_rows(scores, 10, [np.array([0], dtype=np.intp)] * 3)
    assert [list(order) for order in got] == [[3, 2, 1]] * 3


def test_the_similarity_table_holds_what_pairwise_and_similar_items_compute(demo: Dataset) -> None:
    content = ContentBased().fit(demo)
    table = content.similarity_table()
    assert table is not None and table.shape == (len(content.catalogue_),) * 2
    rng = np.random.default_rng(0)
    for size in (1, 5, 30, len(content.catalogue_)):
        items = rng.choice(len(content.catalogue_), size, replace=False).astype(np.intp)
        got, expected = content_module.pairwise_in(table, items), content.pairwise(items)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), size
    for item in (0, 17):
        assert np.array_equal(table[item].astype(np.float64), content._item_scores(item))


def test_a_catalogue_too_large_for_the_table_ranks_the_same(
    demo: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ranked_tables(demo)
    monkeypatch.setattr(content_module, "SIMILARITY_TABLE_BYTES", 0)
    assert ContentBased().fit(demo, rank=False).similarity_table() is None
    assert_same_tables(ranked_tables(demo), expected)


def test_ranking_on_two_threads_gives_what_one_thread_gives(
    demo: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 7 users (and items), so that the 300 users and 62 items make many blocks.
    monkeypatch.setattr(shortlists, "BLOCK_CELLS", 7 * len(demo.items))
    monkeypatch.setattr(shortlists, "ranking_threads", lambda: 1)
    expected = ranked_tables(demo)
    seen_threads: set[str] = set()
    block_scores = ContentBased._block_scores

    def recording(self: ContentBased, rows: np.ndarray) -> np.ndarray:
        seen_threads.add(threading.current_thread().name)
        return block_scores(self, rows)

    monkeypatch.setattr(ContentBased, "_block_scores", recording)
    monkeypatch.setattr(shortlists, "ranking_threads", lambda: 2)
    assert_same_tables(ranked_tables(demo), expected)
    assert len(seen_threads) == 2 and all(name.startswith("ranking") for name in seen_threads)


def fold_threads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names of the threads the weight search's folds run on, from now on."""
    seen: set[str] = set()
    fold = weight_search._validate_fold

    def recording(*args: object, **kwargs: object) -> object:
        seen.add(threading.current_thread().name)
        return fold(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(weight_search, "_validate_fold", recording)
    return seen


def test_the_auto_weights_folds_on_two_threads_choose_what_one_thread_chooses(
    demo: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    def auto_hybrid() -> Hybrid:
        model = Hybrid(content_weight="auto", collaborative=Collaborative(n_components=8))
        return model.fit(demo, rank=False)

    monkeypatch.setattr(shortlists, "ranking_threads", lambda: 1)
    alone = auto_hybrid()
    seen_threads = fold_threads(monkeypatch)
    monkeypatch.setattr(shortlists, "ranking_threads", lambda: 2)
    together = auto_hybrid()
    assert len(seen_threads) == 2  # the two folds ran on two threads
    assert together.validation_ndcg_ == alone.validation_ndcg_  # every mean, exactly
    assert together.weights_ == alone.weights_


class OneAtATime(Collaborative):
    """A model whose fits must not overlap (as Spark's ALS)."""

    fits_on_threads = False


def test_the_folds_of_a_model_that_cannot_fit_on_threads_run_one_after_the_other(
    demo: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_threads = fold_threads(monkeypatch)
    monkeypatch.setattr(shortlists, "ranking_threads", lambda: 2)
    model = Hybrid(content_weight="auto", collaborative=OneAtATime(n_components=8))
    model.fit(demo, rank=False)
    assert seen_threads == {threading.current_thread().name}
    assert set(model.validation_ndcg_) == set(weight_search.AUTO_GRID)


def test_the_similarity_table_does_not_outlive_the_fit(demo: Dataset) -> None:
    models = fit_model_set(demo, hybrid_weight=0.6).models
    content = models["content_based"]
    assert "_similarity_cache" not in vars(content)
    content.__dict__["_similarity_cache"] = content.similarity_table()
    assert "_similarity_cache" not in vars(cloudpickle.loads(cloudpickle.dumps(content)))


def test_content_scores_a_block_of_users_in_one_product_as_it_scores_each(
    demo: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = ranked_tables(demo)
    content = ContentBased().fit(demo, rank=False)
    rows = np.arange(len(content.user_ids_), dtype=np.intp)
    one_by_one = np.stack([content._user_scores(int(row)) for row in rows])
    # Every catalogue then counts as past the cache, and 64 users share each product.
    monkeypatch.setattr(content_module, "BLOCK_PRODUCT_ENTRIES", 0)
    block = content._block_scores(rows)
    assert block.dtype == one_by_one.dtype and np.array_equal(block, one_by_one)
    assert_same_tables(ranked_tables(demo), expected)


def _ranking_thread_priorities() -> list[tuple[int, int]]:
    """In a fresh process: lower the priority as a training worker does, then rank on threads."""
    from service.serving import trainer

    trainer._lower_priority()
    shortlists.ranking_threads = lambda: 2  # type: ignore[assignment]
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def fill(start: int) -> None:
        with lock:
            tid = threading.get_native_id()
            seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, tid)))

    shortlists.for_each_block(fill, range(8))
    return seen


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_training_workers_ranking_threads_keep_its_lower_priority() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        seen = pool.apply(_ranking_thread_priorities)
    assert len(seen) == 8
    assert {policy for policy, _ in seen} == {os.SCHED_IDLE}
    assert {nice for _, nice in seen} == {min(base + 10, 19)}
