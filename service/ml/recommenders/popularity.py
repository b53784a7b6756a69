"""Popularity recommender: the most-interacted items, for everyone.

It is the cold-start fallback every model carries (``popularity_``), and the baseline the
evaluation measures the others against.
"""

from __future__ import annotations

import numpy as np

from service.ml.datasets import Dataset
from service.ml.recommenders.base import FloatArray, IntArray, Recommender

__all__ = ["Popularity"]


class Popularity(Recommender):
    """Rank items by how many users interacted with them."""

    name = "popularity"

    def _fit(self, dataset: Dataset) -> None:
        self.n_users_ = len(self.user_ids_)

    def _user_scores(self, user: int) -> FloatArray:
        return self.popularity_

    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        return self.popularity_

    def _item_scores(self, item: int) -> FloatArray:
        # Items co-rated with this one, counted: "people who rated this also rated".
        raters = self.user_items_[:, [item]].nonzero()[0]
        counts = np.bincount(self.user_items_[raters].indices, minlength=len(self.catalogue_))
        return counts.astype(np.float64)
