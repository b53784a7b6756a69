"""The feedback side of serving: ratings written to the site's database and counted at once.

:class:`Feedback` owns the async ratings store and the in-memory overlay of recent ratings. A
batch posted here is written in one transaction, then added to the overlay, so this process's
next answer counts it; every reload interval the ratings newer than the served models are read
again, so another replica's writes count within that interval. While the database is down,
answers keep coming from the models and the overlay as they are, and writes are refused.

A model's watermark is the latest rating time in the snapshot it was trained on. A rating whose
transaction began before that snapshot but committed after it (a write in flight during the
training's read, a matter of milliseconds) is older than the watermark yet unseen: it counts
from the next training on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from service.db.ratings import NewRating, RatingsStore, StoredRating
from service.errors import DatabaseUnavailable
from service.ml.recommenders import MODEL_NAMES
from service.serving.overlay import RecentRatings
from service.serving.registry import Registry

__all__ = ["Feedback"]

logger = logging.getLogger(__name__)


class Feedback:
    """The ratings store and the recent ratings of the models ``registry`` serves."""

    def __init__(self, store: RatingsStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.recent = RecentRatings()
        self._started = datetime.now(UTC)

    @property
    def reachable(self) -> bool:
        """Whether the database answered the last call."""
        return self.recent.available

    @property
    def error(self) -> str | None:
        """Why the last call to the database failed, if it did."""
        return self.recent.error

    async def add(self, ratings: Sequence[NewRating]) -> list[StoredRating]:
        """Write a batch (one transaction), then count it in this process's answers at once."""
        try:
            stored = await self.store.add(ratings)
        except DatabaseUnavailable as e:
            self.recent.failed(str(e))
            raise
        self.recent.succeeded()
        self.recent.merge(stored)
        return stored

    async def refresh(self) -> int:
        """Drop what the served models cover, read the newer ratings again; return how many.

        Raises
        ------
        DatabaseUnavailable
            If the database fails; the overlay keeps what it had.
        """
        self.recent.cover(self._floor())
        try:
            rows = await self.store.since(self.recent.read_from())
        except DatabaseUnavailable as e:
            self.recent.failed(str(e))
            raise
        self.recent.succeeded()
        return self.recent.merge(rows)

    def ratings_of(self, user_id: str, model: str) -> dict[str, float]:
        """The user's ratings newer than the served ``model``'s watermark: item -> rating."""
        return self.recent.of(user_id, self.registry.served(model).watermark())

    def _floor(self) -> datetime:
        """What every served model covers: the oldest watermark.

        With no model served yet, the time this process started: a model trained later reads
        the ratings itself, so only the ones written since are worth holding.
        """
        marks = [self.registry.served(name).watermark() for name in MODEL_NAMES]
        served = [mark for mark in marks if mark is not None]
        return min(served) if served else self._started
