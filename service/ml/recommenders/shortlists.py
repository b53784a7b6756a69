"""Ranking: the best n of a score vector, and at fit time every user's shortlist in blocks.

A model scores a block of users (or items) in one product, which reads its matrices once per
block instead of once per user, then ranks each row with the request path's own ranking. The
block products are the row-by-row products done together: each score is the same sum in the same
order, so a shortlisted answer lists what scoring the whole catalogue at the request lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BLOCK_CELLS", "RankedRow", "Table", "block_size", "nearest", "rank_in_blocks", "top_k"]

#: Scores held per block (float64 cells: 32 MB); a block of a 20k-item catalogue is 209 rows.
BLOCK_CELLS = 1 << 22

RankedRow = tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]
Table = tuple[npt.NDArray[np.signedinteger[Any]], npt.NDArray[np.float32]]
#: Ranks the rows in a block: per row, one (positions in answer order, their scores) per table.
RankBlock = Callable[[npt.NDArray[np.intp]], Iterable[Sequence[RankedRow]]]


def top_k(
    scores: npt.NDArray[np.float64], n: int, exclude: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.intp]:
    """Return the positions of the ``n`` highest finite scores, best first (ties by position)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.size:
        scores[exclude] = -np.inf
    scores[np.isnan(scores)] = -np.inf
    available = int(np.count_nonzero(np.isfinite(scores)))
    n = min(n, available)
    if n <= 0:
        return np.empty(0, dtype=np.intp)
    if n < scores.size:
        candidates = np.argpartition(-scores, n - 1)[:n]
        # argpartition breaks a tie at the n-th score arbitrarily: keep the first positions, so
        # that the best n are always the first n of the best m > n.
        threshold = scores[candidates].min()
        above = candidates[scores[candidates] > threshold]
        tied = np.flatnonzero(scores == threshold)[: n - above.size]
        candidates = np.concatenate([above, tied])
    else:
        candidates = np.arange(scores.size)
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order].astype(np.intp)


def nearest(scores: npt.NDArray[np.float64], item: int, length: int) -> RankedRow:
    """The ``length`` best of ``scores`` but ``item`` itself, and their scores."""
    order = top_k(scores, length, np.array([item], dtype=np.intp))
    return order, scores[order]


def block_size(n_items: int, rows: int) -> int:
    """How many rows of ``n_items`` scores one block holds (at least one, at most ``rows``)."""
    return max(1, min(rows, BLOCK_CELLS // max(1, n_items)))


def rank_in_blocks(
    rows: int, n_items: int, lengths: Sequence[int], rank_block: RankBlock
) -> list[Table]:
    """Tables of ``rows`` x ``length`` (one per length): each row's best positions and scores.

    Positions past a row's end are -1; they are int16 when the catalogue fits, and the scores
    float32 (7 digits). ``rank_block`` gives each row's rankings, one per table.
    """
    dtype = np.int16 if n_items < np.iinfo(np.int16).max else np.int32
    tables = [
        (np.full((rows, length), -1, dtype=dtype), np.zeros((rows, length), dtype=np.float32))
        for length in lengths
    ]
    step = block_size(n_items, rows)
    for start in range(0, rows, step):
        block = np.arange(start, min(rows, start + step), dtype=np.intp)
        for row, ranked in zip(block, rank_block(block), strict=True):
            for (table, values), (order, scores) in zip(tables, ranked, strict=True):
                table[row, : order.size] = order
                values[row, : order.size] = scores
    return tables
