"""Per-user normalisation: how the hybrid makes its two sub-models' scores comparable."""

from __future__ import annotations

import numpy as np

from service.ml.recommenders.base import FloatArray

__all__ = ["rescale", "scaled", "span"]


def rescale(scores: FloatArray, normalization: str) -> FloatArray:
    """Per-user normalisation so the two models' scores are comparable before blending."""
    if normalization == "zscore":
        spread = float(scores.std())
        return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


def span(scores: FloatArray, normalization: str) -> tuple[float, float]:
    """What ``rescale`` subtracts from and divides ``scores`` by (divisor 0: all zeros)."""
    if normalization == "zscore":
        spread = float(scores.std())
        return (float(scores.mean()), spread if spread > 0 else 0.0)
    low, high = float(scores.min()), float(scores.max())
    return (low, high - low if high > low else 0.0)


def scaled(scores: FloatArray, offset: float, divisor: float) -> FloatArray:
    """``rescale`` with a user's stored span: the same operations, so the same values."""
    return (scores - offset) / divisor if divisor else np.zeros_like(scores)
