"""Ranking metrics at a cut-off k, for one user's list, and list diversity."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

__all__ = ["intra_list_diversity", "ndcg_at_k", "precision_at_k", "recall_at_k"]


def precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the first ``k`` recommendations that are relevant (divided by ``k``)."""
    hits = sum(1 for item in recommended[:k] if item in relevant)
    return hits / k


def recall_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant items found in the first ``k`` recommendations."""
    if not relevant:
        return 0.0
    hits = sum(1 for item in recommended[:k] if item in relevant)
    return hits / len(relevant)


def ndcg_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Binary-relevance NDCG: DCG of the list over the DCG of a perfect list."""
    if not relevant:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([item in relevant for item in recommended[:k]], dtype=np.float64)
    dcg = float(gains @ discounts[: gains.size])
    ideal = float(discounts[: min(len(relevant), k)].sum())
    return dcg / ideal


def intra_list_diversity(similarity: np.ndarray) -> float:
    """One minus the mean pairwise similarity of a list (``similarity`` is its square matrix)."""
    m = similarity.shape[0]
    if m < 2:
        return 0.0
    off_diagonal = similarity.sum() - np.trace(similarity)
    return float(1.0 - off_diagonal / (m * (m - 1)))
