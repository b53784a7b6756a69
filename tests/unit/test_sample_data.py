"""The embedded demo dataset: a sound catalogue, reproducible ratings, and taste worth learning."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from service.sample_data import SAMPLE_DATA_DIR
from service.sample_data.generate import main

# Written out rather than imported, so a typo in the generator's list cannot pass unnoticed.
KAGGLE_CATEGORIES = {
    "Budaya",
    "Taman Hiburan",
    "Cagar Alam",
    "Bahari",
    "Pusat Perbelanjaan",
    "Tempat Ibadah",
}
START_2025, START_2026 = 1_735_689_600, 1_767_225_600


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA_DIR / "items.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def item_rows() -> list[dict[str, str]]:
    with (SAMPLE_DATA_DIR / "items.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA_DIR / "ratings.csv", dtype={"user_id": str, "item_id": str})


@pytest.fixture(scope="module")
def categories_by_item(item_rows: list[dict[str, str]]) -> dict[str, set[str]]:
    return {row["id"]: set(row["categories"].split("|")) for row in item_rows}


def favourite_category_margin(
    ratings: pd.DataFrame, categories_by_item: dict[str, set[str]]
) -> float:
    """Mean over users of held-out rating in their favourite category minus elsewhere.

    Each user's ratings are split in two halves at random (seeded); the favourite category is the
    one with the largest rating sum in the first half, and the second half is compared.
    """
    rng = np.random.default_rng(0)
    differences = []
    for _, user in ratings.groupby("user_id"):
        order = rng.permutation(len(user))
        known, held_out = user.iloc[order[: len(user) // 2]], user.iloc[order[len(user) // 2 :]]
        totals: dict[str, int] = {}
        for item_id, rating in zip(known["item_id"], known["rating"], strict=True):
            for category in categories_by_item[item_id]:
                totals[category] = totals.get(category, 0) + int(rating)
        favourite = max(sorted(totals), key=totals.__getitem__)
        favourites = [item for item, names in categories_by_item.items() if favourite in names]
        inside = held_out["item_id"].isin(favourites)
        if inside.any() and not inside.all():
            differences.append(
                held_out["rating"][inside].mean() - held_out["rating"][~inside].mean()
            )
    assert len(differences) > 200, "too few users to measure a margin"
    return float(np.mean(differences))


def top_city_lift(ratings: pd.DataFrame, city_by_item: dict[str, str]) -> float:
    """How much likelier an unseen place is to be visited when it is in the user's top city.

    Each user's visits are split in two halves at random (seeded); the top city is the one most
    visited in the first half. Among places not in the first half, the rate at which those in the
    top city appear in the second half is divided by the rate for places elsewhere (means over
    users). Comparing unseen places only avoids the bias of a user who, having visited most of a
    city in one half, has few of its places left for the other.
    """
    rng = np.random.default_rng(0)
    inside_rates, outside_rates = [], []
    for _, user in ratings.groupby("user_id"):
        visits = user["item_id"].to_numpy()[rng.permutation(len(user))]
        known, held_out = set(visits[: len(visits) // 2]), set(visits[len(visits) // 2 :])
        cities, counts = np.unique([city_by_item[item] for item in known], return_counts=True)
        top_city = cities[np.argmax(counts)]
        unseen = [item for item in city_by_item if item not in known]
        inside = [item in held_out for item in unseen if city_by_item[item] == top_city]
        outside = [item in held_out for item in unseen if city_by_item[item] != top_city]
        if inside and outside:
            inside_rates.append(np.mean(inside))
            outside_rates.append(np.mean(outside))
    assert len(inside_rates) > 200, "too few users to measure a lift"
    return float(np.mean(inside_rates) / np.mean(outside_rates))


def test_items_have_the_documented_columns_and_unique_ids(items: pd.DataFrame) -> None:
    assert list(items.columns) == ["id", "name", "description", "categories", "city", "price"]
    assert items["id"].is_unique
    assert items["name"].is_unique
    assert (items["id"].str.strip() != "").all()


def test_every_item_has_known_categories_a_city_and_a_price(
    item_rows: list[dict[str, str]],
) -> None:
    for row in item_rows:
        categories = row["categories"].split("|")
        assert 1 <= len(categories) <= 2, row["name"]
        assert set(categories) <= KAGGLE_CATEGORIES, (row["name"], categories)
        assert row["city"].strip(), row["name"]
        assert row["price"].isdigit(), (row["name"], row["price"])
    used = set(itertools.chain.from_iterable(row["categories"].split("|") for row in item_rows))
    assert used == KAGGLE_CATEGORIES


def test_catalogue_holds_about_sixty_places_across_at_least_five_cities(
    items: pd.DataFrame,
) -> None:
    assert 58 <= len(items) <= 64
    assert items["city"].nunique() >= 5


def test_descriptions_are_told_apart_by_tfidf(items: pd.DataFrame) -> None:
    vectors = TfidfVectorizer().fit_transform(items["description"])
    similarity = (vectors @ vectors.T).toarray()
    np.fill_diagonal(similarity, 0.0)
    closest = np.unravel_index(similarity.argmax(), similarity.shape)
    assert similarity.max() < 0.5, [items["name"].iloc[int(index)] for index in closest]
    assert (items["description"].str.count(r"\.(?:\s|$)") >= 2).all()


def test_ratings_are_whole_stars_of_known_items_within_2025(
    ratings: pd.DataFrame, items: pd.DataFrame
) -> None:
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert pd.api.types.is_integer_dtype(ratings["rating"])
    assert ratings["rating"].between(1, 5).all()
    assert ratings["item_id"].isin(items["id"]).all()
    assert ratings["timestamp"].between(START_2025, START_2026 - 1).all()
    assert ratings["user_id"].str.fullmatch(r"u\d{3}").all()


def test_no_user_rates_the_same_place_twice(ratings: pd.DataFrame) -> None:
    assert not ratings.duplicated(["user_id", "item_id"]).any()


def test_about_three_hundred_users_rate_fifteen_to_forty_places(ratings: pd.DataFrame) -> None:
    per_user = ratings.groupby("user_id").size()
    assert len(per_user) == 300
    assert per_user.between(15, 40).all()
    assert 6000 <= len(ratings) <= 9000


def test_generator_rewrites_the_committed_ratings_byte_for_byte(tmp_path: Path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assert main(["--out", str(first)]) == 0
    assert main(["--seed", "42", "--users", "300", "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (SAMPLE_DATA_DIR / "ratings.csv").read_bytes()


def test_another_seed_or_user_count_changes_the_ratings(tmp_path: Path) -> None:
    other_seed, fewer_users = tmp_path / "seed7.csv", tmp_path / "users50.csv"
    assert main(["--seed", "7", "--out", str(other_seed)]) == 0
    assert main(["--users", "50", "--out", str(fewer_users)]) == 0
    assert other_seed.read_bytes() != (SAMPLE_DATA_DIR / "ratings.csv").read_bytes()
    assert pd.read_csv(fewer_users)["user_id"].nunique() == 50


def test_held_out_ratings_favour_each_users_top_category(
    ratings: pd.DataFrame, categories_by_item: dict[str, set[str]]
) -> None:
    margin = favourite_category_margin(ratings, categories_by_item)
    shuffled = ratings.assign(
        rating=np.random.default_rng(1).permutation(ratings["rating"].to_numpy())
    )
    # Random ratings give no margin: the statistic measures taste, not the visiting pattern.
    assert margin > 0.35
    assert abs(favourite_category_margin(shuffled, categories_by_item)) < 0.1


def test_held_out_visits_concentrate_in_each_users_city(
    ratings: pd.DataFrame, items: pd.DataFrame
) -> None:
    city_by_item = dict(zip(items["id"], items["city"], strict=True))
    # Dealing the same visits out to users at random keeps item popularity, drops city taste.
    dealt = ratings.assign(
        item_id=np.random.default_rng(1).permutation(ratings["item_id"].to_numpy())
    )
    assert top_city_lift(ratings, city_by_item) > 1.4
    assert top_city_lift(dealt, city_by_item) < 1.3


def test_generator_names_the_line_of_an_unknown_category(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalogue = tmp_path / "items.csv"
    catalogue.write_text(
        "id,name,description,categories,city,price\n"
        "1,Monas,Tugu.,Budaya,Jakarta,20000\n"
        "2,Ancol,Pantai.,Pantai Pasir,Jakarta,35000\n",
        encoding="utf-8",
    )
    status = main(["--items", str(catalogue), "--out", str(tmp_path / "ratings.csv")])
    assert status == 1
    error = capsys.readouterr().err
    assert "line 3" in error and "Pantai Pasir" in error
    assert not (tmp_path / "ratings.csv").exists()
