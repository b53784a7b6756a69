"""One served model: what a registry slot holds, and the facts answers read from it.

A slot is replaced whole on every change, never mutated, so a request reading one sees one
complete model with the header and object it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from service.artifacts import ArtifactHeader
from service.ml.recommenders import Recommender
from service.serving.status import ModelState
from storage import ObjectInfo

__all__ = ["Slot"]


@dataclass(frozen=True)
class Slot:
    """One model as served (or why none is)."""

    model: Recommender | None = None
    header: ArtifactHeader | None = None
    artifact: ObjectInfo | None = None
    state: ModelState = ModelState.NOT_TRAINED
    reason: str | None = "no artifact in the store yet"
    load_seconds: float | None = None
    last_error: str | None = None

    def identity(self) -> str:
        """What tells two served versions apart: differs whenever answers may.

        The payload checksum; for the hybrid, a digest of its own checksum and its sub-models'
        (retrained on new ratings, its own bytes may stay the same). ``""`` when nothing serves.
        """
        header = self.header
        if header is None:
            return ""
        if not header.parents:
            return header.payload_sha256
        parts = [header.payload_sha256, *(f"{n}={c}" for n, c in sorted(header.parents.items()))]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def watermark(self) -> datetime | None:
        """Up to when the model knows the ratings (None when nothing serves).

        The data watermark its artifact records, or for an artifact written before watermarks
        were recorded, the time it was trained.
        """
        if self.header is None:
            return None
        return datetime.fromisoformat(
            self.header.dataset.latest_rating_at or self.header.trained_at
        )

    def rating_scale(self) -> tuple[float, float] | None:
        """The lowest and highest rating of the data the model was trained on."""
        if self.header is not None and self.header.dataset.rating_scale is not None:
            return self.header.dataset.rating_scale
        if self.model is None:
            return None
        ratings = self.model.user_items_.data  # an artifact from before scales were recorded
        return (float(ratings.min()), float(ratings.max())) if ratings.size else None
