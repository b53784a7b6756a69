"""Collaborative recommender: scikit-learn NMF on the sparse user-item matrix.

The matrix stays sparse end to end (missing ratings are zeros to NMF) and in float32; the model
keeps only the user factors ``W`` (n_users x k) and item factors ``H`` (k x n_items), so memory is
linear in users and items. A visitor's factors are solved against the fitted ``H`` by the same
coordinate descent as NMF's ``transform``: fold-in without retraining.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.decomposition import NMF
from sklearn.decomposition._cdnmf_fast import _update_cdnmf_fast
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import normalize

from service.ml.datasets import Dataset
from service.ml.quiet import ignoring
from service.ml.recommenders.base import SHORTLIST, FloatArray, IntArray, Recommender

__all__ = ["Collaborative"]

Weighting = Literal["explicit", "binary", "confidence"]


class Collaborative(Recommender):
    """Matrix factorisation of the user-item ratings with non-negative factors.

    Parameters
    ----------
    n_components : int, default=32
        Number of latent factors.
    weighting : {"explicit", "binary", "confidence"}, default="explicit"
        What NMF factorises: the ratings, 1 for every interaction, or ``1 + log1p(rating)``.
    alpha_W : float, default=0.01
        L2 regularisation of the user factors (scikit-learn's ``alpha_W``; ``alpha_H`` follows it).
    max_iter : int, default=100
        Coordinate-descent iterations. Stopping early regularises: on MovieLens 50-100
        iterations scored NDCG@10 0.263 and 300 scored 0.259 (docs/EVALUATION.md).
    random_state : int, default=0
        Seed of the initialisation, for reproducible models.
    shortlist : int, default=100
        Best unseen items ranked per known user at fit time (``shortlist_``), so a request
        scores only the items it returns; 0 ranks at every request.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_components)
    item_factors_ : ndarray of shape (n_components, n_items)
    nmf_ : sklearn.decomposition.NMF
        The fitted estimator (its ``transform`` folds in visitors).
    """

    name = "collaborative"

    def __init__(
        self,
        *,
        n_components: int = 32,
        weighting: Weighting = "explicit",
        alpha_W: float = 0.01,
        max_iter: int = 100,
        random_state: int = 0,
        shortlist: int = SHORTLIST,
    ) -> None:
        self.n_components = n_components
        self.weighting = weighting
        self.alpha_W = alpha_W
        self.max_iter = max_iter
        self.random_state = random_state
        self.shortlist = shortlist

    def _weights(self, ratings: FloatArray) -> FloatArray:
        if self.weighting == "binary":
            return np.ones_like(ratings)
        if self.weighting == "confidence":
            return 1.0 + np.log1p(ratings)
        return ratings

    def _fit(self, dataset: Dataset) -> None:
        if self.weighting not in ("explicit", "binary", "confidence"):
            raise ValueError(
                f"weighting must be 'explicit', 'binary' or 'confidence', got {self.weighting!r}"
            )
        # float32 halves the memory traffic of NMF's sparse products: 2.3x faster at 5 M ratings,
        # and the same MovieLens NDCG@10 as float64 (docs/PERFORMANCE.md, Scale).
        matrix = self.user_items_.astype(np.float32)
        matrix.data = self._weights(matrix.data)
        k = max(1, min(self.n_components, *matrix.shape))
        self.nmf_ = NMF(
            n_components=k,
            init="nndsvd",
            solver="cd",
            alpha_W=self.alpha_W,
            alpha_H="same",
            l1_ratio=0.0,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        with ignoring(ConvergenceWarning):  # stopping early is max_iter's intended trade-off
            self.user_factors_ = self.nmf_.fit_transform(matrix).astype(np.float32)
        self.item_factors_ = self.nmf_.components_.astype(np.float32)

    # Scoring avoids BLAS on purpose: a request's products are small, and OpenBLAS's threads then
    # cost more than they save, worst of all when another process holds the other core (a
    # 32 x 20k product measured 0.07 ms on one thread, 3.8 ms on two contended threads).

    def _user_scores(self, user: int) -> FloatArray:
        scores = np.einsum("k,kn->n", self.user_factors_[user], self.item_factors_)
        return np.asarray(scores, dtype=np.float64)

    def _block_scores(self, rows: IntArray) -> FloatArray:
        # The same einsum over a block of users: each score is the same float32 sum over k.
        scores = np.einsum("bk,kn->bn", self.user_factors_[rows], self.item_factors_)
        return np.asarray(scores, dtype=np.float64)

    def _block_item_scores(self, items: IntArray) -> FloatArray:
        vectors = self._unit_item_factors()
        scores = np.einsum("nk,bk->bn", vectors, vectors[items])
        return np.asarray(scores, dtype=np.float64)

    def _scores_at(self, user: int, items: IntArray) -> FloatArray:
        scores = np.einsum("k,kn->n", self.user_factors_[user], self.item_factors_[:, items])
        return np.asarray(scores, dtype=np.float64)

    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        # In float32 like a known user's scores: a float64 product would cast the whole item
        # factor matrix at every request (4x the cost on MovieLens small).
        factors = self._fold_in(items, self._weights(ratings)).astype(np.float32)
        scores = np.einsum("k,kn->n", factors, self.item_factors_)
        return np.asarray(scores, dtype=np.float64)

    def _item_scores(self, item: int) -> FloatArray:
        vectors = self._unit_item_factors()
        return np.asarray(np.einsum("nk,k->n", vectors, vectors[item]), dtype=np.float64)

    def _fold_in(self, items: IntArray, values: FloatArray) -> FloatArray:
        """A visitor's factors: what ``nmf_.transform`` computes, without its per-call cost.

        The same coordinate descent as scikit-learn's ``cd`` solver with ``H`` fixed (its own
        sweep, from zeros, with the same regularisation, stopping rule and iteration cap), but
        the Gram matrix ``H H^T`` over the whole catalogue is computed once instead of at every
        iteration of every request, and only the rated items' columns are read. Results match
        ``transform`` to rounding.
        """
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(
                f"fold-in ratings must be finite and non-negative for NMF; got {values.tolist()!r}"
            )
        gram, l1 = self._fold_in_gram()
        components = self.nmf_.components_
        target = np.einsum("i,ki->k", values, components[:, items].astype(np.float64)) - l1
        # scikit-learn's own coordinate-descent sweep (what ``transform`` runs for each
        # iteration), on the one row of a visitor, with its stopping rule.
        factors: FloatArray = np.zeros((1, len(gram)))
        products = target[np.newaxis, :]
        order = np.arange(len(gram), dtype=np.intp)
        initial = 0.0
        for iteration in range(1, int(self.nmf_.max_iter) + 1):
            violation = _update_cdnmf_fast(factors, gram, products, order)
            if iteration == 1:
                initial = violation
            if initial == 0.0 or violation / initial <= self.nmf_.tol:
                break
        return np.asarray(factors[0], dtype=np.float64)

    def _fold_in_gram(self) -> tuple[FloatArray, float]:
        """``H H^T`` plus the L2 term on its diagonal, and the L1 term (cached per model)."""
        cached: tuple[FloatArray, float] | None = self.__dict__.get("_gram_cache")
        if cached is None:
            components = np.asarray(self.nmf_.components_, dtype=np.float64)
            n_features = components.shape[1]
            l1_ratio = float(self.nmf_.l1_ratio)
            gram = np.einsum("ki,li->kl", components, components)
            gram.flat[:: len(gram) + 1] += n_features * self.nmf_.alpha_W * (1.0 - l1_ratio)
            cached = (gram, n_features * self.nmf_.alpha_W * l1_ratio)
            self._gram_cache = cached
        return cached

    def _unit_item_factors(self) -> FloatArray:
        """Item factors as unit rows (cached per model: similar-items requests reuse them)."""
        cached: FloatArray | None = self.__dict__.get("_unit_cache")
        if cached is None:
            cached = np.asarray(normalize(self.item_factors_.T), dtype=np.float32)
            self._unit_cache = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:
        # The caches are cheap to rebuild; artifacts keep only the learned state.
        state: dict[str, Any] = dict(super().__getstate__())
        state.pop("_gram_cache", None)
        state.pop("_unit_cache", None)
        return state
