"""Maximal Marginal Relevance: re-rank candidates to trade relevance for diversity."""

from __future__ import annotations

import numpy as np

from service.recommenders.base import FloatArray, IntArray

__all__ = ["mmr"]


def mmr(relevance: FloatArray, similarity: FloatArray, n: int, lam: float) -> IntArray:
    """Greedily pick ``n`` of the candidates by maximal marginal relevance.

    Each step takes the candidate maximising
    ``lam * relevance - (1 - lam) * max similarity to the already picked``.

    Parameters
    ----------
    relevance : ndarray of shape (m,)
        Relevance of each candidate, rescaled by the caller to a range comparable to similarity.
    similarity : ndarray of shape (m, m)
        Pairwise similarity among the candidates only (never the whole catalogue).
    n : int
        How many to pick.
    lam : float
        1.0 keeps the relevance order; lower values favour diversity.

    Returns
    -------
    ndarray of int
        Candidate positions, in picking order.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must be within 0..1, got {lam!r}")
    m = relevance.shape[0]
    n = min(n, m)
    if lam == 1.0 or n == 0:
        return np.argsort(-relevance, kind="stable")[:n].astype(np.intp)
    picked: list[int] = []
    max_similarity = np.zeros(m)
    available = np.ones(m, dtype=bool)
    for _ in range(n):
        gain = lam * relevance - (1.0 - lam) * max_similarity
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        max_similarity = np.maximum(max_similarity, similarity[best])
    return np.array(picked, dtype=np.intp)
