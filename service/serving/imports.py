"""Dataset folders into the site database and back: what ``wisata-db`` and a first start do.

An import reads a folder in any of the three layouts tolerantly (bad rows are left out and
reported with their reasons), merges duplicate pairs into their mean as training does, and
writes items and ratings in one transaction, each rating stamped with the time of the import.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from service.db import Database
from service.db.bulk import connected, create_tables, read_tables, write_items, write_ratings
from service.ml.layouts import Rejected, read_folder
from service.sample_data import SAMPLE_DATA_DIR

__all__ = ["SHOWN_REJECTIONS", "export_folder", "import_folder", "init", "seed_if_new"]

logger = logging.getLogger(__name__)

SHOWN_REJECTIONS = 20
"""Rejected rows listed one by one; the rest are counted."""


def init(database: Database) -> list[str]:
    """Create the missing tables; return their names (empty when all were there).

    Raises
    ------
    DatasetError
        If the database cannot be reached or created.
    """
    return create_tables(database)


def import_folder(database: Database, folder: Path) -> dict[str, Any]:
    """Load ``folder`` into ``database`` in one transaction; return what was done.

    Raises
    ------
    DatasetError
        If the folder or a file cannot be read at all, or the database refuses the write.
    """
    rejected: list[Rejected] = []
    read = read_folder(folder, problems=rejected)
    ratings = read.interactions
    known = ratings["item_id"].isin(read.items["id"])
    shown = [f"{r.file} line {r.line}: {r.reason}" for r in rejected[:SHOWN_REJECTIONS]]
    for user, item in ratings.loc[~known, ["user_id", "item_id"]].head(SHOWN_REJECTIONS).values:
        shown.append(f"rating of user {user!r}: item {item!r} is not in the catalogue")
    unknown = int((~known).sum())
    ratings = ratings[known]
    merged = ratings.groupby(["user_id", "item_id"], sort=False, as_index=False).agg(
        rating=("rating", "mean"), timestamp=("timestamp", "max")
    )
    # The time a rating reached the database, not the dataset's own timestamp: the watermark
    # of a model says which rows it has seen, so rows imported after it must come after it.
    merged["created_at"] = datetime.now(UTC)
    with connected(database) as connection:
        items_written = write_items(connection, read.items)
        ratings_written = write_ratings(connection, merged)
    return {
        "database": database.describe(),
        "folder": str(folder),
        "layout": read.layout,
        "items": items_written,
        "ratings": ratings_written,
        "merged_duplicates": len(ratings) - len(merged),
        "rejected": len(rejected) + unknown,
        "rejections": shown[:SHOWN_REJECTIONS],
    }


def export_folder(database: Database, folder: Path) -> dict[str, Any]:
    """Write ``database`` as a wisata-layout folder; return the counts."""
    tables = read_tables(database)
    folder.mkdir(parents=True, exist_ok=True)
    items = tables.items.assign(
        categories=tables.items["categories"].map("|".join),
        price=tables.items["price"].map(_number),
    )
    items.to_csv(folder / "items.csv", index=False)
    ratings = tables.ratings.assign(
        rating=tables.ratings["rating"].map(_number),
        timestamp=tables.ratings["timestamp"].map(lambda t: f"{t:.6f}".rstrip("0").rstrip(".")),
    ).sort_values(["user_id", "timestamp"], kind="stable")
    ratings.to_csv(folder / "ratings.csv", index=False)
    return {"database": database.describe(), "folder": str(folder), "items": len(items),
            "ratings": len(ratings)}  # fmt: skip


def _number(value: float) -> str:
    return "" if pd.isna(value) else f"{value:g}" if float(value).is_integer() else repr(value)


def seed_if_new(database: Database) -> bool:
    """Create a SQLite database that does not exist yet, seeded with the packaged demo data.

    What makes the embedded default (``sqlite:///./data/wisata.db``) work on a first start:
    the feedback API has a catalogue to rate at once. Any other database is left as it is.
    Returns whether it created one.
    """
    if database.kind != "sqlite" or database.url.database is None:
        return False
    path = Path(database.url.database)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    init(database)
    report = import_folder(database, SAMPLE_DATA_DIR)
    logger.info(
        "created %s with the packaged demo data (%d places, %d ratings); load your own with "
        "wisata-db import DIR",
        database.describe(),
        report["items"],
        report["ratings"],
    )
    return True
