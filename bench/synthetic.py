"""A seeded synthetic dataset of any size, shaped like real rating data, for scale benchmarks.

Usage: python -m bench.synthetic USERS ITEMS INTERACTIONS OUT_DIR [--seed 0]
(writes the ``wisata`` CSV layout, which :func:`service.ml.datasets.load_dataset` reads).

How the data is made
    Categories each own a vocabulary of made-up words and a centroid in a latent taste space.
    An item has one category (a quarter of them a second one), a latent vector near its
    category's centroid, a name and a description drawn mostly from its categories' words (so
    TF-IDF has real vocabulary to separate), a city and a price. Item popularity follows a
    power law (Zipf over a random ranking of the items). A user has an activity level
    (log-normal, so a few users rate a lot), two favourite categories and a latent vector near
    them. Each interaction picks a category from the user's tastes (or, one time in ten, any
    category), draws a few candidate items of that category by popularity and keeps the one the
    user's latent vector likes best: popularity x taste. The rating (1-5) is the user-item
    affinity plus item quality, user leniency and noise, cut at fixed quantiles so the rating
    distribution resembles real five-star data.

Everything is built with numpy (no Python loop over users or interactions), so 20 M interactions
take well under a minute and little more memory than the result.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from service.ml.datasets import Dataset

__all__ = ["SyntheticSpec", "generate", "write_wisata"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_CONSONANTS = list("bcdfghjklmnprstvwyz")
_VOWELS = list("aeiou")
#: Share of ratings 1..5 (cut points of the affinity quantiles): skewed high like real ratings.
_RATING_SHARES = (0.05, 0.10, 0.22, 0.35, 0.28)
_CITIES = 40
_CANDIDATES = 4
_CHUNK = 2_000_000
_TASTE_ROUNDS = 4


@dataclass(frozen=True)
class SyntheticSpec:
    """Shape of a synthetic dataset; the defaults resemble a travel or movie catalogue."""

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 0
    n_categories: int = 30
    n_factors: int = 16
    words_per_category: int = 300
    common_words: int = 2000
    description_words: int = 30
    popularity_exponent: float = 0.9
    activity_sigma: float = 1.0
    taste_temperature: float = 0.3

    def check(self) -> None:
        """Raise ValueError when the sizes cannot make a dataset."""
        if min(self.n_users, self.n_items, self.n_interactions) < 1:
            raise ValueError(f"every size must be >= 1, got {self}")
        if self.n_interactions < self.n_users:
            raise ValueError(
                f"{self.n_interactions} interactions cannot give each of {self.n_users} users one"
            )
        if self.n_interactions > self.n_users * self.n_items // 4:
            raise ValueError(
                f"{self.n_interactions} interactions is more than a quarter of all "
                f"{self.n_users} x {self.n_items} pairs; use fewer or a larger catalogue"
            )


def generate(spec: SyntheticSpec) -> Dataset:
    """Return a :class:`~service.ml.datasets.Dataset` of exactly ``spec``'s sizes.

    The same spec always gives the same data. Interactions are unique (user, item) pairs with
    ``user_id`` and ``item_id`` categorical of str, as :func:`service.ml.datasets.load_dataset`
    returns them.
    """
    spec.check()
    rng = np.random.default_rng(spec.seed)
    centroids = _unit(rng.standard_normal((spec.n_categories, spec.n_factors)))
    category_sizes = rng.dirichlet(np.full(spec.n_categories, 2.0))
    primary = rng.choice(spec.n_categories, spec.n_items, p=category_sizes)
    secondary = np.where(
        rng.random(spec.n_items) < 0.25,
        rng.choice(spec.n_categories, spec.n_items, p=category_sizes),
        -1,
    )
    secondary[secondary == primary] = -1
    item_vectors = _unit(centroids[primary] + 0.8 * _noise(rng, spec.n_items, spec.n_factors))
    ranks = rng.permutation(spec.n_items) + 1
    popularity = ranks.astype(np.float64) ** -spec.popularity_exponent

    favourites = rng.choice(spec.n_categories, (spec.n_users, 2), p=category_sizes)
    lean = rng.beta(4.0, 2.0, spec.n_users)  # share of the first favourite
    taste = centroids[favourites[:, 0]] * lean[:, None]
    taste += centroids[favourites[:, 1]] * (1.0 - lean[:, None])
    users = _Users(favourites, lean, _unit(taste + 0.5 * _noise(rng, spec.n_users, spec.n_factors)))

    items = _items(spec, rng, primary, secondary)
    user_codes, item_codes = _interactions(
        spec, rng, users, primary, secondary, item_vectors, popularity
    )
    ratings = _ratings(spec, rng, user_codes, item_codes, users.vectors, item_vectors)
    timestamps = 1.6e9 + rng.random(len(user_codes)) * 3 * 365 * 86400.0
    interactions = pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(user_codes, categories=_ids("u", spec.n_users)),
            "item_id": pd.Categorical.from_codes(item_codes, categories=pd.Index(items["id"])),
            "rating": ratings,
            "timestamp": np.floor(timestamps),
        }
    )
    return Dataset(
        items=items,
        interactions=interactions,
        layout="wisata",
        source=(
            f"synthetic users={spec.n_users} items={spec.n_items} "
            f"interactions={spec.n_interactions} seed={spec.seed}"
        ),
        rating_range=(1.0, 5.0),
    )


def write_wisata(dataset: Dataset, directory: str | Path) -> Path:
    """Write ``dataset`` as ``items.csv`` and ``ratings.csv`` (the ``wisata`` layout)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    items = dataset.items.assign(categories=dataset.items["categories"].map("|".join))
    items.to_csv(out / "items.csv", index=False)
    dataset.interactions.to_csv(out / "ratings.csv", index=False, float_format="%.10g")
    return out


# --- pieces ----------------------------------------------------------------------------------


def _unit(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _noise(rng: np.random.Generator, rows: int, columns: int) -> FloatArray:
    return rng.standard_normal((rows, columns)) / math.sqrt(columns)


def _ids(prefix: str, count: int) -> pd.Index:
    width = len(str(count))
    return pd.Index([f"{prefix}{i:0{width}d}" for i in range(1, count + 1)], dtype="str")


def _words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """``count`` new pronounceable words (2-4 syllables) not in ``taken``."""
    found: list[str] = []
    while len(found) < count:
        syllables = int(rng.integers(2, 5))
        word = "".join(
            _CONSONANTS[int(rng.integers(len(_CONSONANTS)))] + _VOWELS[int(rng.integers(5))]
            for _ in range(syllables)
        )
        if word not in taken:
            taken.add(word)
            found.append(word)
    return found


def _zipf_choice(rng: np.random.Generator, size: int, shape: tuple[int, ...]) -> IntArray:
    """Indices in ``range(size)`` with Zipf-like frequencies (a few words are very common)."""
    weights = 1.0 / np.arange(1, size + 1)
    return rng.choice(size, shape, p=weights / weights.sum()).astype(np.int64)


def _items(
    spec: SyntheticSpec, rng: np.random.Generator, primary: IntArray, secondary: IntArray
) -> pd.DataFrame:
    taken: set[str] = set()
    common = np.array(_words(rng, spec.common_words, taken), dtype=object)
    vocabularies = np.array(
        [_words(rng, spec.words_per_category, taken) for _ in range(spec.n_categories)],
        dtype=object,
    )
    labels = [word.capitalize() for word in _words(rng, spec.n_categories, taken)]
    length = spec.description_words
    # Most words come from the primary category, some from the secondary, the rest are common.
    own = vocabularies[
        primary[:, None], _zipf_choice(rng, spec.words_per_category, (len(primary), length))
    ]
    other_category = np.where(secondary >= 0, secondary, primary)
    other = vocabularies[
        other_category[:, None], _zipf_choice(rng, spec.words_per_category, (len(primary), length))
    ]
    shared = common[_zipf_choice(rng, spec.common_words, (len(primary), length))]
    source = rng.random((len(primary), length))
    words = np.where(source < 0.5, own, np.where(source < 0.7, other, shared))
    names = vocabularies[primary[:, None], rng.integers(0, 40, (len(primary), 2))]
    cities = np.array([word.capitalize() for word in _words(rng, _CITIES, taken)], dtype=object)
    prices = np.round(rng.lognormal(10.0, 1.2, len(primary)), -2)
    prices[rng.random(len(primary)) < 0.3] = 0.0
    prices[rng.random(len(primary)) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "id": _ids("i", len(primary)),
            "name": [" ".join(pair).title() for pair in names],
            "description": [" ".join(row) for row in words],
            "categories": [
                [labels[p]] if s < 0 else [labels[p], labels[s]]
                for p, s in zip(primary.tolist(), secondary.tolist(), strict=True)
            ],
            "city": cities[_zipf_choice(rng, _CITIES, (len(primary),))],
            "price": prices,
        }
    )


def _activity(spec: SyntheticSpec, rng: np.random.Generator) -> IntArray:
    """Interactions per user: at least one each, log-normal spread, summing to the target."""
    cap = max(1, spec.n_items // 4)
    weights = rng.lognormal(0.0, spec.activity_sigma, spec.n_users)
    counts = np.ones(spec.n_users, dtype=np.int64)
    remaining = spec.n_interactions - spec.n_users
    while remaining > 0:
        open_users = counts < cap
        share = np.where(open_users, weights, 0.0)
        extra = rng.multinomial(remaining, share / share.sum())
        counts = np.minimum(counts + extra, cap)
        remaining = spec.n_interactions - int(counts.sum())
    return counts


@dataclass(frozen=True)
class _Users:
    favourites: IntArray  # (n_users, 2) favourite categories
    lean: FloatArray  # share of draws from the first favourite
    vectors: FloatArray  # (n_users, n_factors) unit latent tastes


def _interactions(
    spec: SyntheticSpec,
    rng: np.random.Generator,
    people: _Users,
    primary: IntArray,
    secondary: IntArray,
    item_vectors: FloatArray,
    popularity: FloatArray,
) -> tuple[IntArray, IntArray]:
    """Unique (user, item) code pairs, ``counts[u]`` of them for user ``u``, sorted by user."""
    counts = _activity(spec, rng)
    # Items of each category (an item with two categories is in both), and their popularity CDF.
    member_items = np.concatenate([np.arange(spec.n_items), np.flatnonzero(secondary >= 0)])
    member_category = np.concatenate([primary, secondary[secondary >= 0]])
    order = np.argsort(member_category, kind="stable")
    members = member_items[order]
    starts = np.searchsorted(member_category[order], np.arange(spec.n_categories + 1))
    cumulative = np.cumsum(popularity[members])
    pairs = np.empty(0, dtype=np.int64)
    wanted = counts.copy()
    for round_ in range(_TASTE_ROUNDS + 100):
        # Duplicate draws leave users short: top them up, by taste for a few rounds, then (for
        # the heaviest users, who exhaust their favourite categories) from the whole catalogue.
        users = np.repeat(np.arange(spec.n_users), wanted + (wanted + 1) // 4 * (wanted > 0))
        if round_ < _TASTE_ROUNDS:
            drawn = np.concatenate(
                [
                    _draw(rng, chunk, spec, people, item_vectors, members, starts, cumulative)
                    for chunk in np.array_split(users, max(1, math.ceil(len(users) / _CHUNK)))
                ]
            )
        else:
            drawn = rng.integers(0, spec.n_items, len(users))
        pairs = _distinct(np.concatenate([pairs, users * spec.n_items + drawn]))
        have = np.bincount(pairs // spec.n_items, minlength=spec.n_users)
        if np.all(have >= counts):
            break
        wanted = np.maximum(counts - have, 0)
    return _trim(rng, pairs, counts, spec.n_items)


def _distinct(values: IntArray) -> IntArray:
    """Sorted unique values (sort and compare: much faster than np.unique's hashing here)."""
    values = np.sort(values)
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _draw(
    rng: np.random.Generator,
    users: IntArray,
    spec: SyntheticSpec,
    people: _Users,
    item_vectors: FloatArray,
    members: IntArray,
    starts: IntArray,
    cumulative: FloatArray,
) -> IntArray:
    """One item per entry of ``users``: category by taste, then the best of a few popular ones."""
    pick = rng.random(len(users))
    favourites = people.favourites[users]
    category = np.where(pick < people.lean[users], favourites[:, 0], favourites[:, 1])
    wander = rng.random(len(users)) < 0.1
    category[wander] = rng.integers(0, spec.n_categories, int(wander.sum()))
    # A category may own no item in a tiny catalogue: pick another one for those draws.
    while np.any(empty := starts[category] == starts[category + 1]):
        category[empty] = rng.integers(0, spec.n_categories, int(empty.sum()))
    low = np.where(starts[category] > 0, cumulative[starts[category] - 1], 0.0)
    high = cumulative[starts[category + 1] - 1]
    targets = low[:, None] + rng.random((len(users), _CANDIDATES)) * (high - low)[:, None]
    positions = np.searchsorted(cumulative, targets, side="right")
    positions = np.minimum(positions, (starts[category + 1] - 1)[:, None])
    candidates = members[positions]
    affinity = np.einsum("nf,ncf->nc", people.vectors[users], item_vectors[candidates])
    gumbel = -np.log(-np.log(rng.random(affinity.shape)))
    best = np.argmax(affinity / spec.taste_temperature + gumbel, axis=1)
    chosen: IntArray = candidates[np.arange(len(users)), best].astype(np.int64)
    return chosen


def _trim(
    rng: np.random.Generator, pairs: IntArray, counts: IntArray, n_items: int
) -> tuple[IntArray, IntArray]:
    """Keep a random ``counts[u]`` of each user's pairs (pairs sorted, so users are contiguous)."""
    users = pairs // n_items
    order = np.lexsort((rng.random(len(pairs)), users))
    starts = np.searchsorted(users[order], np.arange(len(counts)))
    rank = np.arange(len(pairs)) - np.repeat(starts, np.bincount(users, minlength=len(counts)))
    keep = np.sort(order[rank < counts[users[order]]])
    kept = pairs[keep]
    return (kept // n_items).astype(np.int64), (kept % n_items).astype(np.int64)


def _ratings(
    spec: SyntheticSpec,
    rng: np.random.Generator,
    users: IntArray,
    items: IntArray,
    user_vectors: FloatArray,
    item_vectors: FloatArray,
) -> FloatArray:
    """Ratings 1..5 from affinity, item quality, user leniency and noise."""
    quality = rng.standard_normal(spec.n_items)
    leniency = rng.standard_normal(spec.n_users)
    score = np.empty(len(users))
    for chunk in np.array_split(np.arange(len(users)), max(1, math.ceil(len(users) / _CHUNK))):
        u, i = users[chunk], items[chunk]
        affinity = np.einsum("nf,nf->n", user_vectors[u], item_vectors[i])
        score[chunk] = (
            1.5 * affinity
            + 0.5 * quality[i]
            + 0.4 * leniency[u]
            + 0.6 * rng.standard_normal(len(u))
        )
    cuts = np.quantile(score, np.cumsum(_RATING_SHARES)[:-1])
    return (np.searchsorted(cuts, score) + 1).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("users", type=int)
    parser.add_argument("items", type=int)
    parser.add_argument("interactions", type=int)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    dataset = generate(SyntheticSpec(args.users, args.items, args.interactions, seed=args.seed))
    generated = time.perf_counter() - start
    out = write_wisata(dataset, args.out_dir)
    print(
        f"{dataset.n_users} users, {dataset.n_items} items, {dataset.n_interactions} "
        f"interactions generated in {generated:.1f} s, written to {out}"
    )


if __name__ == "__main__":
    main()
