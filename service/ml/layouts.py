"""Dataset folders: the three layouts understood, read into canonical item and rating frames.

``wisata``
    ``items.csv`` (id, name, description, categories ``|``-separated, city, price) and
    ``ratings.csv`` (user_id, item_id, rating, timestamp). The packaged demo data uses it, and
    ``wisata-db export`` writes it.
``tourism``
    Kaggle "Indonesia Tourism Destination": ``tourism_with_id.csv`` and ``tourism_rating.csv``
    (``user.csv`` and ``package_tourism.csv`` are not used).
``movielens``
    GroupLens MovieLens: ``movies.csv`` (title -> name, genres -> categories), ``ratings.csv`` and,
    when present, ``tags.csv`` (joined into the description).

Read strictly (training, evaluation), the first bad row stops the read with a
:class:`~service.errors.DatasetError` naming the file, line and column. Read for an import
(``problems`` given), bad rows are left out and each is reported in ``problems`` with its reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from service.errors import DatasetError, first_line

__all__ = [
    "LAYOUTS",
    "RATING_RANGE",
    "Folder",
    "Rejected",
    "detect_layout",
    "read_catalogue",
    "read_folder",
    "split_categories",
]

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


@dataclass(frozen=True)
class Rejected:
    """A row left out of an import, and why."""

    file: str
    line: int
    reason: str


@dataclass(frozen=True)
class Folder:
    """What a folder holds, canonical but not yet merged: items and rating rows."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    layout: str

    @property
    def rating_range(self) -> tuple[float, float]:
        return RATING_RANGE[self.layout]


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


def read_folder(
    directory: Path, layout: str | None = None, problems: list[Rejected] | None = None
) -> Folder:
    """Read the folder's items and ratings, detecting its layout unless one is named.

    Parameters
    ----------
    directory : Path
        The dataset folder.
    layout : str, optional
        One of :data:`LAYOUTS`.
    problems : list, optional
        Given, bad rows are left out and appended here; otherwise the first raises.
    """
    if layout is None:
        layout = detect_layout(directory)
    elif layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    reader = _READERS[layout]
    items, interactions = reader(_Reader(problems), directory)
    return Folder(items.reset_index(drop=True), interactions.reset_index(drop=True), layout)


def read_catalogue(directory: Path, layout: str) -> pd.DataFrame:
    """Read only the folder's catalogue, strictly (an engine that reads the ratings itself).

    Raises
    ------
    DatasetError
        When a catalogue file is missing or malformed.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    items: pd.DataFrame = _CATALOGUES[layout](_Reader(None), directory).reset_index(drop=True)
    return items


def split_categories(text: str) -> list[str]:
    """An item's categories from their ``|``-separated text."""
    return [part.strip() for part in str(text).split("|") if part.strip()]


class _Reader:
    """Reads CSV files of one folder, refusing or leaving out bad rows."""

    def __init__(self, problems: list[Rejected] | None) -> None:
        self.problems = problems

    def refuse(self, path: Path, bad: np.ndarray, reason: Callable[[int], str]) -> np.ndarray:
        """Rows of ``path`` flagged in ``bad``: raise for the first, or record them all.

        Returns the mask of the rows kept.
        """
        positions = np.flatnonzero(bad)
        if positions.size == 0:
            return ~bad
        if self.problems is None:
            position = int(positions[0])
            raise DatasetError(f"{path}, line {_line(position)}, {reason(position)}")
        self.problems.extend(Rejected(path.name, _line(int(p)), reason(int(p))) for p in positions)
        return ~bad

    def csv(
        self, path: Path, required: Sequence[str], optional: Sequence[str] = ()
    ) -> pd.DataFrame:
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
        except UnicodeDecodeError as e:
            raise DatasetError(
                f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the file as UTF-8 CSV"
            ) from e
        except pd.errors.ParserError as e:
            raise DatasetError(
                f"{path}: cannot parse the CSV ({first_line(e)}); fix that row"
            ) from e
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)} in the header (line 1); "
                f"found {', '.join(map(str, frame.columns))}"
            )
        if frame.empty:
            raise DatasetError(f"{path}: the file has a header but no rows")
        return frame[[*required, *(c for c in optional if c in frame.columns)]]

    def ids(self, raw: pd.DataFrame, path: Path, column: str, unique: bool = False) -> np.ndarray:
        """Keep-mask of the rows whose id in ``column`` is present (and unique when asked)."""
        ids = raw[column].str.strip()
        keep = self.refuse(path, (ids == "").to_numpy(), lambda _: f"column {column}: empty id")
        if unique:
            twice = ids.duplicated().to_numpy() & keep
            keep &= self.refuse(
                path,
                twice,
                lambda p: f"column {column}: id {ids.iloc[p]!r} appears twice; ids must be unique",
            )
        return keep

    def numbers(
        self, raw: pd.DataFrame, path: Path, column: str, allow_empty: bool = False
    ) -> tuple[pd.Series, np.ndarray]:
        """The numbers in ``column``, and the keep-mask of the rows that hold one."""
        text = raw[column].str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = (values.isna() & ~((text == "") & allow_empty)).to_numpy()
        keep = self.refuse(
            path, bad, lambda p: f"column {column}: {text.iloc[p]!r} is not a number"
        )
        return values.astype("float64"), keep

    def catalogue(self, path: Path, columns: Sequence[str]) -> pd.DataFrame:
        """Read a catalogue whose ``columns`` are id, name, description, categories, city, price."""
        raw = self.csv(path, columns)
        item_id, name, description, categories, city, price = columns
        keep = self.ids(raw, path, item_id, unique=True)
        prices, priced = self.numbers(raw, path, price, allow_empty=True)
        items = pd.DataFrame(
            {
                "id": raw[item_id].str.strip(),
                "name": raw[name].str.strip(),
                "description": raw[description],
                "categories": raw[categories].map(split_categories),
                "city": raw[city].str.strip(),
                "price": prices,
            }
        )
        kept: pd.DataFrame = items[keep & priced]
        return kept

    def interactions(
        self,
        path: Path,
        columns: tuple[str, str, str, str | None],
        layout: str,
    ) -> pd.DataFrame:
        """Read rating rows: user, item, rating and (optional) timestamp columns."""
        user, item, rating, timestamp = columns
        raw = self.csv(path, [user, item, rating], optional=[timestamp] if timestamp else [])
        keep = self.ids(raw, path, user) & self.ids(raw, path, item)
        ratings, rated = self.numbers(raw, path, rating)
        low, high = RATING_RANGE[layout]
        outside = (((ratings < low) | (ratings > high)) & rated).to_numpy()
        keep &= rated & self.refuse(
            path,
            outside,
            lambda p: f"column {rating}: rating {ratings.iloc[p]:g} is outside {low:g}..{high:g}",
        )
        if timestamp is not None and timestamp in raw.columns:
            times, timed = self.numbers(raw, path, timestamp, allow_empty=True)
            keep &= timed
        else:
            times = pd.Series(np.nan, index=raw.index)
        frame = pd.DataFrame(
            {
                "user_id": raw[user].str.strip(),
                "item_id": raw[item].str.strip(),
                "rating": ratings,
                "timestamp": times,
            }
        )
        kept: pd.DataFrame = frame[keep]
        return kept


def _wisata_items(reader: _Reader, directory: Path) -> pd.DataFrame:
    columns = ("id", "name", "description", "categories", "city", "price")
    return reader.catalogue(directory / "items.csv", columns)


def _tourism_items(reader: _Reader, directory: Path) -> pd.DataFrame:
    columns = ("Place_Id", "Place_Name", "Description", "Category", "City", "Price")
    return reader.catalogue(directory / "tourism_with_id.csv", columns)


def _read_wisata(reader: _Reader, directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = _wisata_items(reader, directory)
    path = directory / "ratings.csv"
    return items, reader.interactions(path, ("user_id", "item_id", "rating", "timestamp"), "wisata")


def _read_tourism(reader: _Reader, directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = _tourism_items(reader, directory)
    path = directory / "tourism_rating.csv"
    ratings = reader.interactions(path, ("User_Id", "Place_Id", "Place_Ratings", None), "tourism")
    return items, ratings


def _read_movielens(reader: _Reader, directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = _movielens_items(reader, directory)
    path = directory / "ratings.csv"
    ratings = reader.interactions(path, ("userId", "movieId", "rating", "timestamp"), "movielens")
    return items, ratings


def _movielens_items(reader: _Reader, directory: Path) -> pd.DataFrame:
    path = directory / "movies.csv"
    raw = reader.csv(path, ["movieId", "title", "genres"])
    keep = reader.ids(raw, path, "movieId", unique=True)
    ids = raw["movieId"].str.strip()
    genres = raw["genres"].map(
        lambda text: [] if text == "(no genres listed)" else split_categories(text)
    )
    description = pd.Series("", index=raw.index)
    tags_path = directory / "tags.csv"
    if tags_path.is_file():
        tags = reader.csv(tags_path, ["movieId", "tag"])
        joined = (
            tags.assign(tag=tags["tag"].str.strip().str.lower())
            .drop_duplicates(["movieId", "tag"])
            .groupby("movieId")["tag"]
            .agg(" ".join)
        )
        description = ids.map(joined).fillna("")
    items: pd.DataFrame = pd.DataFrame(
        {
            "id": ids,
            "name": raw["title"].str.strip(),
            "description": description,
            "categories": genres,
            "city": "",
            "price": np.nan,
        }
    )[keep]
    return items


_READERS: Final = {"wisata": _read_wisata, "tourism": _read_tourism, "movielens": _read_movielens}
_CATALOGUES: Final = {
    "wisata": _wisata_items,
    "tourism": _tourism_items,
    "movielens": _movielens_items,
}


def _line(position: int) -> int:
    """CSV line of the row at ``position`` (the header is line 1)."""
    return position + 2
