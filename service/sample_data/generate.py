"""Seeded generator of the demo ratings, ``ratings.csv``, from the catalogue ``items.csv``.

Run ``python -m service.sample_data.generate`` to rewrite the committed file; the same seed always
gives the same bytes.

Model
-----
Item ``i`` gets a popularity ``pop_i ~ LogNormal(0, popularity_sigma)`` and a quality
``q_i ~ Normal(0, item_quality_sd)``. User ``u`` draws

* a taste ``theta_u ~ Dirichlet(category_alpha)`` over the six categories; a small alpha gives
  most users one or two favourite categories;
* a home city, with probability proportional to the number of catalogue items in it;
* a rating bias ``b_u ~ Normal(0, user_bias_sd)`` and a count ``n_u`` uniform in
  ``[min_ratings, max_ratings]``.

The taste for an item, ``t_ui``, is the mean of ``theta_u`` over the item's categories (0..1).
The user visits ``n_u`` distinct items drawn without replacement with probability proportional to
``pop_i * (t_ui + taste_floor) * c_ui``, where ``c_ui`` is ``home_city_weight`` for an item in the
home city and 1 elsewhere. Each visit is rated
``round(base_rating + affinity_slope * t_ui + b_u + q_i + Normal(0, noise_sd))`` clipped to 1..5,
at a timestamp uniform over 2025 (UTC).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.sample_data import SAMPLE_DATA_DIR

CATEGORIES: tuple[str, ...] = (
    "Budaya",
    "Taman Hiburan",
    "Cagar Alam",
    "Bahari",
    "Pusat Perbelanjaan",
    "Tempat Ibadah",
)
# 2025-01-01T00:00:00Z inclusive to 2026-01-01T00:00:00Z exclusive.
YEAR_START, YEAR_END = 1_735_689_600, 1_767_225_600
RATINGS_HEADER = ("user_id", "item_id", "rating", "timestamp")


class SampleDataError(ValueError):
    """The demo catalogue cannot be used to generate ratings."""


@dataclass(frozen=True)
class TasteModel:
    """Parameters of the synthetic users (the module docstring gives the model)."""

    category_alpha: float = 0.3
    home_city_weight: float = 6.0
    popularity_sigma: float = 0.8
    taste_floor: float = 0.05
    min_ratings: int = 15
    max_ratings: int = 40
    base_rating: float = 2.8
    affinity_slope: float = 3.4
    user_bias_sd: float = 0.3
    item_quality_sd: float = 0.25
    noise_sd: float = 0.6


@dataclass(frozen=True)
class Catalogue:
    """What the generator needs from ``items.csv``: ids, category one-hot rows, cities."""

    item_ids: list[str]
    category_matrix: NDArray[np.float64]  # n_items x 6, each row sums to 1
    cities: list[str]


def read_catalogue(path: Path) -> Catalogue:
    """Read ``items.csv`` and turn each item's categories into a row that averages the taste.

    Raises
    ------
    SampleDataError
        If the file is missing or a row has no id, an unknown category or no city.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as e:
        raise SampleDataError(f"cannot read the catalogue {path}: {e}; pass --items") from e
    matrix = np.zeros((len(rows), len(CATEGORIES)))
    for index, row in enumerate(rows):
        line = index + 2  # the header is line 1
        names = [name.strip() for name in (row.get("categories") or "").split("|") if name.strip()]
        unknown = [name for name in names if name not in CATEGORIES]
        if not row.get("id") or not names or unknown or not row.get("city"):
            raise SampleDataError(
                f"{path} line {line}: need an id, a city and categories among {CATEGORIES}, "
                f"got id={row.get('id')!r} city={row.get('city')!r} categories={names!r}"
            )
        for name in names:
            matrix[index, CATEGORIES.index(name)] = 1.0 / len(names)
    if not rows:
        raise SampleDataError(f"{path} holds no items; restore it from version control")
    return Catalogue([row["id"] for row in rows], matrix, [row["city"] for row in rows])


def generate_ratings(
    catalogue: Catalogue, n_users: int = 300, seed: int = 42, model: TasteModel | None = None
) -> list[tuple[str, str, int, int]]:
    """Draw synthetic ratings with category and city taste structure.

    Parameters
    ----------
    catalogue : Catalogue
        The items to rate, from :func:`read_catalogue`.
    n_users : int
        How many users to simulate; ids are ``u001``, ``u002``, ...
    seed : int
        Seed of the numpy generator; equal seeds give equal output.
    model : TasteModel, optional
        Model parameters; the defaults produced the committed ``ratings.csv``.

    Returns
    -------
    list of (user_id, item_id, rating, timestamp)
        Sorted by user, then timestamp; no user rates an item twice.
    """
    model = model or TasteModel()
    n_items = len(catalogue.item_ids)
    if n_users < 1 or not 1 <= model.min_ratings <= model.max_ratings <= n_items:
        raise SampleDataError(
            f"need n_users >= 1 and 1 <= min_ratings <= max_ratings <= {n_items} items, got "
            f"n_users={n_users}, min_ratings={model.min_ratings}, max_ratings={model.max_ratings}"
        )
    rng = np.random.default_rng(seed)
    popularity = rng.lognormal(0.0, model.popularity_sigma, size=n_items)
    quality = rng.normal(0.0, model.item_quality_sd, size=n_items)
    cities = np.array(catalogue.cities)
    city_names, city_sizes = np.unique(cities, return_counts=True)
    width = max(3, len(str(n_users)))  # u001.., wider only past 999 users
    rows: list[tuple[str, str, int, int]] = []
    for number in range(1, n_users + 1):
        theta = rng.dirichlet(np.full(len(CATEGORIES), model.category_alpha))
        home = rng.choice(city_names, p=city_sizes / city_sizes.sum())
        bias = rng.normal(0.0, model.user_bias_sd)
        count = int(rng.integers(model.min_ratings, model.max_ratings + 1))
        taste = catalogue.category_matrix @ theta
        weight = popularity * (taste + model.taste_floor)
        weight = weight * np.where(cities == home, model.home_city_weight, 1.0)
        visited = rng.choice(n_items, size=count, replace=False, p=weight / weight.sum())
        latent = model.base_rating + model.affinity_slope * taste[visited] + bias
        latent = latent + quality[visited] + rng.normal(0.0, model.noise_sd, size=count)
        ratings = np.clip(np.rint(latent), 1, 5).astype(int)
        stamps = rng.integers(YEAR_START, YEAR_END, size=count)
        user_id = f"u{number:0{width}d}"
        for position in np.argsort(stamps, kind="stable"):
            item_id = catalogue.item_ids[visited[position]]
            rows.append((user_id, item_id, int(ratings[position]), int(stamps[position])))
    return rows


def write_ratings(rows: Sequence[tuple[str, str, int, int]], path: Path) -> None:
    """Write ratings as CSV with ``\\n`` line endings, so output bytes match across platforms."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(RATINGS_HEADER)
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m service.sample_data.generate",
        description="Rewrite the demo ratings deterministically from the demo catalogue.",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--users", type=int, default=300, help="number of users (default 300)")
    parser.add_argument("--items", type=Path, default=SAMPLE_DATA_DIR / "items.csv")
    parser.add_argument("--out", type=Path, default=SAMPLE_DATA_DIR / "ratings.csv")
    args = parser.parse_args(argv)
    try:
        rows = generate_ratings(read_catalogue(args.items), n_users=args.users, seed=args.seed)
        write_ratings(rows, args.out)
    except (SampleDataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(rows)} ratings by {args.users} users to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
