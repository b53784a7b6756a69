"""Bulk reads and writes of the site's database, for training and ``wisata-db`` (blocking calls).

Training reads both tables in one snapshot: on PostgreSQL with ``COPY ... TO STDOUT`` into
pandas, on SQLite through the cursor in chunks; either way the data watermark (latest
``created_at``, row count) is read in the same snapshot, so a model records exactly which
ratings it has seen. Imports write in batches (PostgreSQL: ``COPY`` into a temporary table, then
one upsert), never row by row. Nothing here runs on an event loop: the web process uses
:mod:`service.db.ratings`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, column, create_engine, func, select, text
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from service.db.location import Database
from service.db.schema import (
    CATEGORY_SEPARATOR,
    ITEMS,
    RATINGS,
    create_schema,
    missing_tables,
    watch_sqlite,
)
from service.errors import DatasetError, first_line

__all__ = [
    "Tables",
    "Watermark",
    "as_utc",
    "connected",
    "count_since",
    "create_tables",
    "engine",
    "read_tables",
    "write_items",
    "write_ratings",
]

BATCH: Final = 50_000
"""Rows per batch: fetched from SQLite, written to SQLite, or sent in one COPY write."""
_UTC_TEXT: Final = 'YYYY-MM-DD"T"HH24:MI:SS.US'
_ISO: Final = "%Y-%m-%dT%H:%M:%S.%f"
_EPOCH: Final = pd.Timestamp("1970-01-01")
_CSV_TIME: Final = "%Y-%m-%dT%H:%M:%S.%f%z"


@dataclass(frozen=True)
class Watermark:
    """How far a read of the ratings went: the latest ``created_at`` and how many rows."""

    latest: datetime | None
    rows: int


@dataclass(frozen=True)
class Tables:
    """The two tables as frames (items in canonical columns, ratings) and the watermark."""

    items: pd.DataFrame
    ratings: pd.DataFrame
    watermark: Watermark


def engine(database: Database) -> Engine:
    """A blocking engine on ``database`` (SQLite: foreign keys on, WAL, a busy timeout)."""
    made = create_engine(database.sync_url(), pool_pre_ping=True)
    watch_sqlite(made)
    return made


@contextmanager
def connected(database: Database) -> Iterator[Connection]:
    """A connection in one transaction (committed at the end); the engine is then disposed of.

    Raises
    ------
    DatasetError
        If the database cannot be reached or a statement fails; the message names it.
    """
    made = engine(database)
    try:
        with made.begin() as connection:
            yield connection
    except SQLAlchemyError as e:
        raise DatasetError(_failed(database, e)) from e
    finally:
        made.dispose()


def create_tables(database: Database) -> list[str]:
    """Create the schema's missing tables (idempotent); return the names of those created.

    Raises
    ------
    DatasetError
        If the database cannot be reached or created; the message names it.
    """
    made = engine(database)
    try:
        return create_schema(made)
    except SQLAlchemyError as e:
        raise DatasetError(_failed(database, e)) from e
    finally:
        made.dispose()


def read_tables(database: Database) -> Tables:
    """Read the catalogue and every rating in one snapshot.

    Raises
    ------
    DatasetError
        If the database cannot be read or its tables are missing (then: ``wisata-db init``).
    """
    made = engine(database)
    try:
        missing = missing_tables(made)
        if missing:
            raise DatasetError(
                f"{database.describe()} has no table {', '.join(missing)}; create the schema "
                "with wisata-db init (and load data with wisata-db import DIR)"
            )
        with made.connect() as connection:
            if database.kind == "postgresql":
                connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            latest, rows = connection.execute(
                select(func.max(RATINGS.c.created_at), func.count()).select_from(RATINGS)
            ).one()
            if database.kind == "postgresql":
                items, ratings = _copy_out(connection)
            else:
                items, ratings = _fetch(connection)
            connection.rollback()
    except SQLAlchemyError as e:
        raise DatasetError(_failed(database, e)) from e
    finally:
        made.dispose()
    return Tables(items, ratings, Watermark(as_utc(latest), int(rows)))


def count_since(database: Database, since: datetime | None) -> int:
    """How many ratings are newer than ``since`` (all for None): an index range scan."""
    query = select(func.count()).select_from(RATINGS)
    if since is not None:
        query = query.where(RATINGS.c.created_at > since)
    with connected(database) as connection:
        return int(connection.execute(query).scalar_one())


def write_items(connection: Connection, items: pd.DataFrame) -> int:
    """Insert or replace the catalogue rows of ``items`` (canonical columns); return how many."""
    frame = pd.DataFrame(
        {
            "id": items["id"],
            "name": items["name"],
            "description": items["description"].fillna(""),
            "categories": items["categories"].map(CATEGORY_SEPARATOR.join),
            "city": items["city"].fillna(""),
            "price": items["price"].astype(object).where(items["price"].notna(), None),
        }
    )
    changed = ("name", "description", "categories", "city", "price")
    return _upsert(connection, ITEMS, frame, ["id"], changed)


def write_ratings(connection: Connection, ratings: pd.DataFrame) -> int:
    """Insert or replace ratings (user_id, item_id, rating, created_at in UTC); return how many."""
    frame = ratings[["user_id", "item_id", "rating", "created_at"]]
    return _upsert(connection, RATINGS, frame, ["user_id", "item_id"], ("rating", "created_at"))


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives it back without its zone)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- reading --------------------------------------------------------------------------------


def _copy_out(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        items = _copy_frame(
            cursor, "SELECT id, name, description, categories, city, price FROM wisata_items"
        )
        ratings = _copy_frame(
            cursor,
            "SELECT user_id, item_id, rating, "
            f"to_char(created_at AT TIME ZONE 'UTC', '{_UTC_TEXT}') AS created_at "
            "FROM wisata_ratings",
        )
    finally:
        cursor.close()
    return _items(items), _ratings(ratings)


def _copy_frame(cursor: Any, query: str) -> pd.DataFrame:
    buffer = io.BytesIO()
    with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    return pd.read_csv(buffer, dtype=str, keep_default_na=False)


def _fetch(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = pd.DataFrame(
        connection.execute(select(*ITEMS.c)).all(), columns=[c.name for c in ITEMS.c]
    )
    cursor = connection.exec_driver_sql(
        "SELECT user_id, item_id, rating, created_at FROM wisata_ratings"
    )
    parts = []
    while rows := cursor.fetchmany(BATCH):
        users, products, values, times = zip(*rows, strict=True)
        parts.append(
            pd.DataFrame(
                {"user_id": users, "item_id": products, "rating": values, "created_at": times}
            )
        )
    empty = pd.DataFrame({"user_id": [], "item_id": [], "rating": [], "created_at": []})
    ratings = pd.concat(parts, ignore_index=True) if parts else empty
    return _items(items.fillna({"price": np.nan})), _ratings(ratings)


def _items(raw: pd.DataFrame) -> pd.DataFrame:
    price = pd.to_numeric(raw["price"].replace("", np.nan), errors="coerce")
    return pd.DataFrame(
        {
            "id": raw["id"].astype(str),
            "name": raw["name"].astype(str),
            "description": raw["description"].astype(str),
            "categories": raw["categories"].map(
                lambda joined: [c for c in str(joined).split(CATEGORY_SEPARATOR) if c]
            ),
            "city": raw["city"].astype(str),
            "price": price.astype("float64"),
        }
    ).sort_values("id", kind="stable", ignore_index=True)


def _ratings(raw: pd.DataFrame) -> pd.DataFrame:
    # Both databases give UTC wall times as text: PostgreSQL through to_char, SQLite as stored.
    times = pd.to_datetime(raw["created_at"].astype(str).str.replace(" ", "T"), format=_ISO)
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype(str),
            "item_id": raw["item_id"].astype(str),
            "rating": pd.to_numeric(raw["rating"]).astype("float64"),
            "timestamp": (times - _EPOCH) / pd.Timedelta(seconds=1),
        }
    )


# --- writing --------------------------------------------------------------------------------


def _upsert(
    connection: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: list[str],
    changed: tuple[str, ...],
) -> int:
    if frame.empty:
        return 0
    if connection.dialect.name == "postgresql":
        return _copy_upsert(connection, table, frame, key, changed)
    statement = sqlite.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={name: statement.excluded[name] for name in changed}
    )
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    for start in range(0, len(records), BATCH):
        connection.execute(statement, records[start : start + BATCH])
    return len(records)


def _copy_upsert(
    connection: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: list[str],
    changed: tuple[str, ...],
) -> int:
    """COPY the frame in: straight into an empty table, else through a stage and one upsert."""
    columns = list(frame.columns)
    holds_rows = connection.execute(select(select(text("1")).select_from(table).exists())).scalar()
    if not holds_rows:  # nothing to conflict with: the rows go straight in
        _copy(connection, table, table.name, frame)
        return len(frame)
    stage = f"wisata_stage_{table.name}"
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {stage} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    _copy(connection, table, stage, frame)
    staged = sql_table(stage, *(column(name) for name in columns))
    statement = postgresql.insert(table).from_select(columns, select(*staged.c))
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={name: statement.excluded[name] for name in changed}
    )
    connection.execute(statement)
    return len(frame)


def _copy(connection: Connection, table: Table, target: str, frame: pd.DataFrame) -> None:
    """COPY ``frame`` into ``target`` as CSV text, a batch at a time (no Python call per row).

    Every field is quoted (descriptions hold carriage returns, which CSV must quote); a quoted
    empty field of a nullable column is read as NULL.
    """
    columns = list(frame.columns)
    nullable = [c.name for c in table.c if c.nullable and c.name in columns]
    options = "FORMAT csv" + (f", FORCE_NULL ({', '.join(nullable)})" if nullable else "")
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN ({options})") as copy:
            for start in range(0, len(frame), BATCH):
                chunk = frame.iloc[start : start + BATCH]
                copy.write(
                    chunk.to_csv(
                        header=False, index=False, date_format=_CSV_TIME, quoting=csv.QUOTE_ALL
                    )
                )
    finally:
        cursor.close()


def _failed(database: Database, error: Exception) -> str:
    return (
        f"cannot use {database.describe()} ({first_line(error)}); check WISATA_DATA, that "
        "the database server is running, and that wisata-db init created the tables"
    )
