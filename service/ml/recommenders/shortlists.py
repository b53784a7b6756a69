"""Ranking: the best n of a score vector, and at fit time every user's shortlist in blocks.

A model scores a block of users (or items) in one product, which reads its matrices once per
block instead of once per user, then ranks each row with the request path's own ranking. The
block products are the row-by-row products done together: each score is the same sum in the same
order, so a shortlisted answer lists what scoring the whole catalogue at the request lists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLOCK_CELLS",
    "RankedRow",
    "Table",
    "block_size",
    "for_each_block",
    "nearest_rows",
    "rank_in_blocks",
    "ranked_rows",
    "ranking_threads",
    "top_k",
    "top_k_rows",
]

#: Scores held per block (float64 cells: 4 MB, one core's L2 cache here); a block of a 20k-item
#: catalogue is 26 rows. Every pass over a block (blend, spans, three selections) then reads
#: the cache, not memory: ``bench.ranking --size 10k:20k:500k`` 18.5 s against 24.8 s with
#: 32 MB blocks (docs/PERFORMANCE.md).
BLOCK_CELLS = 1 << 19
#: ``top_k`` deals a row into ``SPREAD * n`` groups; a floor letting through more than
#: ``CROWD * n`` scores leaves the row to one whole selection.
SPREAD, CROWD = 4, 8

RankedRow = tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]
Table = tuple[npt.NDArray[np.signedinteger[Any]], npt.NDArray[np.float32]]
#: Ranks the rows in a block: per row, one (positions in answer order, their scores) per table.
RankBlock = Callable[[npt.NDArray[np.intp]], Iterable[Sequence[RankedRow]]]


def top_k(
    scores: npt.NDArray[np.float64], n: int, exclude: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.intp]:
    """Return the positions of the ``n`` highest finite scores, best first (ties by position).

    No selection over the whole row: its scores are dealt into ``SPREAD * n`` groups, and the
    ``n``-th highest of the groups' maxima is a floor under the row's ``n``-th score (``n``
    groups reach it).
    Only the few scores at or above the floor are sorted, best first and ties by position, so
    their first ``n`` are the answer. A floor letting through more than ``CROWD * n`` scores (a
    row of ties), or a score that is not finite, leaves the row to one whole selection.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.size:
        scores[exclude] = -np.inf
    scores[np.isnan(scores)] = -np.inf
    if 0 < n < scores.size:
        best = _above(scores, float(_floors(scores[np.newaxis], n)[0]), n)
        if best is not None:
            return best
    return _selected(scores, n)


def _floors(block: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """Each row's floor under its ``n``-th score (``0 < n < `` the rows' length): the ``n``-th
    highest of the maxima of ``SPREAD * n`` disjoint groups of its scores, which ``n`` groups
    reach, so ``n`` scores do.

    Any grouping gives such a floor; numpy takes a maximum along a short contiguous axis slowly,
    so the groups are runs of consecutive scores when runs are long (few groups) and every
    ``groups``-th score when they would be short (measured on 26 x 20k blocks: n=100, 750 us
    in runs of 50 against 211 us strided; n=10, 166 us in runs against 557 us strided).
    """
    rows, m = block.shape
    groups = min(m, SPREAD * n)
    width = m // groups
    scores = block[:, : groups * width]
    if groups > width:
        maxima = scores.reshape(rows, width, groups).max(axis=1)
    else:
        maxima = scores.reshape(rows, groups, width).max(axis=2)
    return np.partition(maxima, groups - n, axis=1)[:, groups - n]


def _above(line: npt.NDArray[np.float64], floor: float, n: int) -> npt.NDArray[np.intp] | None:
    """The best ``n`` of ``line`` from its scores at or above ``floor``; None when too many."""
    above = np.flatnonzero(line >= floor)
    values = line[above]
    if above.size > CROWD * n or not np.isfinite(values).all():
        return None
    # ``above`` is in position order, and a stable sort keeps it among equal scores.
    return above[np.argsort(-values, kind="stable")[:n]]


def _selected(scores: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.intp]:
    """``top_k`` by one selection over the row (excluded and missing scores -inf already)."""
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


def top_k_rows(
    scores: npt.NDArray[np.float64], n: int, excludes: Sequence[npt.NDArray[np.intp]]
) -> list[npt.NDArray[np.intp]]:
    """``top_k`` of each row of ``scores``, excluding ``excludes[row]``: the same positions.

    The exclusions and the groups' maxima are done for the whole block at once; each row is then
    finished as ``top_k`` finishes it.
    """
    rows, m = scores.shape
    if rows == 0 or n <= 0 or n >= m:
        return [top_k(row, n, exclude) for row, exclude in zip(scores, excludes, strict=True)]
    scores = np.array(scores, dtype=np.float64, copy=True)
    lengths = np.fromiter((e.size for e in excludes), dtype=np.intp, count=rows)
    if lengths.any():
        scores[np.repeat(np.arange(rows), lengths), np.concatenate(excludes)] = -np.inf
    scores[np.isnan(scores)] = -np.inf
    best = []
    for line, floor in zip(scores, _floors(scores, n), strict=True):
        picked = _above(line, floor, n)
        best.append(_selected(line, n) if picked is None else picked)
    return best


def ranked_rows(
    scores: npt.NDArray[np.float64], n: int, excludes: Sequence[npt.NDArray[np.intp]]
) -> list[RankedRow]:
    """Each row's ``top_k_rows`` positions and their scores."""
    orders = top_k_rows(scores, n, excludes)
    return [(order, row[order]) for order, row in zip(orders, scores, strict=True)]


def nearest_rows(
    scores: npt.NDArray[np.float64], items: npt.NDArray[np.intp], n: int
) -> list[RankedRow]:
    """``ranked_rows`` of each item's scores (a row each) but the item itself."""
    return ranked_rows(scores, n, [items[k : k + 1] for k in range(len(items))])


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

    def fill(start: int) -> None:
        block = np.arange(start, min(rows, start + step), dtype=np.intp)
        for row, ranked in zip(block, rank_block(block), strict=True):
            for (table, values), (order, scores) in zip(tables, ranked, strict=True):
                table[row, : order.size] = order
                values[row, : order.size] = scores

    for_each_block(fill, range(0, rows, step))
    return tables


def for_each_block(fill: Callable[[int], None], starts: Sequence[int]) -> None:
    """``fill(start)`` for every block, on ``ranking_threads()`` threads.

    Each block must write only its own rows. numpy's and scipy's kernels release the GIL while
    they run, so the blocks' products and selections overlap; the results do not depend on how
    many threads ran them.
    """
    threads = min(ranking_threads(), len(starts))
    if threads < 2:
        for start in starts:
            fill(start)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="ranking") as pool:
        for _ in pool.map(fill, starts):
            pass  # re-raises a block's error here


def ranking_threads() -> int:
    """Threads the fit-time ranking runs on: one per core this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
