"""Per-user random holdout: the split every measurement in this project uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from service.ml.datasets import Dataset

__all__ = ["HOLDOUT_FRACTION", "RELEVANT_RATING", "Holdout", "holdout_split", "relevant_items"]

#: A held-out item counts as relevant when rated at least this (both supported scales top at 5).
RELEVANT_RATING = 4.0
#: Share of each user's interactions held out, in every evaluation and validation split.
HOLDOUT_FRACTION = 0.2


def holdout_split(
    interactions: pd.DataFrame, fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``fraction`` of each user's interactions at random.

    Every user keeps at least one training interaction; a user with a single interaction is
    kept whole in training. The split is reproducible for a given ``seed``.

    Returns
    -------
    train, test : DataFrame
        Disjoint parts of ``interactions`` (original index kept).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be within (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    # Codes numbered in the ids' sorted order sort like the ids themselves, and sorting integers
    # is several times faster than sorting strings (5M interactions: see docs/PERFORMANCE.md).
    users, _ = pd.factorize(interactions["user_id"].astype(str), sort=True)
    keys = rng.random(len(interactions))
    order = np.lexsort((keys, users))
    positions = np.arange(len(order))
    ranks = np.empty(len(order), dtype=np.int64)
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    ranks[order] = positions - np.repeat(starts, sizes)
    counts = np.empty(len(order), dtype=np.int64)
    counts[order] = np.repeat(sizes, sizes)
    n_test = np.floor(counts * fraction + 0.5).astype(np.int64)
    n_test = np.minimum(n_test, counts - 1)
    is_test = ranks < n_test
    return interactions[~is_test], interactions[is_test]


def relevant_items(test: pd.DataFrame, threshold: float = RELEVANT_RATING) -> dict[str, set[str]]:
    """Map each user to the held-out items they rated at least ``threshold``."""
    liked = test[test["rating"] >= threshold]
    users = liked["user_id"].astype(str).to_numpy()
    items = liked["item_id"].astype(str).to_numpy()
    relevant: dict[str, set[str]] = {}
    for user, item in zip(users, items, strict=True):
        relevant.setdefault(user, set()).add(item)
    return relevant


@dataclass(frozen=True)
class Holdout:
    """One seeded per-user holdout of a dataset: the part to fit on and what to find.

    Attributes
    ----------
    part : Dataset
        The dataset with only the training interactions.
    relevant : dict of str to set of str
        Each user's held-out items rated at least :data:`RELEVANT_RATING`.
    """

    part: Dataset
    relevant: dict[str, set[str]]

    @classmethod
    def of(cls, dataset: Dataset, seed: int = 0, fraction: float = HOLDOUT_FRACTION) -> Holdout:
        """Split ``dataset``: the same data and seed always give the same holdout."""
        train, test = holdout_split(dataset.interactions, fraction, seed)
        return cls(dataset.with_interactions(train), relevant_items(test))
