"""The API every recommender shares, and the state they all learn from a dataset.

A recommender follows scikit-learn's conventions: hyperparameters are keyword arguments stored
untouched by ``__init__``, :meth:`Recommender.fit` validates and learns, learned state ends with an
underscore, and every query raises :class:`~sklearn.exceptions.NotFittedError` before ``fit``.
Subclasses implement four scoring hooks over the whole catalogue; this class turns scores into
ranked ``(item_id, score)`` pairs, excludes what a user has already rated and answers unknown users
with the popularity fallback.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from service.errors import UnknownItemError
from service.ml.datasets import Dataset
from service.ml.recommenders.catalogue import Catalogue
from service.ml.recommenders.shortlists import (
    RankedRow,
    nearest_rows,
    rank_in_blocks,
    ranked_rows,
    top_k,
)

__all__ = [
    "SHORTLIST",
    "Catalogue",
    "FloatArray",
    "NotFittedError",
    "Recommendations",
    "Recommender",
    "UnknownItemError",
    "is_fitted",
    "learned_digest",
    "top_k",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Items kept per known user at fit time: the longest answer the API gives (its ``limit``).
SHORTLIST = 100


@dataclass(frozen=True)
class Recommendations:
    """Ranked ``(item_id, score)`` pairs; ``cold_start`` when the popularity fallback answered."""

    items: list[tuple[str, float]]
    cold_start: bool = False


def is_fitted(model: object) -> bool:
    """Whether ``model`` has been fitted (scikit-learn's rule, or the model's own)."""
    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def learned_digest(model: object) -> str:
    """A digest of the arrays ``model`` learned (its ``*_`` arrays): equal models, equal digests.

    Computed once per model object and kept beside it (never pickled).
    """
    cached: str | None = model.__dict__.get("_digest_cache")
    if cached is None:
        digest = hashlib.blake2b(digest_size=16)
        for name, value in sorted(vars(model).items()):
            if not name.endswith("_") or name.startswith("_"):
                continue
            parts = (value.data, value.indices, value.indptr) if sp.issparse(value) else (value,)
            for part in parts:
                if isinstance(part, np.ndarray):
                    digest.update(name.encode())
                    digest.update(np.ascontiguousarray(part).view(np.uint8).data)
        cached = digest.hexdigest()
        model.__dict__["_digest_cache"] = cached
    return cached


class Recommender(BaseEstimator, ABC):  # type: ignore[misc]
    """Shared API: recommend for a known user, for a visitor's ratings, and similar items.

    Learned state common to every model:

    catalogue_ : Catalogue
        Item ids and the fields responses show.
    user_ids_ : pandas.Index
        Known user ids, in row order of ``user_items_``.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        The training ratings (float32), used for profiles and to exclude seen items.
    popularity_ : ndarray of shape (n_items,)
        Interaction counts: the cold-start fallback.
    """

    #: Short model name used in artifact keys and the HTTP API.
    name: str = ""
    #: Whether two fits of this model may run at once on threads of one process (the hybrid's
    #: weight search fits its folds' sub-models so).
    fits_on_threads: bool = True
    shortlist_: npt.NDArray[np.signedinteger[Any]] | None
    shortlist_scores_: npt.NDArray[np.float32] | None
    neighbours_: npt.NDArray[np.signedinteger[Any]] | None
    neighbour_scores_: npt.NDArray[np.float32] | None

    def fit(self, dataset: Dataset, *, rank: bool = True) -> Self:
        """Learn from ``dataset`` and return ``self``.

        ``rank=False`` leaves the shortlists and neighbours unranked, for a hybrid fitted next
        on this model to rank in its own pass over the users (the model set does so).
        """
        if dataset.n_interactions == 0:
            raise ValueError("cannot fit a recommender on a dataset without interactions")
        self.__dict__.pop("_digest_cache", None)
        self.catalogue_ = Catalogue.from_items(dataset.items)
        interactions = dataset.interactions
        users = interactions["user_id"].astype("category").cat.remove_unused_categories()
        items = pd.Categorical(interactions["item_id"], categories=self.catalogue_.ids)
        self.user_ids_ = pd.Index(users.cat.categories.astype(str), dtype=object)
        self.user_items_ = sp.csr_matrix(
            (
                interactions["rating"].to_numpy(dtype=np.float32),
                (users.cat.codes.to_numpy(), np.asarray(items.codes)),
            ),
            shape=(len(self.user_ids_), len(self.catalogue_)),
        )
        self.popularity_ = np.bincount(
            self.user_items_.indices, minlength=len(self.catalogue_)
        ).astype(np.float64)
        self.shortlist_ = self.shortlist_scores_ = None
        self.neighbours_ = self.neighbour_scores_ = None
        self._fit(dataset)
        if rank:
            self._build_shortlists()
            self._build_neighbours()
        return self

    # --- hooks ----------------------------------------------------------------------------------

    @abstractmethod
    def _fit(self, dataset: Dataset) -> None:
        """Learn the model's own state; the common state is already set."""

    @abstractmethod
    def _user_scores(self, user: int) -> FloatArray:
        """Scores over all items for the known user in row ``user``."""

    @abstractmethod
    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        """Scores over all items for a visitor who gave ``ratings`` to the items at ``items``."""

    @abstractmethod
    def _item_scores(self, item: int) -> FloatArray:
        """Similarity of every item to the item at position ``item``."""

    def _scores_at(self, user: int, items: IntArray) -> FloatArray:
        """Scores of the known user in row ``user`` for ``items`` only (the shortlist's answers).

        The same values as ``_user_scores(user)[items]``; subclasses compute them without
        scoring the whole catalogue.
        """
        return self._user_scores(user)[items]

    def _check_fitted(self) -> None:
        check_is_fitted(self)

    # --- shortlists -----------------------------------------------------------------------------
    # A known user's answer depends only on the model and the user, so ``fit`` ranks every known
    # user's best ``shortlist`` unseen items once: ``shortlist_`` holds their positions in answer
    # order (-1 past the end when fewer are unseen) and ``shortlist_scores_`` their scores in
    # float32. The ranking is the request path's own (``_rank`` over ``_user_scores``), user by
    # user in float64, so a shortlisted answer lists the items the whole catalogue's scoring
    # lists, in the same order; its scores are rounded to float32 (7 digits). Artifacts without
    # shortlists (older formats, ``shortlist=0``) score the catalogue at each request as before.

    def _shortlist_length(self) -> int:
        return max(0, int(getattr(self, "shortlist", 0) or 0))

    def _build_shortlists(self) -> None:
        length = min(self._shortlist_length(), len(self.catalogue_))
        if length > 0:
            [(self.shortlist_, self.shortlist_scores_)] = rank_in_blocks(
                len(self.user_ids_),
                len(self.catalogue_),
                [length],
                lambda rows: ((ranked,) for ranked in self._shortlist_block(rows, length)),
            )

    def _build_neighbours(self) -> None:
        """Every item's ``shortlist`` most similar items and their scores, as ``similar_items``
        ranks them over the whole catalogue (``neighbours_``, ``neighbour_scores_``)."""
        length = self._neighbours_length()
        if length > 0:
            [(self.neighbours_, self.neighbour_scores_)] = rank_in_blocks(
                len(self.catalogue_),
                len(self.catalogue_),
                [length],
                lambda items: (
                    (ranked,)
                    for ranked in nearest_rows(self._block_item_scores(items), items, length)
                ),
            )

    def _neighbours_length(self) -> int:
        return min(self._shortlist_length(), len(self.catalogue_) - 1)

    def _shortlist_block(self, rows: IntArray, length: int) -> Iterator[RankedRow]:
        """Each user in ``rows``: the best ``length`` unseen items in answer order, and scores."""
        yield from self._ranked_rows(self._block_scores(rows), length, [self.seen(r) for r in rows])

    def _ranked_row(self, scores: FloatArray, length: int, seen: IntArray) -> RankedRow:
        order = self._rank(scores, length, seen)
        return order, scores[order]

    def _ranked_rows(
        self, scores: npt.NDArray[np.float64], length: int, seen: Sequence[IntArray]
    ) -> list[RankedRow]:
        """``_ranked_row`` of each row of ``scores``; one selection for the block when ``_rank``
        is plain ``top_k``."""
        if type(self)._rank is not Recommender._rank:
            return [self._ranked_row(row, length, s) for row, s in zip(scores, seen, strict=True)]
        return ranked_rows(scores, length, seen)

    def _block_scores(self, rows: IntArray) -> npt.NDArray[np.float64]:
        """``_user_scores`` of each user in ``rows``, a row each; subclasses score them at once."""
        return np.stack([self._user_scores(int(row)) for row in rows])

    def _block_item_scores(self, items: IntArray) -> npt.NDArray[np.float64]:
        """``_item_scores`` of each item in ``items``, a row each; subclasses score them at once."""
        return np.stack([self._item_scores(int(item)) for item in items])

    def _shortlisted(self, row: int, n: int) -> IntArray | None:
        """The first ``n`` of the user's shortlist, or None when the model keeps none that long."""
        table: npt.NDArray[Any] | None = getattr(self, "shortlist_", None)
        if table is None or n > table.shape[1] < len(self.catalogue_):
            return None
        order = np.asarray(table[row, :n], dtype=np.intp)
        return order[order >= 0] if order[-1] < 0 else order

    def _from_shortlist(self, row: int, n: int, **options: Any) -> Recommendations | None:
        """The user's answer from the shortlist, or None to score the whole catalogue."""
        order = self._shortlisted(row, n)
        if order is None or self.shortlist_scores_ is None:
            return None
        return self._pairs(order, self.shortlist_scores_[row, : order.size])

    def _rank(
        self, scores: FloatArray, n: int, exclude: IntArray | None, **options: Any
    ) -> IntArray:
        """Order the best items; the hybrid overrides this to re-rank with MMR."""
        return top_k(scores, n, exclude)

    # --- public API ---------------------------------------------------------------------------

    def recommend(
        self, user_id: str, n: int = 10, exclude_seen: bool = True, **options: Any
    ) -> Recommendations:
        """Recommend ``n`` items for ``user_id``; unknown users get popular items (cold start)."""
        self._check_fitted()
        _check_n(n)
        row = self._user_rows().get(str(user_id))
        if row is None:
            return self._popular(n, exclude=None)
        if exclude_seen:
            shortlisted = self._from_shortlist(row, n, **options)
            if shortlisted is not None:
                return shortlisted
        exclude = self.seen(row) if exclude_seen else None
        scores = self._user_scores(row)
        return self._ranked(scores, self._rank(scores, n, exclude, **options))

    def recommend_for_ratings(
        self, ratings: Sequence[tuple[str, float]], n: int = 10, **options: Any
    ) -> Recommendations:
        """Recommend for a visitor's ``(item_id, rating)`` pairs without retraining (fold-in)."""
        self._check_fitted()
        _check_n(n)
        if not ratings:
            return self._popular(n, exclude=None)
        positions = np.array([self.catalogue_.position(str(i)) for i, _ in ratings], dtype=np.intp)
        values = np.array([float(r) for _, r in ratings], dtype=np.float64)
        scores = self._ratings_scores(positions, values)
        return self._ranked(scores, self._rank(scores, n, positions, **options))

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        """Return the ``n`` items most similar to ``item_id`` (itself excluded)."""
        self._check_fitted()
        _check_n(n)
        position = self.catalogue_.position(item_id)
        table: npt.NDArray[Any] | None = getattr(self, "neighbours_", None)
        if (
            table is not None
            and self.neighbour_scores_ is not None
            and (n <= table.shape[1] or table.shape[1] == len(self.catalogue_) - 1)
        ):
            order = np.asarray(table[position, :n], dtype=np.intp)
            return self._pairs(order, self.neighbour_scores_[position, : order.size]).items
        scores = self._item_scores(position)
        order = top_k(scores, n, np.array([position], dtype=np.intp))
        return self._ranked(scores, order).items

    def user_position(self, user_id: str) -> int | None:
        """Row of a known user, ``None`` for a user the model never saw."""
        self._check_fitted()
        return self._user_rows().get(str(user_id))

    def _user_rows(self) -> dict[str, int]:
        """User id -> row of ``user_ids_``, built on first use and never pickled.

        A dict lookup costs well under a microsecond, ``Index.get_indexer`` about a hundred per
        request. The dict is rebuilt when ``user_ids_`` is another object (a refit, a re-attach).
        """
        cached: tuple[pd.Index, dict[str, int]] | None = self.__dict__.get("_user_rows_cache")
        if cached is None or cached[0] is not self.user_ids_:
            cached = (self.user_ids_, {key: row for row, key in enumerate(self.user_ids_)})
            self._user_rows_cache = cached
        return cached[1]

    def seen(self, row: int) -> IntArray:
        """Positions of the items the user in ``row`` rated in training."""
        start, end = self.user_items_.indptr[row], self.user_items_.indptr[row + 1]
        return np.asarray(self.user_items_.indices[start:end], dtype=np.intp)

    def user_ratings(self, row: int) -> tuple[IntArray, FloatArray]:
        """Positions and ratings of the items the user in ``row`` rated in training."""
        start, end = self.user_items_.indptr[row], self.user_items_.indptr[row + 1]
        return (
            np.asarray(self.user_items_.indices[start:end], dtype=np.intp),
            np.asarray(self.user_items_.data[start:end], dtype=np.float64),
        )

    def __getstate__(self) -> dict[str, Any]:
        # Artifacts keep the learned state only: caches built on first use are left out.
        state: dict[str, Any] = dict(super().__getstate__())
        state.pop("_user_rows_cache", None)
        state.pop("_digest_cache", None)
        state.pop("_similarity_cache", None)
        return state

    def components(self) -> dict[str, str]:
        """Describe the learned state: attribute name -> type and shape (for status reports)."""
        self._check_fitted()
        return {
            name: _describe(value)
            for name, value in sorted(vars(self).items())
            if name.endswith("_") and not name.startswith("_")
        }

    def _popular(self, n: int, exclude: IntArray | None) -> Recommendations:
        order = top_k(self.popularity_, n, exclude)
        return self._ranked(self.popularity_, order, cold_start=True)

    def _ranked(
        self, scores: FloatArray, order: IntArray, cold_start: bool = False
    ) -> Recommendations:
        return self._pairs(order, np.asarray(scores, dtype=np.float64)[order], cold_start)

    def _pairs(
        self, order: IntArray, values: npt.NDArray[np.floating[Any]], cold_start: bool = False
    ) -> Recommendations:
        # One gather and tolist() each: indexing the pandas Index item by item costs more.
        ids = np.asarray(self.catalogue_.ids)[order].tolist()
        scores = np.asarray(values, dtype=np.float64).tolist()
        return Recommendations([(str(i), v) for i, v in zip(ids, scores, strict=True)], cold_start)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    kind = type(value).__name__
    if shape is not None:
        dtype = getattr(value, "dtype", None)
        return f"{kind} {tuple(shape)}" + (f" {dtype}" if dtype is not None else "")
    if isinstance(value, Catalogue | pd.Index):
        return f"{kind} ({len(value)},)"
    if isinstance(value, tuple | list | dict):
        return f"{kind} len {len(value)}"
    return kind
