"""The site database, one contract for SQLite and a real PostgreSQL server.

Every test runs twice: on a SQLite file in ``tmp_path`` and on a new database of the session's
PostgreSQL server (Debian's package, started by the tests). What is checked is what a user of
``wisata-db``, the training and the feedback API relies on: the schema is created once, imports
load every layout and say what they refused, training reads what was written, and the async
store writes a batch whole or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs import db as db_job
from service.db import Database
from service.db.bulk import count_since, read_tables
from service.db.ratings import NewRating, RatingsStore
from service.errors import DatabaseUnavailable, DatasetError, UnknownItemError
from service.ml.datasets import load_dataset
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.imports import export_folder, import_folder, init
from tests.postgres import PostgresServer

DATA = Path(__file__).resolve().parents[1] / "data"
TOURISM_SMALL = DATA / "tourism-small"
TOURISM = Path(__file__).resolve().parents[3] / "shared" / "data" / "indonesia-tourism"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty database with Wisata's schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wisata.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    database = Database.parse(url)
    init(database)
    return database


@pytest.fixture
async def store(database: Database) -> AsyncIterator[RatingsStore]:
    opened = RatingsStore(database)
    yield opened
    await opened.close()


def test_init_is_idempotent(database: Database) -> None:
    assert init(database) == []  # the fixture created both tables already
    import_folder(database, SAMPLE_DATA_DIR)
    assert init(database) == []
    assert count_since(database, None) == 8282  # nothing was dropped or recreated


def test_import_of_the_demo_data_trains_like_the_folder(database: Database) -> None:
    report = import_folder(database, SAMPLE_DATA_DIR)

    assert (report["items"], report["ratings"], report["rejected"]) == (62, 8282, 0)
    from_folder = load_dataset(SAMPLE_DATA_DIR)
    from_database = load_dataset(database.url.render_as_string(hide_password=False))
    assert from_database.layout == "database"
    assert from_database.rating_range == (1.0, 5.0)
    assert from_database.watermark is not None and from_database.watermark.rows == 8282
    assert sorted(from_database.items["id"]) == sorted(from_folder.items["id"])
    pairs = {
        (u, i, r)
        for u, i, r in from_folder.interactions[["user_id", "item_id", "rating"]].astype(str).values
    }
    read = from_database.interactions[["user_id", "item_id", "rating"]].astype(str).values
    assert {(u, i, r) for u, i, r in read} == pairs


def test_import_of_the_kaggle_layout_reports_what_it_refused(database: Database) -> None:
    report = import_folder(database, TOURISM_SMALL)

    assert report["layout"] == "tourism"
    assert report["items"] == 10
    assert report["merged_duplicates"] == 1
    assert report["rejected"] == 4
    reasons = "\n".join(report["rejections"])
    assert "tourism_rating.csv line 63: column Place_Ratings: rating 9 is outside 1..5" in reasons
    assert "line 64: column Place_Ratings: 'lima' is not a number" in reasons
    assert "line 66: column User_Id: empty id" in reasons
    assert "item '99' is not in the catalogue" in reasons
    assert count_since(database, None) == report["ratings"] == 60


@pytest.mark.realdata
@pytest.mark.skipif(not TOURISM.is_dir(), reason="../shared/data/indonesia-tourism is absent")
def test_import_of_the_kaggle_tourism_files(database: Database) -> None:
    report = import_folder(database, TOURISM)

    assert (report["items"], report["rejected"], report["merged_duplicates"]) == (437, 0, 403)
    assert report["ratings"] == 10_001 - 403
    dataset = load_dataset(database.url.render_as_string(hide_password=False))
    assert (dataset.n_items, dataset.n_users, dataset.n_interactions) == (437, 300, 9598)


def test_a_reimport_replaces_instead_of_adding(database: Database) -> None:
    import_folder(database, TOURISM_SMALL)
    first = read_tables(database)
    import_folder(database, TOURISM_SMALL)
    second = read_tables(database)

    assert len(second.ratings) == len(first.ratings) == 60
    assert second.watermark.latest is not None and first.watermark.latest is not None
    assert second.watermark.latest > first.watermark.latest  # stamped with the import's time


def test_export_writes_a_folder_that_reads_back_the_same(
    database: Database, tmp_path: Path
) -> None:
    import_folder(database, SAMPLE_DATA_DIR)

    report = export_folder(database, tmp_path / "exported")

    assert (report["items"], report["ratings"]) == (62, 8282)
    again = load_dataset(tmp_path / "exported")
    original = load_dataset(SAMPLE_DATA_DIR)
    assert again.layout == "wisata"
    assert (
        again.items.set_index("id").sort_index().equals(original.items.set_index("id").sort_index())
    )
    assert again.n_interactions == original.n_interactions


def test_training_read_of_an_empty_database_says_what_to_do(database: Database) -> None:
    with pytest.raises(DatasetError, match="wisata-db import"):
        load_dataset(database.url.render_as_string(hide_password=False))


def test_missing_tables_name_wisata_db_init(tmp_path: Path) -> None:
    bare = f"sqlite:///{tmp_path / 'bare.db'}"
    with pytest.raises(DatasetError, match="wisata-db init"):
        load_dataset(bare)


def test_count_since_counts_the_rows_after_a_watermark(database: Database) -> None:
    import_folder(database, TOURISM_SMALL)
    watermark = read_tables(database).watermark.latest
    assert watermark is not None

    assert count_since(database, watermark) == 0
    assert count_since(database, watermark - timedelta(seconds=1)) == 60


# --- the feedback API's store ---------------------------------------------------------------


async def test_a_batch_is_written_whole_and_a_rerating_replaces(
    database: Database, store: RatingsStore
) -> None:
    await asyncio.to_thread(import_folder, database, TOURISM_SMALL)
    before = datetime.now(UTC)

    written = await store.add(
        [
            NewRating("visitor", "1", 5.0),
            NewRating("visitor", "2", 2.0),
            NewRating("visitor", "1", 4.0),
        ]
    )

    assert len(written) == 2
    mine = await store.for_user("visitor")
    assert {(r.item_id, r.rating) for r in mine} == {("1", 4.0), ("2", 2.0)}
    assert all(r.created_at >= before for r in mine)
    assert [r.user_id for r in await store.since(before)] == ["visitor"] * 2
    await store.add([NewRating("visitor", "2", 5.0)])
    assert {(r.item_id, r.rating) for r in await store.for_user("visitor")} == {
        ("1", 4.0),
        ("2", 5.0),
    }


async def test_a_batch_naming_an_unknown_item_writes_nothing(
    database: Database, store: RatingsStore
) -> None:
    await asyncio.to_thread(import_folder, database, TOURISM_SMALL)
    total = await store.count_since(None)

    with pytest.raises(UnknownItemError) as refused:
        await store.add([NewRating("visitor", "1", 5.0), NewRating("visitor", "no-such", 3.0)])

    assert refused.value.item_id == "no-such"
    assert await store.for_user("visitor") == []
    assert await store.count_since(None) == total


async def test_concurrent_batches_share_commits_and_each_is_judged_alone(
    database: Database, store: RatingsStore
) -> None:
    await asyncio.to_thread(import_folder, database, TOURISM_SMALL)
    total = await store.count_since(None)

    def batch(k: int) -> list[NewRating]:
        item = "no-such" if k == 7 else str(k % 5 + 1)
        return [NewRating(f"visitor-{k}", "1", 3.0), NewRating(f"visitor-{k}", item, 4.0)]

    results = await asyncio.gather(
        *(store.add(batch(k)) for k in range(40)), return_exceptions=True
    )

    refused = [k for k, result in enumerate(results) if isinstance(result, BaseException)]
    assert refused == [7]
    assert isinstance(results[7], UnknownItemError) and results[7].item_id == "no-such"
    assert await store.for_user("visitor-7") == []  # the refused batch wrote nothing
    for k in (0, 6, 8, 39):  # the batches written beside it are all there
        assert {r.item_id for r in await store.for_user(f"visitor-{k}")} == {"1", str(k % 5 + 1)}
    written = sum(len(result) for result in results if isinstance(result, list))
    assert await store.count_since(None) == total + written


async def test_check_says_when_the_tables_are_missing(tmp_path: Path) -> None:
    store = RatingsStore(Database.parse(f"sqlite:///{tmp_path / 'bare.db'}"))
    try:
        with pytest.raises(Exception, match="wisata-db init") as raised:
            await store.check()
        assert raised.value.code == "database_not_ready"  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_a_stopped_or_frozen_server_is_a_quick_database_unavailable(
    postgres: PostgresServer,
) -> None:
    database = Database.parse(postgres.create_database())
    await asyncio.to_thread(init, database)
    store = RatingsStore(database, timeout=1.0)
    try:
        await store.check()
        postgres.freeze()
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DatabaseUnavailable, match="did not answer within 1 s"):
                await store.add([NewRating("visitor", "1", 5.0)])
            assert asyncio.get_running_loop().time() - started < 3
        finally:
            postgres.thaw()
        postgres.stop()
        try:
            with pytest.raises(DatabaseUnavailable, match="nothing was written"):
                await store.count_since(None)
        finally:
            postgres.start()
        assert await store.count_since(None) == 0  # recovered with no restart of the store
    finally:
        await store.close()


def test_wisata_db_export_to_a_place_it_cannot_write_says_so_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = Database.parse(f"sqlite:///{tmp_path / 'site.db'}")
    init(database)
    import_folder(database, SAMPLE_DATA_DIR)
    monkeypatch.setenv("WISATA_DATA", database.url.render_as_string(hide_password=False))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    status = db_job.main(["export", str(blocker / "export")])

    printed = capsys.readouterr().err
    assert status == 1
    assert printed.startswith(f"error: cannot write the export to {blocker / 'export'}")
    assert "give a folder that can be created and written" in printed
    assert "Traceback" not in printed
    assert blocker.read_text() == "not a folder"  # nothing overwritten
    assert db_job.main(["export", str(tmp_path / "export")]) == 0  # and a writable one works
    assert (tmp_path / "export" / "ratings.csv").is_file()


def test_wisata_db_init_of_a_database_it_cannot_open_says_so_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'site.db'}"
    monkeypatch.setenv("WISATA_DATA", url)

    status = db_job.main(["init"])

    printed = capsys.readouterr().err
    assert status == 1
    assert printed.startswith(f"error: cannot use {url}")
    assert "check WISATA_DATA" in printed
    assert "Traceback" not in printed
