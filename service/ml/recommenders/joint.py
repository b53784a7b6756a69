"""The hybrid's fit-time ranking: one pass over the users (and the items) for three models.

Sub-models fitted with ``rank=False`` (the model set's) are ranked in the hybrid's own passes:
each user's (and item's) content and collaborative scores are computed once for the three
models, each model ranks them as its own pass would, and MMR runs for a block of users at once.
The content model's item-to-item similarities, where they fit in memory, are computed once for
both passes: MMR reads each user's candidates' similarities from them, and the item pass its
content neighbours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from service.ml.recommenders.base import FloatArray, IntArray, Recommender, learned_digest
from service.ml.recommenders.blend import Span, blend, rescale, span
from service.ml.recommenders.content import pairwise_in
from service.ml.recommenders.mmr import mmr_rows
from service.ml.recommenders.shortlists import RankedRow, nearest_rows, rank_in_blocks, top_k_rows

if TYPE_CHECKING:
    from service.ml.recommenders.content import ContentBased
    from service.ml.recommenders.hybrid import Hybrid

__all__ = ["rank_items", "rank_users", "sub_models_digest"]


def rank_users(hybrid: Hybrid) -> None:
    length = hybrid._shortlist_length()
    pending = _unranked(hybrid, "shortlist_")
    if not length:
        for model in pending:
            model._build_shortlists()
            model._build_neighbours()
        return
    hybrid.spans_ = np.zeros((len(hybrid.user_ids_), 2, 2))
    if hybrid.mmr_lambda < 1.0:
        _similarities(hybrid._parts()[0])  # built once, before the blocks' threads read it
    lengths = [length, *(min(m._shortlist_length(), len(hybrid.catalogue_)) for m in pending)]
    (hybrid.shortlist_, hybrid.shortlist_scores_), *rest = rank_in_blocks(
        len(hybrid.user_ids_),
        len(hybrid.catalogue_),
        lengths,
        lambda rows: _joint_block(hybrid, rows, length, pending),
    )
    for model, (table, values) in zip(pending, rest, strict=True):
        model.shortlist_, model.shortlist_scores_ = table, values


def _joint_block(
    hybrid: Hybrid, rows: IntArray, length: int, pending: Sequence[Recommender]
) -> Iterator[tuple[RankedRow, ...]]:
    content, collaborative = hybrid._parts()
    assert hybrid.spans_ is not None
    c_block, f_block = content._block_scores(rows), collaborative._block_scores(rows)
    seen = [hybrid.seen(row) for row in rows]
    spans = _spans(hybrid, c_block, f_block)
    hybrid.spans_[rows] = spans
    blended = _blend_rows(hybrid, c_block, f_block, spans)
    candidates = top_k_rows(blended, max(length, hybrid.n_candidates), seen)
    others = [
        model._ranked_rows(
            c_block if model is content else f_block, model._shortlist_length(), seen
        )
        for model in pending
    ]
    orders = _mmr_orders(hybrid, list(blended), candidates, length)
    for k, (scores, order) in enumerate(zip(blended, orders, strict=True)):
        yield ((order, scores[order]), *(ranked[k] for ranked in others))


def _mmr_orders(
    hybrid: Hybrid, blended: list[FloatArray], candidates: list[IntArray], length: int
) -> list[IntArray]:
    """What ``_rank`` orders for each row (``length`` picks), MMR run for the rows at once.

    MMR is greedy: its first ``length`` picks among every candidate are its answer for
    ``length``. Rows with fewer candidates than ``n_candidates`` are ranked one by one.
    """
    lam = hybrid.mmr_lambda
    if lam == 1.0:
        return [order[:length] for order in candidates]
    orders = list(candidates)
    full = [i for i, order in enumerate(candidates) if order.size == hybrid.n_candidates]
    if full:
        content = hybrid._parts()[0]
        table = _similarities(content)
        relevance = np.stack([rescale(blended[i][candidates[i]], "minmax") for i in full])
        similarity = np.stack(
            [
                content.pairwise(candidates[i])
                if table is None
                else pairwise_in(table, candidates[i])
                for i in full
            ]
        )
        for i, picks in zip(full, mmr_rows(relevance, similarity, lam), strict=True):
            orders[i] = candidates[i][picks[:length]]
    for i, order in enumerate(candidates):
        if order.size != hybrid.n_candidates:
            orders[i] = order[hybrid._mmr_picks(order, blended[i][order], length, lam)]
    return orders


def _similarities(content: ContentBased) -> npt.NDArray[np.float32] | None:
    """The content model's ``similarity_table``, built on first use and kept for the item pass.

    ``rank_items`` drops it; ``Recommender.__getstate__`` never pickles it.
    """
    if "_similarity_cache" not in content.__dict__:
        content.__dict__["_similarity_cache"] = content.similarity_table()
    table: npt.NDArray[np.float32] | None = content.__dict__["_similarity_cache"]
    return table


def _unranked(hybrid: Hybrid, table: str) -> list[Recommender]:
    """The sub-models fitted with ``rank=False``, whose ``table`` waits for this pass."""
    return [
        model
        for model in hybrid._parts()
        if getattr(model, table, None) is None
        and (model._shortlist_length() if table == "shortlist_" else model._neighbours_length())
    ]


def rank_items(hybrid: Hybrid) -> None:
    content, collaborative = hybrid._parts()
    length = hybrid._neighbours_length()
    pending = _unranked(hybrid, "neighbours_")
    if length > 0:
        _similarities(content)  # built once, before the blocks' threads read it
        collaborative._unit_item_factors()
        lengths = [length, *(m._neighbours_length() for m in pending)]
        (hybrid.neighbours_, hybrid.neighbour_scores_), *rest = rank_in_blocks(
            len(hybrid.catalogue_),
            len(hybrid.catalogue_),
            lengths,
            lambda items: _neighbour_block(hybrid, items, lengths, pending),
        )
        for model, (table, values) in zip(pending, rest, strict=True):
            model.neighbours_, model.neighbour_scores_ = table, values
    content.__dict__.pop("_similarity_cache", None)
    for model in (content, collaborative):
        model.__dict__.pop("_digest_cache", None)  # its learned arrays may have just grown
    if hybrid.shortlist_ is not None:
        hybrid.shortlist_of_ = sub_models_digest(content, collaborative)


def _neighbour_block(
    hybrid: Hybrid, items: IntArray, lengths: Sequence[int], pending: Sequence[Recommender]
) -> Iterator[tuple[RankedRow, ...]]:
    content, collaborative = hybrid._parts()
    table = _similarities(content)
    c_block = (
        content._block_item_scores(items)
        if table is None
        else np.asarray(table[items], dtype=np.float64)
    )
    f_block = collaborative._block_item_scores(items)
    tables = [
        nearest_rows(scores, items, length)
        for scores, length in zip(
            [
                _blend_rows(hybrid, c_block, f_block, _spans(hybrid, c_block, f_block)),
                *(c_block if model is content else f_block for model in pending),
            ],
            lengths,
            strict=True,
        )
    ]
    yield from zip(*tables, strict=True)


def _spans(
    hybrid: Hybrid, c_block: npt.NDArray[np.float64], f_block: npt.NDArray[np.float64]
) -> list[tuple[Span, Span]]:
    """Each row's spans of its content and collaborative scores (a row's own min, max, ...)."""
    norm = hybrid.normalization
    return [(span(c, norm), span(f, norm)) for c, f in zip(c_block, f_block, strict=True)]


def _blend_rows(
    hybrid: Hybrid,
    c_block: npt.NDArray[np.float64],
    f_block: npt.NDArray[np.float64],
    spans: Sequence[tuple[Span, Span]],
) -> npt.NDArray[np.float64]:
    """``_blend`` row by row, from the rows' ``spans`` (a 2-D mean or std could sum in another
    order than a row's)."""
    blended = np.empty_like(c_block)
    for k, (c, f, row_spans) in enumerate(zip(c_block, f_block, spans, strict=True)):
        blended[k] = blend(c, f, hybrid.weights_, row_spans)
    return blended


def sub_models_digest(content: Recommender, collaborative: Recommender) -> str:
    """What ``shortlist_of_`` records: the learned arrays of the sub-models ranked with."""
    return learned_digest(content) + learned_digest(collaborative)
