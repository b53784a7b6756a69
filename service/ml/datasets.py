"""Datasets: a folder of CSV files or the site's database in, canonical items and interactions out.

A source is a folder in one of the layouts of :mod:`service.ml.layouts`, or a database URL
(``sqlite:///path``, ``postgresql://...``) holding the tables of :mod:`service.db.schema`.

Canonical shape
    ``items``: ``id`` (str), ``name`` (str), ``description`` (str), ``categories`` (list[str]),
    ``city`` (str, may be empty), ``price`` (float, NaN when unknown).
    ``interactions``: ``user_id`` and ``item_id`` (categorical of str), ``rating`` (float64),
    ``timestamp`` (float64 unix seconds, NaN when unknown).

Policies
    Duplicate (user, item) pairs are merged into one interaction with the mean rating and the latest
    timestamp (the Kaggle rating file has 403 such pairs and no timestamps to choose a "last" one;
    the database holds one row per pair). Interactions naming an item absent from the catalogue are
    dropped; the count is logged and kept in :attr:`Dataset.dropped_unknown_items`. A database's
    rating scale is the range of its ratings; a folder's is its layout's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from service.db import Database, is_database
from service.db.bulk import Watermark, read_tables
from service.errors import DatasetError
from service.ml.layouts import LAYOUTS, RATING_RANGE, detect_layout, read_folder

__all__ = [
    "LAYOUTS",
    "RATING_RANGE",
    "Dataset",
    "DatasetError",
    "Watermark",
    "detect_layout",
    "load_dataset",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Canonical items and interactions read from one directory."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    layout: str
    source: str
    rating_range: tuple[float, float]
    dropped_unknown_items: int = 0
    merged_duplicates: int = 0
    watermark: Watermark | None = None
    """For a database: the latest rating time and the rows read (what a model has seen)."""

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def fingerprint(self) -> str:
        """Return the sha256 of the canonical items and interactions (order-sensitive)."""
        digest = hashlib.sha256()
        items = self.items.assign(categories=self.items["categories"].map("|".join))
        interactions = self.interactions.astype({"user_id": str, "item_id": str})
        for frame in (items, interactions):
            hashed = pd.util.hash_pandas_object(frame, index=False)
            digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
        return digest.hexdigest()

    def with_interactions(self, interactions: pd.DataFrame) -> Dataset:
        """Return a copy of this dataset holding other interactions (a training split, say)."""
        return Dataset(
            items=self.items,
            interactions=interactions.reset_index(drop=True),
            layout=self.layout,
            source=self.source,
            rating_range=self.rating_range,
            watermark=self.watermark,
        )


def load_dataset(path: str | Path, layout: str | None = None) -> Dataset:
    """Read the dataset at ``path``: a folder (its layout detected unless named) or a database.

    Raises
    ------
    DatasetError
        When the folder matches no layout or a file is empty or malformed (the message names the
        file, the line and the column), or the database cannot be read.
    """
    location = str(path)
    if is_database(location):
        try:
            database = Database.parse(location)
        except ValueError as e:
            raise DatasetError(f"WISATA_DATA: {e}") from e
        return _from_database(database)
    directory = Path(path)
    folder = read_folder(directory, layout)
    return assemble(folder.items, folder.interactions, folder.layout, str(directory))


def _from_database(database: Database) -> Dataset:
    tables = read_tables(database)
    if tables.ratings.empty:
        raise DatasetError(
            f"{database.describe()} holds no rating yet; load some with wisata-db import DIR "
            "or POST /api/ratings"
        )
    ratings = tables.ratings["rating"]
    scale = (float(ratings.min()), float(ratings.max()))
    return assemble(
        tables.items,
        tables.ratings,
        "database",
        database.describe(),
        rating_range=scale,
        watermark=tables.watermark,
    )


def assemble(
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    layout: str,
    source: str,
    *,
    rating_range: tuple[float, float] | None = None,
    watermark: Watermark | None = None,
) -> Dataset:
    """Apply the policies to read items and rating rows; return the canonical dataset."""
    items = items.reset_index(drop=True)
    items["description"] = items["description"].fillna("").astype(str)
    known = interactions["item_id"].isin(items["id"])
    dropped = int((~known).sum())
    if dropped:
        logger.warning(
            "%s: dropped %d interaction(s) naming items absent from the catalogue", source, dropped
        )
    interactions = interactions[known]
    before = len(interactions)
    interactions = (
        interactions.groupby(["user_id", "item_id"], sort=False, as_index=False)
        .agg(rating=("rating", "mean"), timestamp=("timestamp", "max"))
        .reset_index(drop=True)
    )
    merged = before - len(interactions)
    if merged:
        logger.info("%s: merged %d duplicate user/item rating(s) into their mean", source, merged)
    if interactions.empty:
        raise DatasetError(f"{source}: no interaction refers to a catalogue item")
    interactions["user_id"] = interactions["user_id"].astype("category")
    interactions["item_id"] = pd.Categorical(interactions["item_id"], categories=items["id"])
    return Dataset(
        items=items,
        interactions=interactions,
        layout=layout,
        source=source,
        rating_range=rating_range or RATING_RANGE[layout],
        dropped_unknown_items=dropped,
        merged_duplicates=merged,
        watermark=watermark,
    )
