"""Answers that count a user's newest ratings: the model's own, or its fold-in with the overlay.

A user who rated something after the served model's watermark is answered through the model's
fold-in path with the trained ratings and the new ones together (a re-rating replaces the old
one), so the next answer changes without retraining: a visitor the model never saw stops being a
cold start at their first rating, and every item they rated is left out of their answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from service.ml.recommenders import Recommendations, Recommender
from service.serving.overlay import merged

__all__ = ["recommend", "trained_ratings"]


def trained_ratings(model: Recommender, user_id: str) -> dict[str, float]:
    """The ratings ``model`` was trained with for ``user_id`` (empty for a user it never saw)."""
    row = model.user_position(user_id)
    if row is None:
        return {}
    positions, values = model.user_ratings(row)
    ids = np.asarray(model.catalogue_.ids)[positions].tolist()
    return dict(zip(ids, values.tolist(), strict=True))


def recommend(
    model: Recommender, user_id: str, n: int, recent: Mapping[str, float], **options: Any
) -> Recommendations:
    """Recommend ``n`` items to ``user_id``, counting their ``recent`` ratings (item -> rating).

    Recent ratings of items the model does not know (added to the catalogue after it was
    trained) cannot be folded in and are left out; those it was trained with are no news.
    """
    if recent:
        catalogue = model.catalogue_
        trained = trained_ratings(model, user_id)
        fresh = {
            item: rating
            for item, rating in recent.items()
            if catalogue.contains(item) and trained.get(item) != rating
        }
        if fresh:
            return model.recommend_for_ratings(merged(trained, fresh), n, **options)
    return model.recommend(user_id, n, **options)
