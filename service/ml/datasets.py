"""Dataset readers: files on disk -> canonical items and interactions.

Three layouts are understood, chosen by the files present in a directory:

``wisata``
    ``items.csv`` (id, name, description, categories ``|``-separated, city, price) and
    ``ratings.csv`` (user_id, item_id, rating, timestamp). The packaged demo data uses it.
``tourism``
    Kaggle "Indonesia Tourism Destination": ``tourism_with_id.csv`` and ``tourism_rating.csv``
    (``user.csv`` and ``package_tourism.csv`` are not used).
``movielens``
    GroupLens MovieLens: ``movies.csv`` (title -> name, genres -> categories), ``ratings.csv`` and,
    when present, ``tags.csv`` (joined into the description).

Canonical shape
    ``items``: ``id`` (str), ``name`` (str), ``description`` (str), ``categories`` (list[str]),
    ``city`` (str, may be empty), ``price`` (float, NaN when unknown).
    ``interactions``: ``user_id`` and ``item_id`` (categorical of str), ``rating`` (float64),
    ``timestamp`` (float64 unix seconds, NaN when unknown).

Policies
    Duplicate (user, item) pairs are merged into one interaction with the mean rating and the latest
    timestamp (the Kaggle rating file has 403 such pairs and no timestamps to choose a "last" one).
    Interactions naming an item absent from the catalogue are dropped; the count is logged and kept
    in :attr:`Dataset.dropped_unknown_items`.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from service.errors import DatasetError

__all__ = [
    "LAYOUTS",
    "Dataset",
    "DatasetError",
    "detect_layout",
    "load_dataset",
]

logger = logging.getLogger(__name__)

#: Files that identify each layout (all must be present), in detection order.
LAYOUTS: Final[dict[str, tuple[str, str]]] = {
    "wisata": ("items.csv", "ratings.csv"),
    "tourism": ("tourism_with_id.csv", "tourism_rating.csv"),
    "movielens": ("movies.csv", "ratings.csv"),
}
RATING_RANGE: Final[dict[str, tuple[float, float]]] = {
    "wisata": (1.0, 5.0),
    "tourism": (1.0, 5.0),
    "movielens": (0.5, 5.0),
}


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
        )


def detect_layout(directory: Path) -> str:
    """Return the layout whose files are all present in ``directory``."""
    if not directory.is_dir():
        raise DatasetError(
            f"dataset directory {directory} does not exist or is not a directory; "
            "point WISATA_DATA (or the command's argument) at a folder of CSV files"
        )
    for layout, files in LAYOUTS.items():
        if all((directory / name).is_file() for name in files):
            return layout
    expected = "; ".join(f"{layout}: {' + '.join(files)}" for layout, files in LAYOUTS.items())
    raise DatasetError(
        f"{directory} matches no known dataset layout; expected the files of one of {expected}"
    )


def load_dataset(path: str | Path, layout: str | None = None) -> Dataset:
    """Read the dataset in ``path``, detecting its layout unless one is named.

    Raises
    ------
    DatasetError
        When the directory matches no layout or a file is empty or malformed; the message names
        the file, the line and the column.
    """
    directory = Path(path)
    if layout is None:
        layout = detect_layout(directory)
    elif layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    readers = {"wisata": _read_wisata, "tourism": _read_tourism, "movielens": _read_movielens}
    items, interactions = readers[layout](directory)
    return _assemble(items, interactions, layout, directory)


# --- layouts -------------------------------------------------------------------------------


def _read_catalogue(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a catalogue whose ``columns`` are id, name, description, categories, city, price."""
    raw = _read_csv(path, columns)
    item_id, name, description, categories, city, price = columns
    return pd.DataFrame(
        {
            "id": _ids(raw, path, item_id, unique=True),
            "name": raw[name].str.strip(),
            "description": raw[description],
            "categories": raw[categories].map(_split_categories),
            "city": raw[city].str.strip(),
            "price": _numbers(raw, path, price, allow_empty=True),
        }
    )


def _read_wisata(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ("id", "name", "description", "categories", "city", "price")
    items = _read_catalogue(directory / "items.csv", columns)
    path = directory / "ratings.csv"
    raw = _read_csv(path, ["user_id", "item_id", "rating"], optional=["timestamp"])
    return items, _interactions(raw, path, "user_id", "item_id", "rating", "timestamp", "wisata")


def _read_tourism(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ("Place_Id", "Place_Name", "Description", "Category", "City", "Price")
    items = _read_catalogue(directory / "tourism_with_id.csv", columns)
    path = directory / "tourism_rating.csv"
    raw = _read_csv(path, ["User_Id", "Place_Id", "Place_Ratings"])
    return items, _interactions(raw, path, "User_Id", "Place_Id", "Place_Ratings", None, "tourism")


def _read_movielens(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = directory / "movies.csv"
    raw = _read_csv(path, ["movieId", "title", "genres"])
    ids = _ids(raw, path, "movieId", unique=True)
    genres = raw["genres"].map(
        lambda text: [] if text == "(no genres listed)" else _split_categories(text)
    )
    description = pd.Series("", index=raw.index)
    tags_path = directory / "tags.csv"
    if tags_path.is_file():
        tags = _read_csv(tags_path, ["movieId", "tag"])
        joined = (
            tags.assign(tag=tags["tag"].str.strip().str.lower())
            .drop_duplicates(["movieId", "tag"])
            .groupby("movieId")["tag"]
            .agg(" ".join)
        )
        description = ids.map(joined).fillna("")
    items = pd.DataFrame(
        {
            "id": ids,
            "name": raw["title"].str.strip(),
            "description": description,
            "categories": genres,
            "city": "",
            "price": np.nan,
        }
    )
    path = directory / "ratings.csv"
    raw = _read_csv(path, ["userId", "movieId", "rating"], optional=["timestamp"])
    return items, _interactions(raw, path, "userId", "movieId", "rating", "timestamp", "movielens")


# --- parsing helpers -------------------------------------------------------------------------


def _read_csv(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> pd.DataFrame:
    """Read ``path`` as strings, checking that it exists, is not empty and has the columns."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # Rows longer than the header would silently lose fields: make that an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False
            )
    except pd.errors.ParserWarning as e:
        raise DatasetError(
            f"{path}: a row has more fields than the header's columns; "
            "check for unquoted commas in that row"
        ) from e
    except pd.errors.EmptyDataError as e:
        raise DatasetError(f"{path}: the file is empty; expected a header and rows") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot parse the CSV ({_first_line(e)}); fix that row") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)} in the header (line 1); "
            f"found {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise DatasetError(f"{path}: the file has a header but no rows")
    keep = [*required, *(c for c in optional if c in frame.columns)]
    return frame[keep]


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _line(position: int) -> int:
    """CSV line of the row at ``position`` (the header is line 1)."""
    return position + 2


def _ids(raw: pd.DataFrame, path: Path, column: str, *, unique: bool = False) -> pd.Series:
    ids = raw[column].str.strip()
    empty = np.flatnonzero((ids == "").to_numpy())
    if empty.size:
        raise DatasetError(f"{path}, line {_line(int(empty[0]))}, column {column}: empty id")
    duplicated = np.flatnonzero(ids.duplicated().to_numpy()) if unique else np.empty(0)
    if unique and duplicated.size:
        position = int(duplicated[0])
        raise DatasetError(
            f"{path}, line {_line(position)}, column {column}: "
            f"id {ids.iloc[position]!r} appears twice; ids must be unique"
        )
    return ids


def _numbers(raw: pd.DataFrame, path: Path, column: str, *, allow_empty: bool = False) -> pd.Series:
    text = raw[column].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & ~((text == "") & allow_empty)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{path}, line {_line(position)}, column {column}: "
            f"{text.iloc[position]!r} is not a number"
        )
    return values.astype("float64")


def _interactions(
    raw: pd.DataFrame,
    path: Path,
    user: str,
    item: str,
    rating: str,
    timestamp: str | None,
    layout: str,
) -> pd.DataFrame:
    ratings = _numbers(raw, path, rating)
    low, high = RATING_RANGE[layout]
    outside = (ratings < low) | (ratings > high)
    if outside.any():
        position = int(np.flatnonzero(outside.to_numpy())[0])
        raise DatasetError(
            f"{path}, line {_line(position)}, column {rating}: rating {ratings.iloc[position]:g} "
            f"is outside {low:g}..{high:g}"
        )
    has_time = timestamp is not None and timestamp in raw.columns
    times = (
        _numbers(raw, path, timestamp, allow_empty=True)
        if has_time and timestamp is not None
        else pd.Series(np.nan, index=raw.index)
    )
    return pd.DataFrame(
        {
            "user_id": _ids(raw, path, user),
            "item_id": _ids(raw, path, item),
            "rating": ratings,
            "timestamp": times,
        }
    )


def _split_categories(text: str) -> list[str]:
    return [part.strip() for part in str(text).split("|") if part.strip()]


def _assemble(
    items: pd.DataFrame, interactions: pd.DataFrame, layout: str, directory: Path
) -> Dataset:
    items = items.reset_index(drop=True)
    items["description"] = items["description"].fillna("").astype(str)
    known = interactions["item_id"].isin(items["id"])
    dropped = int((~known).sum())
    if dropped:
        logger.warning(
            "%s: dropped %d interaction(s) naming items absent from the catalogue",
            directory,
            dropped,
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
        logger.info(
            "%s: merged %d duplicate user/item rating(s) into their mean", directory, merged
        )
    if interactions.empty:
        raise DatasetError(f"{directory}: no interaction refers to a catalogue item")
    interactions["user_id"] = interactions["user_id"].astype("category")
    interactions["item_id"] = pd.Categorical(interactions["item_id"], categories=items["id"])
    return Dataset(
        items=items,
        interactions=interactions,
        layout=layout,
        source=str(directory),
        rating_range=RATING_RANGE[layout],
        dropped_unknown_items=dropped,
        merged_duplicates=merged,
    )
