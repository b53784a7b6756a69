"""The per-request fast paths answer exactly what the plain scipy / textbook definitions answer."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from service.ml.datasets import Dataset, load_dataset
from service.ml.model_set import fit_model_set
from service.ml.recommenders import Collaborative, ContentBased, Hybrid
from service.ml.recommenders import content as content_module
from service.ml.recommenders.base import FloatArray, IntArray, Recommender
from service.ml.recommenders.blend import blend, rescale, span
from service.ml.recommenders.mmr import mmr, mmr_rows
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


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_mmr_for_many_users_at_once_picks_what_mmr_picks_for_each(
    content: ContentBased, lam: float
) -> None:
    rng = np.random.default_rng(2)
    size = min(30, len(content.catalogue_))
    candidates = [
        rng.choice(len(content.catalogue_), size, replace=False).astype(np.intp) for _ in range(12)
    ]
    relevance = rng.random((12, size))
    relevance[3] = relevance[3, 0]  # a row of equal relevance: ties go to the first candidate
    similarity = np.stack([content.pairwise(items) for items in candidates])
    picks = mmr_rows(relevance, similarity, lam)
    for row in range(12):
        assert picks[row].tolist() == mmr(relevance[row], similarity[row], size, lam).tolist()


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


# --- shortlists: what fit ranks per known user is what the whole catalogue ranks at request ---


def full_catalogue(model: Recommender) -> Recommender:
    """The same model, fitted the same way but ranking the whole catalogue at every request."""
    return clone(model).set_params(shortlist=0)


@pytest.fixture(scope="module")
def model_pairs(demo: Dataset) -> dict[str, tuple[Recommender, Recommender]]:
    content, collaborative = ContentBased(), Collaborative(n_components=8)
    fitted = {m.name: (m.fit(demo), full_catalogue(m).fit(demo)) for m in (content, collaborative)}
    hybrid = Hybrid(content=fitted["content_based"][0], collaborative=fitted["collaborative"][0])
    plain = Hybrid(
        content=fitted["content_based"][1], collaborative=fitted["collaborative"][1], shortlist=0
    )
    fitted["hybrid"] = (hybrid.fit(demo), plain.fit(demo))
    return fitted


@pytest.mark.parametrize("name", ["content_based", "collaborative", "hybrid"])
def test_shortlisted_answers_are_the_whole_catalogues_answers(
    model_pairs: dict[str, tuple[Recommender, Recommender]], name: str
) -> None:
    shortlisted, plain = model_pairs[name]
    assert shortlisted.shortlist_ is not None and plain.shortlist_ is None
    lambdas: list[float | None] = [None, 0.0, 0.3, 1.0] if name == "hybrid" else [None]
    for user_id in shortlisted.user_ids_:
        for n in (1, 10, 100):
            for lam in lambdas:
                options = {} if lam is None else {"mmr_lambda": lam}
                got = shortlisted.recommend(user_id, n, **options).items
                expected = plain.recommend(user_id, n, **options).items
                assert [item for item, _ in got] == [item for item, _ in expected]
                for (_, score), (_, exact) in zip(got, expected, strict=True):
                    assert score == pytest.approx(exact, rel=1e-6, abs=1e-7)


def test_a_shortlist_holds_the_best_unseen_items_in_answer_order(
    model_pairs: dict[str, tuple[Recommender, Recommender]],
) -> None:
    model, _ = model_pairs["collaborative"]
    ids = list(model.catalogue_.ids)
    for user_id in list(model.user_ids_)[:20]:
        row = model.user_position(user_id)
        assert row is not None
        seen = set(model.seen(row).tolist())
        answer = [ids.index(item) for item, _ in model.recommend(user_id, 100).items]
        assert not seen & set(answer)
        assert len(answer) == len(ids) - len(seen)  # the demo catalogue is smaller than 100


def test_a_hybrid_attached_to_other_sub_models_drops_its_shortlists(
    model_pairs: dict[str, tuple[Recommender, Recommender]], demo: Dataset
) -> None:
    hybrid = clone(model_pairs["hybrid"][0]).fit(demo)
    assert hybrid.shortlist_ is not None
    other = Collaborative(n_components=4).fit(demo)
    hybrid.attach(hybrid.content_, other)
    assert hybrid.shortlist_ is None and hybrid.neighbours_ is None
    expected = Hybrid(
        content=hybrid.content_, collaborative=other, content_weight=hybrid.weights_[0], shortlist=0
    ).fit(demo)
    assert hybrid.recommend("u001").items == expected.recommend("u001").items


def test_models_without_shortlists_still_answer(demo: Dataset) -> None:
    model = Collaborative(n_components=8).fit(demo)
    state = model.__getstate__()
    state.pop("shortlist_")
    state.pop("shortlist_scores_")
    older = Collaborative.__new__(Collaborative)
    older.__setstate__(state)
    plain = full_catalogue(model).fit(demo)
    assert older.recommend("u002", 10).items == plain.recommend("u002", 10).items


@pytest.mark.parametrize("name", ["content_based", "collaborative", "hybrid"])
def test_precomputed_neighbours_are_the_whole_catalogues_similar_items(
    model_pairs: dict[str, tuple[Recommender, Recommender]], name: str
) -> None:
    precomputed, plain = model_pairs[name]
    assert precomputed.neighbours_ is not None and plain.neighbours_ is None
    for item_id in precomputed.catalogue_.ids:
        for n in (1, 10, 100):
            got, expected = precomputed.similar_items(item_id, n), plain.similar_items(item_id, n)
            assert [item for item, _ in got] == [item for item, _ in expected]
            assert item_id not in {item for item, _ in got}
            for (_, score), (_, exact) in zip(got, expected, strict=True):
                assert score == pytest.approx(exact, rel=1e-6, abs=1e-7)


def test_the_model_sets_joint_pass_ranks_what_each_models_own_pass_ranks(demo: Dataset) -> None:
    # fit_model_set fits the sub-models with rank=False and ranks the three in the hybrid's pass.
    joint = fit_model_set(demo, hybrid_weight=0.6).models
    content = ContentBased().fit(demo)
    collaborative = Collaborative().fit(demo)
    alone = {
        "content_based": content,
        "collaborative": collaborative,
        "hybrid": Hybrid(content=content, collaborative=collaborative, content_weight=0.6).fit(
            demo
        ),
    }
    for name, model in alone.items():
        for table in ("shortlist_", "shortlist_scores_", "neighbours_", "neighbour_scores_"):
            assert same_bits(getattr(joint[name], table), getattr(model, table)), (name, table)
    # The hybrid's record of its sub-models covers the tables the joint pass gave them.
    hybrid = cloudpickle.loads(cloudpickle.dumps(joint["hybrid"]))
    hybrid.attach(
        cloudpickle.loads(cloudpickle.dumps(joint["content_based"])),
        cloudpickle.loads(cloudpickle.dumps(joint["collaborative"])),
    )
    assert hybrid.shortlist_ is not None and hybrid.neighbours_ is not None
    assert hybrid.recommend("u001", 10).items == alone["hybrid"].recommend("u001", 10).items


def test_a_sub_model_fitted_with_rank_false_answers_before_and_after_the_hybrids_pass(
    demo: Dataset,
) -> None:
    unranked = ContentBased().fit(demo, rank=False)
    assert unranked.shortlist_ is None and unranked.neighbours_ is None
    plain = full_catalogue(unranked).fit(demo)
    assert unranked.recommend("u003", 10).items == plain.recommend("u003", 10).items
    Hybrid(content=unranked, collaborative=Collaborative(n_components=8).fit(demo)).fit(demo)
    assert unranked.shortlist_ is not None and unranked.neighbours_ is not None
    got, expected = unranked.recommend("u003", 10).items, plain.recommend("u003", 10).items
    assert [item for item, _ in got] == [item for item, _ in expected]
    # Shortlisted scores are kept in float32.
    assert [score for _, score in got] == pytest.approx([s for _, s in expected], rel=1e-6)


def test_fold_in_finds_the_factors_nmf_transform_finds(collaborative: Collaborative) -> None:
    rng = np.random.default_rng(1)
    n_items = len(collaborative.catalogue_)
    for size in (1, 3, 20):
        items = np.sort(rng.choice(n_items, size, replace=False)).astype(np.intp)
        ratings = rng.integers(1, 6, size).astype(np.float64)
        row = sp.csr_matrix(
            (ratings.astype(np.float32), (np.zeros(size, dtype=np.intp), items)),
            shape=(1, n_items),
        )
        expected = collaborative.nmf_.transform(row)[0]
        got = collaborative._fold_in(items, ratings)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("normalization", ["minmax", "zscore"])
def test_blending_from_spans_is_the_weighted_sum_of_rescaled_scores_bit_for_bit(
    normalization: str,
) -> None:
    rng = np.random.default_rng(3)
    constant = np.full(50, 0.25)  # no spread: rescale answers zeros
    for c, f in [(rng.normal(size=50), rng.random(50)), (constant, rng.random(50))]:
        for weights in ([0.3, 0.7], [1.0, 0.0]):
            expected = weights[0] * rescale(c, normalization) + weights[1] * rescale(
                f, normalization
            )
            spans = (span(c, normalization), span(f, normalization))
            assert same_bits(blend(c, f, weights, spans), expected)
