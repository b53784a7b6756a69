"""Ratings newer than the served models' watermark, per user, kept in memory.

A visitor's new rating counts at once: the feedback API adds it here after the commit, and every
reload interval the ratings newer than the served models' watermark are read again from the
database, so another replica's writes are seen too. A model answers a user with such ratings
through its fold-in path, the trained ratings merged with the new ones. A model version with a
later watermark covers what it was trained on, and those ratings are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final

from service.db.ratings import StoredRating

__all__ = ["OVERLAP", "RecentRatings"]

OVERLAP: Final = timedelta(seconds=60)
"""How far before the newest rating seen each refresh reads again.

A rating's time is taken before its transaction commits, so a refresh can see a later rating
before an earlier one that commits after it; reading this far back catches such stragglers (a
rating read twice is merged, not counted twice).
"""


class RecentRatings:
    """The recent ratings of each user: item -> (rating, time), the latest per item."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, tuple[float, datetime]]] = {}
        self._floor: datetime | None = None
        self._newest: datetime | None = None
        self.available = True
        """Whether the last read of the database succeeded."""
        self.error: str | None = None
        """Why it failed, if it did."""

    def __len__(self) -> int:
        return sum(len(items) for items in self._users.values())

    @property
    def users(self) -> int:
        """How many users have recent ratings."""
        return len(self._users)

    def merge(self, rows: Iterable[StoredRating]) -> int:
        """Add ratings (from a write or a read); a later rating of the same item wins.

        Ratings at or before the floor (covered by every served model) are left out.
        Returns how many entries changed.
        """
        changed = 0
        for row in rows:
            if self._floor is not None and row.created_at <= self._floor:
                continue
            items = self._users.setdefault(row.user_id, {})
            known = items.get(row.item_id)
            if known is None or known[1] <= row.created_at:
                changed += known != (row.rating, row.created_at)
                items[row.item_id] = (row.rating, row.created_at)
            if self._newest is None or row.created_at > self._newest:
                self._newest = row.created_at
        return changed

    def cover(self, floor: datetime | None) -> None:
        """Drop what every served model was trained on (``floor``: their oldest watermark)."""
        self._floor = floor
        if floor is None:
            return
        for user in list(self._users):
            kept = {i: entry for i, entry in self._users[user].items() if entry[1] > floor}
            if kept:
                self._users[user] = kept
            else:
                del self._users[user]

    def read_from(self) -> datetime | None:
        """Where the next refresh starts reading: a little before the newest rating seen."""
        if self._newest is None:
            return self._floor
        start = self._newest - OVERLAP
        return start if self._floor is None or start > self._floor else self._floor

    def of(self, user_id: str, after: datetime | None) -> dict[str, float]:
        """The user's ratings newer than ``after`` (a model's watermark): item -> rating."""
        items = self._users.get(user_id)
        if not items:
            return {}
        return {item: rating for item, (rating, at) in items.items() if after is None or at > after}

    def stamp(self, user_id: str) -> tuple[int, datetime | None]:
        """What changes whenever the user's recent ratings do (for the response cache key)."""
        items = self._users.get(user_id)
        if not items:
            return (0, None)
        return (len(items), max(at for _, at in items.values()))

    def failed(self, error: str) -> None:
        """The last read of the database failed with ``error``."""
        self.available, self.error = False, error

    def succeeded(self) -> None:
        """The last read of the database succeeded."""
        self.available, self.error = True, None


def merged(trained: Mapping[str, float], recent: Mapping[str, float]) -> list[tuple[str, float]]:
    """A user's trained ratings with the recent ones on top (a re-rating replaces the old)."""
    return list({**trained, **recent}.items())
