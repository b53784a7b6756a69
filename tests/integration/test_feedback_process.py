"""The site database end to end, with real processes: wisata-db, wisata-retrain, wisata-serve.

The database is a new one on the session's PostgreSQL server (Debian's package, started by the
tests), loaded with ``wisata-db import``; the models are trained from it by ``wisata-retrain``
into a local store; the service runs as its own process, as in production. Kills are SIGKILL,
outages are the database server stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.db import Database
from service.db.bulk import count_since
from service.db.ratings import RatingsStore, StoredRating
from tests.postgres import PostgresServer
from tests.s3server import repo_root
from tests.serving import ServeProcess

DATA = Path(__file__).resolve().parents[1] / "data"
TOURISM = repo_root().parent / "shared" / "data" / "indonesia-tourism"
RECS = "/api/frontend/recommendations"

pytestmark = pytest.mark.slow


def job(module: str, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a job's console script (as ``python -m``) with ``env``; return what it did."""
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=repo_root(),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def site(postgres: PostgresServer, tmp_path: Path) -> dict[str, str]:
    """A new database loaded with the small Kaggle-layout set, and models trained from it."""
    env = {
        "WISATA_DATA": postgres.create_database(),
        "WISATA_STORAGE": str(tmp_path / "models"),
        "WISATA_HYBRID_WEIGHT": "0.6",
        "WISATA_LOG_LEVEL": "WARNING",
    }
    for argv in (["init"], ["import", str(DATA / "tourism-small")]):
        done = job("jobs.db", env, *argv)
        assert done.returncode == 0, done.stderr
    trained = job("jobs.retrain", env, "--min-ndcg-ratio", "0")
    assert trained.returncode == 0, trained.stderr
    return env


@pytest.fixture
def service(site: dict[str, str]) -> Iterator[ServeProcess]:
    with ServeProcess({**site, "WISATA_RELOAD_INTERVAL": "0.5"}) as server:
        assert server.request("GET", "/readyz")[0] == 200, server.log()
        yield server


def rows(site: dict[str, str]) -> int:
    return count_since(Database.parse(site["WISATA_DATA"]), None)


def rate(server: ServeProcess, user: str, item: str, rating: float) -> tuple[int, Any]:
    body = {"ratings": [{"user_id": user, "item_id": item, "rating": rating}]}
    return server.request("POST", "/api/ratings", body)


@pytest.mark.realdata
@pytest.mark.skipif(not TOURISM.is_dir(), reason="../shared/data/indonesia-tourism is absent")
def test_the_kaggle_files_import_and_train_from_the_database(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    env = {"WISATA_DATA": postgres.create_database(), "WISATA_STORAGE": str(tmp_path / "m")}
    assert job("jobs.db", env, "init").returncode == 0
    imported = job("jobs.db", env, "import", str(TOURISM))
    assert imported.returncode == 0, imported.stderr
    assert "437 items, 9598 ratings" in imported.stdout
    assert "merged 403 duplicate" in imported.stdout

    trained = job("jobs.retrain", {**env, "WISATA_HYBRID_WEIGHT": "0.6"}, "--min-ndcg-ratio", "0")

    assert trained.returncode == 0, trained.stderr
    assert "published hybrid" in trained.stdout
    status = job("jobs.status", env, "--json")
    report = json.loads(status.stdout)
    assert report["ready"] is True
    assert report["database"]["ratings_since"] == 0
    decoded = report["models"]["collaborative"]["metadata"]
    assert (decoded["interactions"], decoded["data_rows"]) == (9598, 9598)


def test_a_visitors_ratings_change_the_answers_and_survive_a_restart(
    site: dict[str, str], service: ServeProcess
) -> None:
    before = service.json("GET", f"{RECS}?user_id=visitor")
    assert before["cold_start"] is True
    for item, rating in (("2", 5), ("9", 4)):
        status, answer = rate(service, "visitor", item, rating)
        assert (status, answer) == (201, {"count": 1})

    after = service.json("GET", f"{RECS}?user_id=visitor")
    assert after["cold_start"] is False
    assert {"2", "9"}.isdisjoint(item["id"] for item in after["items"])
    service.stop()

    with ServeProcess({**site, "WISATA_RELOAD_INTERVAL": "0.5"}) as again:
        restarted = again.json("GET", f"{RECS}?user_id=visitor")
        assert restarted["items"] == after["items"]
        assert restarted["model_version"] == before["model_version"]  # no training
        assert "training job" not in again.log()


def test_a_refused_write_stores_nothing(site: dict[str, str], service: ServeProcess) -> None:
    stored = rows(site)
    assert rate(service, "visitor", "no-such-place", 4)[0] == 404
    assert rate(service, "visitor", "2", 7)[0] == 400
    assert rate(service, "", "2", 4)[0] == 400
    assert rows(site) == stored
    assert service.json("GET", "/api/users/visitor/ratings")["ratings"] == []


def test_every_acknowledged_rating_survives_a_kill(
    site: dict[str, str], service: ServeProcess
) -> None:
    acknowledged: list[tuple[str, str]] = []
    stop = threading.Event()

    def stream(writer: int) -> None:
        number = 0
        while not stop.is_set():
            user, item = f"stream-{writer}-{number}", str(1 + number % 10)
            try:
                status, _ = rate(service, user, item, 1 + number % 5)
            except OSError:
                return  # the service is gone
            if status == 201:
                acknowledged.append((user, item))
            number += 1

    writers = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    service.kill()
    stop.set()
    for thread in writers:
        thread.join(timeout=30)

    assert len(acknowledged) >= 200
    database = Database.parse(site["WISATA_DATA"])
    found = _stored_pairs(database)
    missing = [pair for pair in acknowledged if pair not in found]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged ratings were lost"


def test_a_database_outage_refuses_writes_keeps_reading_and_recovers(
    postgres: PostgresServer, service: ServeProcess
) -> None:
    assert rate(service, "visitor", "2", 5)[0] == 201
    answered = service.json("GET", f"{RECS}?user_id=visitor")
    postgres.stop()
    try:
        status, refused = rate(service, "visitor", "3", 4)
        assert status == 503 and refused["error"] == "database_unavailable"
        # Reads keep coming from the models and the recent ratings held in memory.
        assert service.json("GET", f"{RECS}?user_id=visitor") == answered
        assert service.json("GET", f"{RECS}?user_id=u1&algorithm=content")["items"]
        _until(lambda: service.json("GET", "/api/ml/status")["database"]["reachable"] is False)
        ready = service.json("GET", "/readyz")
        assert ready["ready"] is True and ready["database"] != "reachable"
    finally:
        postgres.start()
    _until(lambda: rate(service, "visitor", "3", 4)[0] == 201)
    _until(lambda: service.json("GET", "/api/ml/status")["database"]["reachable"] is True)
    assert {r["item_id"] for r in service.json("GET", "/api/users/visitor/ratings")["ratings"]} == {
        "2",
        "3",
    }


def test_if_new_ratings_counts_the_rows_after_the_watermark(site: dict[str, str]) -> None:
    skipped = job("jobs.retrain", site, "--if-new-ratings", "3")
    assert skipped.returncode == 3, skipped.stderr
    assert skipped.stdout.startswith("skipped: 0 ratings arrived since")

    with ServeProcess({**site, "WISATA_RELOAD_INTERVAL": "0"}) as server:
        for item in ("1", "2", "3"):
            assert rate(server, "someone", item, 4)[0] == 201
    status = json.loads(job("jobs.status", site, "--json").stdout)
    assert status["database"]["ratings_since"] == 3

    trained = job("jobs.retrain", site, "--if-new-ratings", "3", "--min-ndcg-ratio", "0")
    assert trained.returncode == 0, trained.stderr
    assert "published hybrid" in trained.stdout
    assert json.loads(job("jobs.status", site, "--json").stdout)["database"]["ratings_since"] == 0


def _stored_pairs(database: Database) -> set[tuple[str, str]]:
    async def read() -> list[StoredRating]:
        store = RatingsStore(database)
        try:
            return await store.since(None)
        finally:
            await store.close()

    return {(r.user_id, r.item_id) for r in asyncio.run(read())}


def _until(check: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except (OSError, KeyError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {seconds} s: {check}")
        time.sleep(0.2)
