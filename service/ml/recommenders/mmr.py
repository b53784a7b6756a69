"""Maximal Marginal Relevance: re-rank candidates to trade relevance for diversity."""

from __future__ import annotations

import numpy as np

from service.ml.recommenders.base import FloatArray, IntArray

__all__ = ["mmr", "mmr_rows"]


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
    # ``lam * relevance - (1 - lam) * max_similarity`` at every step in three calls. Rounding is
    # monotonic, so the most of the products ``(1 - lam) * similarity`` (computed once) is the
    # product of the most; and a picked candidate's weighted relevance set to -inf keeps its
    # gain -inf from then on. The gains are the same numbers, so the same picks.
    weighted = lam * relevance
    penalties = (1.0 - lam) * similarity
    picked = np.empty(n, dtype=np.intp)
    max_penalty = np.zeros(m)
    gain = np.empty(m)
    for step in range(n):
        np.subtract(weighted, max_penalty, out=gain)
        best = int(gain.argmax())
        picked[step] = best
        weighted[best] = -np.inf
        np.maximum(max_penalty, penalties[best], out=max_penalty)
    return picked


def mmr_rows(relevance: FloatArray, similarity: FloatArray, lam: float) -> IntArray:
    """:func:`mmr` for many users at once, every candidate picked: the same picks per row.

    ``relevance`` is (users, m) and ``similarity`` (users, m, m). Each step does, for all rows
    together, the element-wise arithmetic :func:`mmr` does for one, and ``argmax`` along a row
    takes the first of equal gains as it does, so each row's order is the one :func:`mmr`
    returns. One step costs a few operations over all the rows instead of a few per row.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must be within 0..1, got {lam!r}")
    users, m = relevance.shape
    if lam == 1.0 or m == 0:
        return np.argsort(-relevance, axis=1, kind="stable").astype(np.intp)
    weighted = lam * relevance
    penalties = (1.0 - lam) * similarity
    rows = np.arange(users)
    picked = np.empty((users, m), dtype=np.intp)
    max_penalty = np.zeros((users, m))
    gain = np.empty((users, m))
    for step in range(m):
        np.subtract(weighted, max_penalty, out=gain)
        best = gain.argmax(axis=1)
        picked[:, step] = best
        weighted[rows, best] = -np.inf
        np.maximum(max_penalty, penalties[rows, best], out=max_penalty)
    return picked
