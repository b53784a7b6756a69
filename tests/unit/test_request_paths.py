"""The per-request fast paths answer exactly what the plain scipy / textbook definitions answer."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest

from service.ml.datasets import Dataset, load_dataset
from service.ml.recommenders import Collaborative, ContentBased, Hybrid
from service.ml.recommenders import content as content_module
from service.ml.recommenders.base import FloatArray, IntArray
from service.ml.recommenders.mmr import mmr
from service.sample_data import SAMPLE_DATA_DIR


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(SAMPLE_DATA_DIR)


@pytest.fixture(scope="module")
def content(demo: Dataset) -> ContentBased:
    return ContentBased().fit(demo)


@pytest.fixture(scope="module")
def collaborative(demo: Dataset) -> Collaborative:
    return Collaborative(n_components=8).fit(demo)


def same_bits(a: FloatArray, b: FloatArray) -> bool:
    """Equal shapes and dtypes, and every value equal to the last bit."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def candidate_sets(n_items: int) -> list[IntArray]:
    rng = np.random.default_rng(0)
    sets = [rng.choice(n_items, size, replace=False) for size in (1, 2, 7, 30, n_items)]
    sets.append(np.array([3, 3, 5, 3]))  # repeated items
    sets.append(np.array([], dtype=np.intp))
    return [np.asarray(s, dtype=np.intp) for s in sets]


def assert_pairwise_is_the_sparse_product(content: ContentBased) -> None:
    vectors = content.item_vectors_
    for items in candidate_sets(vectors.shape[0]):
        expected = np.asarray((vectors[items] @ vectors[items].T).toarray(), dtype=np.float64)
        assert same_bits(content.pairwise(items), expected), items


def test_pairwise_equals_the_sparse_product_bit_for_bit(content: ContentBased) -> None:
    assert_pairwise_is_the_sparse_product(content)


def test_pairwise_of_many_long_rows_equals_the_sparse_product_bit_for_bit(
    content: ContentBased, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content_module, "DENSE_PAIRWISE_LIMIT", 0)
    assert_pairwise_is_the_sparse_product(content)


def test_similarity_equals_the_sparse_product_bit_for_bit(content: ContentBased) -> None:
    vectors = content.item_vectors_
    for item in range(vectors.shape[0]):
        for others in candidate_sets(vectors.shape[0]):
            expected = (vectors[others] @ vectors[item].T).toarray().ravel().astype(np.float64)
            assert same_bits(content.similarity(item, others), expected), (item, others)


def test_similar_items_scores_are_the_cosines_of_the_sparse_product(
    content: ContentBased,
) -> None:
    vectors = content.item_vectors_
    ids = list(content.catalogue_.ids)
    for item in range(vectors.shape[0]):
        cosines = (vectors @ vectors[item].T).toarray().ravel().astype(np.float64)
        for other, score in content.similar_items(ids[item], n=10):
            assert score == cosines[ids.index(other)]


def reference_profile_scores(
    model: ContentBased, items: IntArray, ratings: FloatArray
) -> FloatArray:
    """The content scores written with scipy's own sparse operations."""
    weights = ratings - ratings.mean()
    if not np.any(weights):
        weights = ratings
    profile = np.asarray(model.item_vectors_[items].T @ weights, dtype=np.float64)
    norm = float(np.sqrt(np.einsum("i,i->", profile, profile)))
    if norm == 0.0:
        return np.zeros(len(model.catalogue_))
    return np.asarray(model.item_vectors_ @ (profile / norm), dtype=np.float64)


def test_content_recommendations_score_as_the_sparse_profile(content: ContentBased) -> None:
    for user_id in list(content.user_ids_)[:60]:
        row = content.user_position(user_id)
        assert row is not None
        expected = reference_profile_scores(content, *content.user_ratings(row))
        ids = list(content.catalogue_.ids)
        for item_id, score in content.recommend(user_id, n=15, exclude_seen=False).items:
            assert score == expected[ids.index(item_id)]


def test_visitor_with_repeated_and_equal_ratings_scores_as_the_sparse_profile(
    content: ContentBased,
) -> None:
    ids = list(content.catalogue_.ids)
    for ratings in ([(ids[2], 4.0), (ids[2], 4.0), (ids[9], 4.0)], [(ids[0], 5.0), (ids[7], 1.0)]):
        positions = np.array([ids.index(i) for i, _ in ratings], dtype=np.intp)
        values = np.array([r for _, r in ratings])
        expected = reference_profile_scores(content, positions, values)
        for item_id, score in content.recommend_for_ratings(ratings, n=10).items:
            assert score == expected[ids.index(item_id)]


def textbook_mmr(relevance: FloatArray, similarity: FloatArray, n: int, lam: float) -> list[int]:
    picked: list[int] = []
    for _ in range(min(n, len(relevance))):
        gains = [
            -np.inf
            if i in picked
            else lam * relevance[i]
            - (1.0 - lam) * max((similarity[p][i] for p in picked), default=0.0)
            for i in range(len(relevance))
        ]
        picked.append(int(np.argmax(gains)))
    return picked


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 0.95])
def test_mmr_picks_what_the_greedy_definition_picks(content: ContentBased, lam: float) -> None:
    rng = np.random.default_rng(1)
    for size in (1, 5, 40):
        items = rng.choice(len(content.catalogue_), size, replace=False).astype(np.intp)
        relevance = rng.random(size)
        similarity = content.pairwise(items)
        assert mmr(relevance, similarity, 10, lam).tolist() == textbook_mmr(
            relevance, similarity, 10, lam
        )


def test_serving_leaves_the_artifact_unchanged(demo: Dataset) -> None:
    model = ContentBased().fit(demo)
    fresh = cloudpickle.dumps(model)
    model.recommend("u001")
    assert cloudpickle.dumps(model) == fresh
    loaded = cloudpickle.loads(fresh)
    assert loaded.recommend("u002") == model.recommend("u002")
    assert loaded.user_position("nobody") is None


def test_refit_on_other_users_finds_the_new_users(demo: Dataset) -> None:
    model = ContentBased().fit(demo)
    assert not model.recommend("u001").cold_start
    interactions = demo.interactions
    renamed = interactions.assign(user_id="v-" + interactions["user_id"].astype(str))
    model.fit(demo.with_interactions(renamed))
    assert model.recommend("u001").cold_start
    assert not model.recommend("v-u001").cold_start
    assert model.user_position("v-u001") is not None


def test_reattached_hybrid_serves_the_users_of_its_new_sub_models(
    demo: Dataset, content: ContentBased, collaborative: Collaborative
) -> None:
    hybrid = Hybrid(content=content, collaborative=collaborative).fit(demo)
    assert not hybrid.recommend("u001").cold_start
    interactions = demo.interactions
    renamed = demo.with_interactions(
        interactions.assign(user_id="v-" + interactions["user_id"].astype(str))
    )
    hybrid.attach(ContentBased().fit(renamed), Collaborative(n_components=8).fit(renamed))
    assert hybrid.recommend("u001").cold_start
    assert not hybrid.recommend("v-u001").cold_start
