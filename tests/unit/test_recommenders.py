"""The shared recommender contract, run against every model, plus each model's own behaviour."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import cloudpickle
import numpy as np
import pytest

from service.ml.datasets import Dataset, load_dataset
from service.ml.recommenders import (
    Collaborative,
    ContentBased,
    Hybrid,
    NotFittedError,
    Popularity,
    Recommender,
    UnknownItemError,
)
from service.sample_data import SAMPLE_DATA_DIR


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(SAMPLE_DATA_DIR)


@pytest.fixture(scope="module")
def fitted(demo: Dataset) -> dict[str, Recommender]:
    content = ContentBased().fit(demo)
    collaborative = Collaborative(n_components=8).fit(demo)
    return {
        "content_based": content,
        "collaborative": collaborative,
        "hybrid": Hybrid(content=content, collaborative=collaborative).fit(demo),
        "popularity": Popularity().fit(demo),
    }


def categories_of(dataset: Dataset, item_ids: list[str]) -> Counter[str]:
    table = dataset.items.set_index("id")["categories"]
    return Counter(c for item in item_ids for c in table[item])


class RecommenderContract:
    """What every recommender promises; subclasses name the model and how to build it."""

    model_name: ClassVar[str]

    def build(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture
    def model(self, fitted: dict[str, Recommender]) -> Recommender:
        return fitted[self.model_name]

    def test_every_query_before_fit_raises_not_fitted(self) -> None:
        model = self.build()
        with pytest.raises(NotFittedError):
            model.recommend("u001")
        with pytest.raises(NotFittedError):
            model.recommend_for_ratings([("1", 5.0)])
        with pytest.raises(NotFittedError):
            model.similar_items("1")

    def test_fit_returns_self_and_keeps_hyperparameters_untouched(self, demo: Dataset) -> None:
        model = self.build()
        params = model.get_params(deep=False)
        assert model.fit(demo) is model
        assert model.get_params(deep=False) == params

    def test_known_user_gets_n_unseen_distinct_items(self, model: Recommender) -> None:
        row = model.user_position("u001")
        assert row is not None
        seen = {str(model.catalogue_.ids[i]) for i in model.seen(row)}

        result = model.recommend("u001", n=10)

        ids = [item for item, _ in result.items]
        assert len(ids) == 10
        assert len(set(ids)) == 10
        assert not seen & set(ids)
        assert not result.cold_start

    def test_exclude_seen_false_can_return_rated_items(self, model: Recommender) -> None:
        everything = model.recommend("u001", n=len(model.catalogue_), exclude_seen=False)
        row = model.user_position("u001")
        assert row is not None
        seen = {str(model.catalogue_.ids[i]) for i in model.seen(row)}
        assert seen <= {item for item, _ in everything.items}

    def test_unknown_user_gets_the_popular_items_marked_cold_start(
        self, model: Recommender, demo: Dataset
    ) -> None:
        result = model.recommend("somebody-new", n=5)

        counts = demo.interactions["item_id"].astype(str).value_counts()
        assert result.cold_start
        assert [item for item, _ in result.items] == list(counts.index[:5])

    def test_fold_in_excludes_the_visitors_items_and_needs_no_retraining(
        self, model: Recommender
    ) -> None:
        before = cloudpickle.dumps(model)
        result = model.recommend_for_ratings([("1", 5.0), ("4", 4.0)], n=8)

        ids = [item for item, _ in result.items]
        assert len(ids) == 8
        assert not {"1", "4"} & set(ids)
        assert cloudpickle.dumps(model) == before

    def test_fold_in_without_ratings_is_cold_start(self, model: Recommender) -> None:
        assert model.recommend_for_ratings([], n=3).cold_start

    def test_unknown_items_raise_a_specific_error(self, model: Recommender) -> None:
        with pytest.raises(UnknownItemError, match="'nope'"):
            model.similar_items("nope")
        with pytest.raises(UnknownItemError):
            model.recommend_for_ratings([("1", 5.0), ("nope", 3.0)])

    def test_similar_items_exclude_the_item_and_are_ranked(self, model: Recommender) -> None:
        similar = model.similar_items("1", n=5)

        assert len(similar) == 5
        assert "1" not in [item for item, _ in similar]
        scores = [score for _, score in similar]
        assert scores == sorted(scores, reverse=True)

    @pytest.mark.parametrize("n", [0, -3, 2.5, True])
    def test_bad_n_is_refused(self, model: Recommender, n: Any) -> None:
        with pytest.raises(ValueError, match="n must be a positive integer"):
            model.recommend("u001", n=n)

    def test_pickle_round_trip_gives_the_same_recommendations(self, model: Recommender) -> None:
        copy = cloudpickle.loads(cloudpickle.dumps(model))
        if isinstance(copy, Hybrid):
            assert isinstance(model, Hybrid)
            assert model.content_ is not None and model.collaborative_ is not None
            copy.attach(model.content_, model.collaborative_)
        assert copy.recommend("u002") == model.recommend("u002")
        assert copy.similar_items("7") == model.similar_items("7")

    def test_components_name_learned_state_with_shapes(self, model: Recommender) -> None:
        components = model.components()
        assert "(" in components["popularity_"]
        assert all(name.endswith("_") for name in components)


class TestContentBased(RecommenderContract):
    model_name = "content_based"

    def build(self) -> Recommender:
        return ContentBased()

    def test_item_vectors_stay_sparse(self, model: Recommender) -> None:
        assert isinstance(model, ContentBased)
        vectors = model.item_vectors_
        assert vectors.shape[0] == len(model.catalogue_)
        assert vectors.nnz < 0.2 * vectors.shape[0] * vectors.shape[1]

    def test_a_beach_lover_gets_mostly_beaches(self, model: Recommender, demo: Dataset) -> None:
        beaches = demo.items[demo.items["categories"].map(lambda c: c == ["Bahari"])]["id"].tolist()
        result = model.recommend_for_ratings([(item, 5.0) for item in beaches[:3]], n=5)

        counts = categories_of(demo, [item for item, _ in result.items])
        assert counts["Bahari"] >= 4

    def test_similar_items_share_categories(self, model: Recommender, demo: Dataset) -> None:
        temple = demo.items[demo.items["categories"].map(lambda c: "Tempat Ibadah" in c)]
        similar = model.similar_items(str(temple["id"].iloc[0]), n=3)
        counts = categories_of(demo, [item for item, _ in similar])
        assert counts["Tempat Ibadah"] >= 2

    def test_negative_category_weight_is_refused(self, demo: Dataset) -> None:
        with pytest.raises(ValueError, match="category_weight"):
            ContentBased(category_weight=-1).fit(demo)


class TestCollaborative(RecommenderContract):
    model_name = "collaborative"

    def build(self) -> Recommender:
        return Collaborative(n_components=8)

    def test_fold_in_of_a_known_user_matches_their_recommendations(
        self, model: Recommender
    ) -> None:
        row = model.user_position("u003")
        assert row is not None
        items, ratings = model.user_ratings(row)
        pairs = [
            (str(model.catalogue_.ids[i]), float(r)) for i, r in zip(items, ratings, strict=True)
        ]

        folded = {item for item, _ in model.recommend_for_ratings(pairs, n=10).items}
        direct = {item for item, _ in model.recommend("u003", n=10).items}
        assert len(folded & direct) >= 7

    def test_factors_have_the_configured_rank(self, model: Recommender) -> None:
        assert isinstance(model, Collaborative)
        assert model.user_factors_.shape == (len(model.user_ids_), 8)
        assert model.item_factors_.shape == (8, len(model.catalogue_))

    def test_unknown_weighting_is_refused(self, demo: Dataset) -> None:
        with pytest.raises(ValueError, match="weighting"):
            Collaborative(weighting="log").fit(demo)  # type: ignore[arg-type]


class TestHybrid(RecommenderContract):
    model_name = "hybrid"

    def build(self) -> Recommender:
        return Hybrid(collaborative=Collaborative(n_components=8))

    def test_lambda_one_keeps_the_blended_order(self, model: Recommender) -> None:
        scores = [s for _, s in model.recommend("u001", n=10, mmr_lambda=1.0).items]
        assert scores == sorted(scores, reverse=True)

    def test_lower_lambda_diversifies_the_list(self, model: Recommender) -> None:
        assert isinstance(model, Hybrid) and model.content_ is not None
        content = model.content_

        def mean_similarity(lam: float) -> float:
            items = [i for i, _ in model.recommend("u001", n=10, mmr_lambda=lam).items]
            positions = np.array([content.catalogue_.position(i) for i in items])
            matrix = content.pairwise(positions)
            return float((matrix.sum() - np.trace(matrix)) / (len(items) * (len(items) - 1)))

        assert mean_similarity(0.3) < mean_similarity(1.0)

    def test_lambda_outside_0_1_is_refused(self, model: Recommender) -> None:
        with pytest.raises(ValueError, match="mmr_lambda"):
            model.recommend("u001", mmr_lambda=1.5)

    def test_unpickled_hybrid_is_detached_until_attached(self, model: Recommender) -> None:
        copy = cloudpickle.loads(cloudpickle.dumps(model))
        with pytest.raises(NotFittedError, match="hybrid"):
            copy.recommend("u001")

    def test_weights_are_recorded_and_validated(self, model: Recommender, demo: Dataset) -> None:
        assert isinstance(model, Hybrid)
        assert model.weights_ == pytest.approx((0.6, 0.4))
        with pytest.raises(ValueError, match="content_weight"):
            Hybrid(content_weight=1.2).fit(demo)

    def test_auto_weight_reports_its_validation_scores(self, demo: Dataset) -> None:
        model = Hybrid(content_weight="auto", collaborative=Collaborative(n_components=8))
        model.fit(demo)
        assert set(model.validation_ndcg_) == {round(w / 10, 2) for w in range(11)}
        assert 0.0 <= model.weights_[0] <= 1.0
        assert model.weights_[0] + model.weights_[1] == pytest.approx(1.0)

    def test_sub_models_from_different_data_are_refused(
        self, fitted: dict[str, Recommender], demo: Dataset
    ) -> None:
        half = demo.with_interactions(demo.interactions.iloc[: demo.n_interactions // 2])
        other = Collaborative(n_components=4).fit(half)
        content = fitted["content_based"]
        assert isinstance(content, ContentBased)
        with pytest.raises(ValueError, match="different data"):
            Hybrid(content=content, collaborative=other).fit(demo)


class TestPopularity(RecommenderContract):
    model_name = "popularity"

    def build(self) -> Recommender:
        return Popularity()
