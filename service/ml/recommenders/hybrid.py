"""Hybrid recommender: a per-user normalised blend of content and collaborative scores, then MMR.

The hybrid owns no item or user state of its own: it borrows its two fitted sub-models. Its
artifact therefore holds only the blend (weights, normalisation, MMR settings); the serving side
re-attaches exactly the sub-models it was built with (the artifact records their checksums).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from service.ml.datasets import Dataset
from service.ml.recommenders.base import (
    SHORTLIST,
    FloatArray,
    IntArray,
    Recommendations,
    Recommender,
    is_fitted,
    top_k,
)
from service.ml.recommenders.blend import blend, rescale, span
from service.ml.recommenders.collaborative import Collaborative
from service.ml.recommenders.content import ContentBased
from service.ml.recommenders.joint import rank_items, rank_users, sub_models_digest
from service.ml.recommenders.mmr import mmr
from service.ml.recommenders.weight_search import choose_weight

__all__ = ["Hybrid"]

Normalization = Literal["zscore", "minmax"]
_SHARED_STATE = ("catalogue_", "user_ids_", "user_items_", "popularity_")


class Hybrid(Recommender):
    """Blend content-based and collaborative scores, then re-rank for diversity.

    Parameters
    ----------
    content, collaborative : estimator or None
        Sub-models. A fitted one is used as it is (the service trains them first); an unfitted one
        is cloned and fitted; ``None`` means the default of each class.
    content_weight : float or "auto", default=0.6
        Weight of the content scores; collaborative gets ``1 - content_weight``. ``"auto"`` picks
        from ``AUTO_GRID`` the weight with the best mean NDCG@10 over ``auto_folds`` validation
        splits of the training data, but keeps ``prior_weight`` unless the best beats it by more
        than ``auto_significance`` standard errors of the paired per-user difference, so noise in
        a small or random dataset does not move the site's default.
    prior_weight : float, default=0.6
        The site's chosen content weight, kept by ``"auto"`` when the data gives no clear reason.
    auto_folds : int, default=2
        Validation splits averaged by ``"auto"`` (one split alone is noisy: measured on
        MovieLens, the best weight moved between 0.0 and 0.4 with the split's seed).
    auto_significance : float, default=2.0
        Standard errors of gain needed before ``"auto"`` departs from ``prior_weight``.
    auto_max_users : int, default=2000
        Validation users scored per fold (a seeded sample), which bounds the cost of ``"auto"``
        on large datasets.
    normalization : {"zscore", "minmax"}, default="minmax"
        How each sub-model's scores are rescaled per user before blending.
    mmr_lambda : float, default=0.7
        MMR trade-off (1.0: relevance order, lower: more diverse). A request may override it.
    n_candidates : int, default=100
        How many of the best blended items MMR chooses from.
    random_state : int, default=0
        Seed of the validation split used by ``"auto"``.
    shortlist : int, default=100
        When above 0, ``fit`` keeps every known user's ``n_candidates`` MMR candidates in the
        order MMR picks them at ``mmr_lambda`` (``shortlist_``), and
        each sub-model's normalisation (``spans_``): a request then scores only the items it
        returns, or its candidates for another lambda. 0 ranks at every request.

    Attributes
    ----------
    weights_ : tuple of float
        (content, collaborative) weights used.
    validation_ndcg_ : dict of float to float
        NDCG@10 per content weight tried by ``"auto"`` (empty otherwise).
    content_, collaborative_ : Recommender or None
        The attached sub-models (``None`` after unpickling until :meth:`attach`).
    shortlist_, shortlist_scores_ : ndarray of shape (n_users, n_candidates) or None
        Candidate positions per user, in MMR order at ``mmr_lambda`` (-1 past the end), and
        their blended scores (float32).
    spans_ : ndarray of shape (n_users, 2, 2) or None
        Per user and sub-model, the offset and divisor of its normalisation.
    neighbours_, neighbour_scores_ : ndarray of shape (n_items, 100) or None
        Each item's most similar items and their blended scores (float32).
    shortlist_of_ : str or None
        :func:`~service.ml.recommenders.base.learned_digest` of the sub-models the shortlists
        and neighbours were ranked with: attaching others drops them.
    """

    name = "hybrid"
    spans_: npt.NDArray[np.float64] | None
    shortlist_of_: str | None

    def __init__(
        self,
        *,
        content: ContentBased | None = None,
        collaborative: Collaborative | None = None,
        content_weight: float | Literal["auto"] = 0.6,
        prior_weight: float = 0.6,
        auto_folds: int = 2,
        auto_significance: float = 2.0,
        auto_max_users: int = 2000,
        normalization: Normalization = "minmax",
        mmr_lambda: float = 0.7,
        n_candidates: int = 100,
        random_state: int = 0,
        shortlist: int = SHORTLIST,
    ) -> None:
        self.content = content
        self.collaborative = collaborative
        self.content_weight = content_weight
        self.prior_weight = prior_weight
        self.auto_folds = auto_folds
        self.auto_significance = auto_significance
        self.auto_max_users = auto_max_users
        self.normalization = normalization
        self.mmr_lambda = mmr_lambda
        self.n_candidates = n_candidates
        self.random_state = random_state
        self.shortlist = shortlist

    # --- fitting --------------------------------------------------------------------------------

    def _fit(self, dataset: Dataset) -> None:
        self._validate()
        self.spans_ = None
        self.shortlist_of_ = None
        content = _prepared(self.content, ContentBased, dataset)
        collaborative = _prepared(self.collaborative, Collaborative, dataset)
        self.validation_ndcg_: dict[float, float] = {}
        if self.content_weight == "auto":
            weight, self.validation_ndcg_ = choose_weight(self, dataset)
        else:
            weight = float(self.content_weight)
        self.weights_ = (weight, 1.0 - weight)
        self.attach(content, collaborative)

    def _validate(self) -> None:
        if self.content_weight != "auto" and not 0.0 <= float(self.content_weight) <= 1.0:
            raise ValueError(
                f"content_weight must be 'auto' or within 0..1, got {self.content_weight!r}"
            )
        if self.normalization not in ("zscore", "minmax"):
            raise ValueError(
                f"normalization must be 'zscore' or 'minmax', got {self.normalization!r}"
            )
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be within 0..1, got {self.mmr_lambda!r}")
        if self.auto_folds < 1:
            raise ValueError(f"auto_folds must be >= 1, got {self.auto_folds!r}")
        if self.n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {self.n_candidates!r}")

    # --- sub-models -----------------------------------------------------------------------------

    def attach(self, content: ContentBased, collaborative: Collaborative) -> None:
        """Serve with these fitted sub-models (after unpickling, the ones it was built with)."""
        for model in (content, collaborative):
            if not is_fitted(model):
                raise NotFittedError(
                    f"the hybrid needs fitted sub-models; {model.name} is not fitted"
                )
        if not content.catalogue_.ids.equals(collaborative.catalogue_.ids) or not (
            content.user_ids_.equals(collaborative.user_ids_)
        ):
            raise ValueError(
                "content and collaborative models were trained on different data "
                "(their items or users differ); retrain them together"
            )
        self.content_: ContentBased | None = content
        self.collaborative_: Collaborative | None = collaborative
        for attribute in _SHARED_STATE:
            setattr(self, attribute, getattr(content, attribute))
        recorded = getattr(self, "shortlist_", None) is not None
        if recorded and self.shortlist_of_ != sub_models_digest(content, collaborative):
            self.shortlist_ = self.shortlist_scores_ = None
            self.neighbours_ = self.neighbour_scores_ = None
            self.spans_ = None
            self.shortlist_of_ = None

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "content_", None) is not None and hasattr(self, "weights_")

    def __getstate__(self) -> dict[str, Any]:
        # The artifact holds the blend only; sub-models live in their own artifacts.
        state: dict[str, Any] = dict(super().__getstate__())
        for attribute in (*_SHARED_STATE, "content", "collaborative"):
            state.pop(attribute, None)
        state.update(content=None, collaborative=None, content_=None, collaborative_=None)
        return state

    def _check_fitted(self) -> None:
        if hasattr(self, "weights_"):
            self._parts()
        super()._check_fitted()

    def _user_rows(self) -> dict[str, int]:
        # The users are the content model's (attach checks it): share its table, not a copy.
        return self._parts()[0]._user_rows()

    def _parts(self) -> tuple[ContentBased, Collaborative]:
        if self.content_ is None or self.collaborative_ is None:
            raise NotFittedError(
                "the hybrid is detached from its sub-models: attach() the content-based and "
                "collaborative models it was built with"
            )
        return self.content_, self.collaborative_

    # --- shortlists ----------------------------------------------------------------------------

    def _shortlist_length(self) -> int:
        # The MMR candidates themselves: any n up to n_candidates is a prefix of their order.
        return self.n_candidates if super()._shortlist_length() else 0

    def _build_shortlists(self) -> None:
        rank_users(self)

    def _build_neighbours(self) -> None:
        rank_items(self)

    def _from_shortlist(self, row: int, n: int, **options: Any) -> Recommendations | None:
        lam = self._lambda(options)
        # The candidates a request for n ranks: the best max(n, n_candidates) unseen items.
        if getattr(self, "spans_", None) is None or self._shortlisted(row, n) is None:
            return None
        if lam == self.mmr_lambda:  # the stored order is the answer
            return super()._from_shortlist(row, n)
        stored = self._shortlisted(row, self.n_candidates)
        if stored is None or (n > self.n_candidates and stored.size == self.n_candidates):
            return None
        # Another lambda: the same candidates, scored exactly and put back in relevance order
        # (ties by position, as top_k orders them), then re-ranked as _rank does.
        scores = self._scores_at(row, stored)
        ranking = np.lexsort((stored, -scores))
        candidates, scores = stored[ranking], scores[ranking]
        if lam == 1.0:
            return self._pairs(candidates[:n], scores[:n])
        picks = self._mmr_picks(candidates, scores, n, lam)
        return self._pairs(candidates[picks], scores[picks])

    def _scores_at(self, user: int, items: IntArray) -> FloatArray:
        content, collaborative = self._parts()
        assert self.spans_ is not None
        c_span, f_span = self.spans_[user].tolist()
        c, f = content._scores_at(user, items), collaborative._scores_at(user, items)
        return blend(c, f, self.weights_, (c_span, f_span))

    # --- scoring --------------------------------------------------------------------------------

    def _blend(
        self, content: FloatArray, collab: FloatArray, weights: Sequence[float]
    ) -> FloatArray:
        spans = (span(content, self.normalization), span(collab, self.normalization))
        return blend(content, collab, weights, spans)

    def _user_scores(self, user: int) -> FloatArray:
        content, collaborative = self._parts()
        c, f = content._user_scores(user), collaborative._user_scores(user)
        return self._blend(c, f, self.weights_)

    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        content, collaborative = self._parts()
        c = content._ratings_scores(items, ratings)
        f = collaborative._ratings_scores(items, ratings)
        return self._blend(c, f, self.weights_)

    def _item_scores(self, item: int) -> FloatArray:
        content, collaborative = self._parts()
        c, f = content._item_scores(item), collaborative._item_scores(item)
        return self._blend(c, f, self.weights_)

    def _lambda(self, options: dict[str, Any]) -> float:
        lam = options.get("mmr_lambda")
        lam = self.mmr_lambda if lam is None else float(lam)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"mmr_lambda must be within 0..1, got {lam!r}")
        return lam

    def _rank(
        self, scores: FloatArray, n: int, exclude: IntArray | None, **options: Any
    ) -> IntArray:
        lam = self._lambda(options)
        if lam == 1.0:
            return top_k(scores, n, exclude)
        candidates = top_k(scores, max(n, self.n_candidates), exclude)
        return candidates[self._mmr_picks(candidates, scores[candidates], n, lam)]

    def _mmr_picks(self, candidates: IntArray, scores: FloatArray, n: int, lam: float) -> IntArray:
        """MMR's ``n`` picks among ``candidates`` (positions into them), given their scores."""
        relevance = rescale(scores, "minmax")
        return mmr(relevance, self._parts()[0].pairwise(candidates), n, lam)


def _prepared(model: Recommender | None, default: type[Recommender], dataset: Dataset) -> Any:
    if model is None:
        return default().fit(dataset)
    if is_fitted(model):
        return model
    return clone(model).fit(dataset)
