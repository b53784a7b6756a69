"""Per-user normalisation: how the hybrid makes its two sub-models' scores comparable."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.ml.recommenders.base import FloatArray

__all__ = ["Span", "blend", "rescale", "span"]

#: What ``rescale`` subtracts from a user's scores and divides them by.
Span = tuple[float, float]


def rescale(scores: FloatArray, normalization: str) -> FloatArray:
    """Per-user normalisation so the two models' scores are comparable before blending."""
    if normalization == "zscore":
        spread = float(scores.std())
        return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def span(scores: FloatArray, normalization: str) -> Span:
    """What ``rescale`` subtracts from and divides ``scores`` by (divisor 0: all zeros)."""
    if normalization == "zscore":
        spread = float(scores.std())
        return (float(scores.mean()), spread if spread > 0 else 0.0)
    low, high = float(scores.min()), float(scores.max())
    return (low, high - low if high > low else 0.0)


def blend(
    content: FloatArray, collab: FloatArray, weights: Sequence[float], spans: tuple[Span, Span]
) -> FloatArray:
    """``weights[0] * rescale(content) + weights[1] * rescale(collab)``, from their ``spans``.

    ``rescale``'s operations with a user's stored spans, so the same bits, done in two buffers
    instead of five temporaries: the fit-time ranking blends every user's whole catalogue.
    """
    out = np.empty_like(content, dtype=np.float64)
    part = np.empty_like(out)
    for buffer, scores, weight, (offset, divisor) in (
        (out, content, weights[0], spans[0]),
        (part, collab, weights[1], spans[1]),
    ):
        if divisor:
            np.subtract(scores, offset, out=buffer)
            np.divide(buffer, divisor, out=buffer)
        else:
            buffer.fill(0.0)
        np.multiply(weight, buffer, out=buffer)
    return np.add(out, part, out=out)
