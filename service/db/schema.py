"""The tables Wisata owns in the site's database, as SQLAlchemy Core, and creating them.

``wisata_items`` is the catalogue; ``wisata_ratings`` holds one row per (user, item): a
re-rating replaces the row, its ``created_at`` the time of the latest rating. Training reads
both; the feedback API writes ratings; the data watermark of a model is the latest
``created_at`` it was trained on, so the ratings after it are found through the index on it.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    Column,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    event,
    inspect,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["ITEMS", "METADATA", "RATINGS", "create_schema", "missing_tables", "sqlite_pragmas"]

CATEGORY_SEPARATOR: Final = "|"
"""How the ``categories`` column joins an item's categories."""

METADATA = MetaData()

ITEMS = Table(
    "wisata_items",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("categories", Text, nullable=False, server_default=""),
    Column("city", Text, nullable=False, server_default=""),
    Column("price", Double, nullable=True),
)

RATINGS = Table(
    "wisata_ratings",
    METADATA,
    Column("user_id", Text, primary_key=True),
    Column("item_id", Text, ForeignKey("wisata_items.id"), primary_key=True),
    Column("rating", Double, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("wisata_ratings_created_at", "created_at"),
)


def create_schema(engine: Engine) -> list[str]:
    """Create the tables and indexes that are missing (idempotent); return the tables created."""
    missing = missing_tables(engine)
    METADATA.create_all(engine, checkfirst=True)
    return missing


def missing_tables(engine: Engine) -> list[str]:
    """The tables of the schema the database does not have."""
    present = set(inspect(engine).get_table_names())
    return [table.name for table in METADATA.sorted_tables if table.name not in present]


def sqlite_pragmas(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    """Per-connection SQLite settings: enforce foreign keys, wait for a writer, journal in WAL.

    SQLite checks ``REFERENCES`` only with ``foreign_keys`` on, and a second writer fails at
    once unless it may wait; WAL lets readers go on while a batch of ratings is written.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def watch_sqlite(engine: Engine) -> None:
    """Apply :func:`sqlite_pragmas` to every connection of a SQLite ``engine``."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
