"""Dataset readers: every layout, the documented policies and every bad-file case."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from service.ml.datasets import Dataset, DatasetError, detect_layout, load_dataset

WISATA_ITEMS = (
    "id,name,description,categories,city,price\n"
    '1,Monas,"Tugu nasional di pusat kota",Budaya,Jakarta,20000\n'
    "2,Ancol,Taman pantai dan wahana,Taman Hiburan|Bahari,Jakarta,\n"
    "3,Borobudur,Candi Buddha terbesar,Budaya|Tempat Ibadah,Magelang,50000\n"
)
WISATA_RATINGS = "user_id,item_id,rating,timestamp\nu1,1,5,1700000000\nu1,2,3,1700000100\nu2,3,4,\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def wisata(tmp_path: Path, **overrides: str) -> Path:
    files = {"items.csv": WISATA_ITEMS, "ratings.csv": WISATA_RATINGS}
    files.update({f"{name}.csv": text for name, text in overrides.items()})
    return write(tmp_path / "wisata", files)


def test_wisata_layout_reads_canonical_items_and_interactions(tmp_path: Path) -> None:
    dataset = load_dataset(wisata(tmp_path))

    assert dataset.layout == "wisata"
    assert (dataset.n_items, dataset.n_users, dataset.n_interactions) == (3, 2, 3)
    ancol = dataset.items.set_index("id").loc["2"]
    assert ancol["categories"] == ["Taman Hiburan", "Bahari"]
    assert ancol["city"] == "Jakarta"
    assert math.isnan(ancol["price"])
    first = dataset.interactions.iloc[0]
    assert (str(first["user_id"]), str(first["item_id"]), first["rating"]) == ("u1", "1", 5.0)
    assert math.isnan(dataset.interactions.iloc[2]["timestamp"])


def test_tourism_layout_ignores_trailing_columns_and_averages_duplicates(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "kaggle",
        {
            "tourism_with_id.csv": (
                "Place_Id,Place_Name,Description,Category,City,Price,Rating,Time_Minutes,"
                "Coordinate,Lat,Long,,\n"
                "1,Monumen Nasional,Tugu,Budaya,Jakarta,20000,4.6,15,x,1,2,,1\n"
                "2,Pantai Kuta,Pantai,Bahari,Bali,0,4.5,,x,1,2,,2\n"
            ),
            "tourism_rating.csv": "User_Id,Place_Id,Place_Ratings\n1,1,5\n1,1,2\n2,2,4\n",
            "user.csv": "User_Id,Location,Age\n1,Jakarta,20\n",
        },
    )

    dataset = load_dataset(folder)

    assert dataset.layout == "tourism"
    assert list(dataset.items.columns) == [
        "id",
        "name",
        "description",
        "categories",
        "city",
        "price",
    ]
    assert dataset.merged_duplicates == 1
    merged = dataset.interactions[dataset.interactions["user_id"] == "1"]
    assert merged["rating"].tolist() == [3.5]


def test_movielens_layout_maps_titles_genres_and_joins_tags(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "ml",
        {
            "movies.csv": (
                "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
                "2,Lost Film (1920),(no genres listed)\n"
            ),
            "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.5,96498\n1,2,0.5,96499\n",
            "tags.csv": "userId,movieId,tag,timestamp\n1,1,Pixar,1\n2,1,pixar,2\n2,1,fun,3\n",
        },
    )

    dataset = load_dataset(folder)

    items = dataset.items.set_index("id")
    assert items.loc["1", "name"] == "Toy Story (1995)"
    assert items.loc["1", "categories"] == ["Adventure", "Animation"]
    assert items.loc["1", "description"] == "pixar fun"
    assert items.loc["2", "categories"] == []
    assert dataset.interactions["rating"].tolist() == [4.5, 0.5]


def test_interactions_with_unknown_items_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ratings = WISATA_RATINGS + "u3,99,4,\nu3,98,2,\n"
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(wisata(tmp_path, ratings=ratings))

    assert dataset.dropped_unknown_items == 2
    assert dataset.n_interactions == 3
    assert "dropped 2 interaction(s)" in caplog.text


def test_fingerprint_changes_with_the_data_and_not_otherwise(tmp_path: Path) -> None:
    first = load_dataset(wisata(tmp_path)).fingerprint()
    again = load_dataset(wisata(tmp_path)).fingerprint()
    ratings = WISATA_RATINGS.replace("u2,3,4", "u2,3,5")
    changed = load_dataset(wisata(tmp_path / "b", ratings=ratings)).fingerprint()

    assert first == again
    assert first != changed


def test_layout_can_be_named_explicitly(tmp_path: Path) -> None:
    assert load_dataset(wisata(tmp_path), layout="wisata").layout == "wisata"
    with pytest.raises(DatasetError, match="unknown dataset layout 'csv'"):
        load_dataset(wisata(tmp_path), layout="csv")


# --- bad input: the message names the file, the line and the column --------------------------


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        (
            "user_id,item_id,rating\nu1,1,5\nu1,2,7\n",
            r"ratings\.csv, line 3, column rating: rating 7",
        ),
        ("user_id,item_id,rating\nu1,1,0\n", r"line 2, column rating: rating 0 is outside 1\.\.5"),
        ("user_id,item_id,rating\nu1,1,good\n", r"line 2, column rating: 'good' is not a number"),
        ("user_id,item_id,rating\nu1,1,\n", r"line 2, column rating: '' is not a number"),
        ("user_id,item_id,rating\n,1,4\n", r"line 2, column user_id: empty id"),
        ("user_id,item_id,rating\nu1,1,4\nu1,2,4,9\n", r"ratings\.csv: cannot parse .*line 3"),
        (
            "user_id,item_id,rating\nu1,1,4,9\n",
            r"ratings\.csv: a row has more fields than the header",
        ),
        ("user_id,item\nu1,1\n", r"missing column\(s\) item_id, rating in the header \(line 1\)"),
        ("", r"ratings\.csv: the file is empty"),
        ("user_id,item_id,rating\n", r"ratings\.csv: the file has a header but no rows"),
    ],
)
def test_bad_rating_files_are_refused_with_location(
    tmp_path: Path, ratings: str, expected: str
) -> None:
    with pytest.raises(DatasetError, match=expected):
        load_dataset(wisata(tmp_path, ratings=ratings))


def test_an_items_file_that_is_not_utf8_is_refused_saying_so(tmp_path: Path) -> None:
    folder = wisata(tmp_path)
    latin = WISATA_ITEMS.replace("Ancol", "Caf\u00e9 Ancol")
    (folder / "items.csv").write_bytes(latin.encode("latin-1"))
    refused = r"items\.csv: not UTF-8 text \(byte \d+: .*save the file as UTF-8"
    with pytest.raises(DatasetError, match=refused):
        load_dataset(folder)


def test_bad_item_files_are_refused_with_location(tmp_path: Path) -> None:
    duplicate = WISATA_ITEMS + "2,Ancol lagi,x,Bahari,Jakarta,0\n"
    with pytest.raises(DatasetError, match=r"items\.csv, line 5, column id: id '2' appears twice"):
        load_dataset(wisata(tmp_path, items=duplicate))
    price = WISATA_ITEMS.replace("50000", "mahal")
    with pytest.raises(DatasetError, match=r"line 4, column price: 'mahal' is not a number"):
        load_dataset(wisata(tmp_path / "b", items=price))


def test_movielens_half_stars_are_valid_but_zero_is_not(tmp_path: Path) -> None:
    movies = "movieId,title,genres\n1,A,Drama\n"
    folder = write(
        tmp_path / "ml", {"movies.csv": movies, "ratings.csv": "userId,movieId,rating\n1,1,0\n"}
    )
    with pytest.raises(DatasetError, match=r"outside 0\.5\.\.5"):
        load_dataset(folder)


def test_directory_matching_no_layout_names_the_expected_files(tmp_path: Path) -> None:
    folder = write(tmp_path / "other", {"places.csv": "a\n1\n"})
    with pytest.raises(DatasetError) as error:
        detect_layout(folder)
    message = str(error.value)
    assert "matches no known dataset layout" in message
    for name in ("items.csv", "tourism_with_id.csv", "movies.csv", "ratings.csv"):
        assert name in message


def test_missing_directory_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="WISATA_DATA"):
        load_dataset(tmp_path / "nowhere")


def test_no_rating_naming_a_catalogue_item_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no interaction refers to a catalogue item"):
        load_dataset(wisata(tmp_path, ratings="user_id,item_id,rating\nu1,77,4\n"))


def test_with_interactions_keeps_the_catalogue(tmp_path: Path) -> None:
    dataset = load_dataset(wisata(tmp_path))
    part = dataset.with_interactions(dataset.interactions.iloc[:1])
    assert isinstance(part, Dataset)
    assert part.n_items == 3
    assert part.n_interactions == 1
