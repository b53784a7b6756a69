"""The ratings table through an async driver: the feedback API's writes and the overlay's reads.

Every call runs on the event loop without blocking it (psycopg's async mode on PostgreSQL,
aiosqlite on SQLite) and within :data:`TIMEOUT` seconds; a database that is down, slow or
refusing gives :class:`~service.errors.DatabaseUnavailable`, never a half-written batch: a batch
is one transaction, committed before :meth:`RatingsStore.add` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Row, Select, event, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.db.bulk import as_utc
from service.db.location import Database
from service.db.schema import ITEMS, METADATA, RATINGS, sqlite_pragmas
from service.errors import DatabaseNotReady, DatabaseUnavailable, UnknownItemError, first_line

__all__ = ["TIMEOUT", "NewRating", "RatingsStore", "StoredRating"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

TIMEOUT: Final = 5.0
"""Seconds one database call may take before it is given up (and answered 503)."""


@dataclass(frozen=True)
class NewRating:
    """A rating to store: the time is the write's."""

    user_id: str
    item_id: str
    rating: float


@dataclass(frozen=True)
class StoredRating:
    """A rating as stored: one row per (user, item), its time the latest rating's."""

    user_id: str
    item_id: str
    rating: float
    created_at: datetime


class RatingsStore:
    """The site database's ratings, for the web process.

    Parameters
    ----------
    database : Database
        Where the ratings are.
    timeout : float
        Seconds one call may take.
    """

    def __init__(self, database: Database, timeout: float = TIMEOUT) -> None:
        self.database = database
        self.timeout = timeout
        self._engine: AsyncEngine = create_async_engine(
            database.async_url(), pool_pre_ping=True, pool_recycle=300
        )
        if database.kind == "sqlite":
            event.listen(self._engine.sync_engine, "connect", sqlite_pragmas)
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._queue: list[_Pending] = []
        self._writer: asyncio.Future[None] | None = None

    async def close(self) -> None:
        """Close every pooled connection (after the calls given up on have ended)."""
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        for task in list(self._abandoned):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._engine.dispose()

    async def check(self) -> None:
        """Make sure the database answers and holds Wisata's tables.

        Raises
        ------
        DatabaseUnavailable
            If it does not answer.
        DatabaseNotReady
            If a table is missing (``wisata-db init`` creates them).
        """

        async def names() -> list[str]:
            async with self._engine.connect() as connection:
                return await connection.run_sync(_table_names)

        present = set(await self._within(names))
        missing = [t.name for t in METADATA.sorted_tables if t.name not in present]
        if missing:
            raise DatabaseNotReady(
                f"{self.database.describe()} has no table {', '.join(missing)}; create them with "
                "wisata-db init (WISATA_DATA names this database)"
            )

    async def add(self, ratings: Sequence[NewRating]) -> list[StoredRating]:
        """Store a batch in one transaction: all of it, or (on any error) none of it.

        Returns the ratings as stored (a pair given twice once, with its last rating).

        A re-rating replaces the user's earlier rating of the item.

        Raises
        ------
        UnknownItemError
            If an item is not in ``wisata_items`` (the first one missing is named).
        DatabaseUnavailable
            If the database fails or does not answer in time. Nothing was written, or (a
            commit under way when time ran out) the whole batch: sending it again is safe.
        """
        now = datetime.now(UTC)
        stored = [
            StoredRating(r.user_id, r.item_id, r.rating, now) for r in _last_per_pair(ratings)
        ]
        pending = _Pending(stored, [r.item_id for r in ratings])
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_queued())
        return await asyncio.shield(pending.done)

    async def _write_queued(self) -> None:
        """Write the batches waiting, together, until none waits (group commit).

        While one transaction commits, the batches posted meanwhile wait; the next transaction
        writes them all, so concurrent writers share the round trips and the commit's flush.
        Each batch is still checked on its own (one with an unknown item is refused alone, and
        writes nothing), and each is acknowledged only after the commit that wrote it. A failed
        transaction fails every batch in it: none of them was written.
        """
        while self._queue:
            group, self._queue = self._queue[:_GROUP_BATCHES], self._queue[_GROUP_BATCHES:]
            try:
                written = await self._within(functools.partial(self._write_group, group))
            except (DatabaseUnavailable, UnknownItemError) as e:
                for pending in group:
                    pending.fail(e)
                continue
            except BaseException as e:  # cancelled with the service: tell every waiter
                for pending in group:
                    pending.fail(DatabaseUnavailable(f"the write was interrupted ({e!r})"))
                raise
            for pending in written:
                if not pending.done.done():
                    pending.done.set_result(pending.stored)

    async def _write_group(self, group: list[_Pending]) -> list[_Pending]:
        wanted = sorted({item for pending in group for item in pending.items})
        async with self._engine.begin() as connection:
            found = await connection.execute(select(ITEMS.c.id).where(ITEMS.c.id.in_(wanted)))
            known = set(found.scalars())
            accepted = []
            for pending in group:
                missing = [item for item in pending.items if item not in known]
                if missing:
                    pending.fail(UnknownItemError(missing[0], where="the catalogue (wisata_items)"))
                else:
                    accepted.append(pending)
            rows = [dataclasses.asdict(r) for pending in accepted for r in pending.stored]
            if rows:
                await connection.execute(self._upsert(), rows)
        return accepted

    async def for_user(self, user_id: str) -> list[StoredRating]:
        """Every stored rating of ``user_id``, newest first."""
        query = (
            select(*RATINGS.c)
            .where(RATINGS.c.user_id == user_id)
            .order_by(RATINGS.c.created_at.desc(), RATINGS.c.item_id)
        )
        return await self._within(lambda: self._rows(query))

    async def since(self, moment: datetime | None) -> list[StoredRating]:
        """The ratings newer than ``moment`` (all of them for None), oldest first."""
        query = select(*RATINGS.c).order_by(RATINGS.c.created_at)
        if moment is not None:
            query = query.where(RATINGS.c.created_at > moment)
        return await self._within(lambda: self._rows(query))

    async def count_since(self, moment: datetime | None) -> int:
        """How many ratings are newer than ``moment``."""
        query = select(func.count()).select_from(RATINGS)
        if moment is not None:
            query = query.where(RATINGS.c.created_at > moment)

        async def count() -> int:
            async with self._engine.connect() as connection:
                return int((await connection.execute(query)).scalar_one())

        return await self._within(count)

    async def _rows(self, query: Select[Any]) -> list[StoredRating]:
        async with self._engine.connect() as connection:
            return [_stored(row) for row in await connection.execute(query)]

    def _upsert(self) -> postgresql.Insert | sqlite.Insert:
        statement = (
            postgresql.insert(RATINGS)
            if self.database.kind == "postgresql"
            else sqlite.insert(RATINGS)
        )
        changed = {"rating": statement.excluded.rating, "created_at": statement.excluded.created_at}
        upsert: postgresql.Insert | sqlite.Insert = statement.on_conflict_do_update(
            index_elements=["user_id", "item_id"], set_=changed
        )
        return upsert

    async def _within(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``work`` for at most :attr:`timeout` seconds; any failure a DatabaseUnavailable.

        On a timeout the answer comes at once: the work is cancelled in the background, where a
        driver may take long to cancel a query on a stuck server (its connection is dropped).
        """
        task = asyncio.ensure_future(work())
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            raise DatabaseUnavailable(
                f"{self.database.describe()} did not answer within {self.timeout:g} s; retry "
                "later (a batch is written whole or not at all)"
            ) from None
        except SQLAlchemyError as e:
            raise DatabaseUnavailable(
                f"{self.database.describe()} failed ({first_line(e)}); nothing was written; "
                "retry later"
            ) from e

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("an abandoned database call ended with %r", task.exception())


_GROUP_BATCHES: Final = 200
"""Batches written by one transaction at most (each holds up to 1,000 ratings)."""


class _Pending:
    """A batch waiting for the transaction that writes it, and the future its writer awaits."""

    def __init__(self, stored: list[StoredRating], items: list[str]) -> None:
        self.stored = stored
        self.items = items
        self.done: asyncio.Future[list[StoredRating]] = asyncio.get_running_loop().create_future()

    def fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


def _last_per_pair(ratings: Sequence[NewRating]) -> list[NewRating]:
    # A batch naming a (user, item) twice keeps its last rating, as two requests in turn would.
    return list({(r.user_id, r.item_id): r for r in ratings}.values())


def _stored(row: Row[Any]) -> StoredRating:
    moment = as_utc(row.created_at)
    assert moment is not None
    return StoredRating(str(row.user_id), str(row.item_id), float(row.rating), moment)


def _table_names(connection: Connection) -> list[str]:
    return list(inspect(connection).get_table_names())
