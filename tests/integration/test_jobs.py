"""The jobs (wisata-retrain, wisata-status, wisata-backup) against the session's moto S3 server.

Each test gets its own bucket and runs the jobs' ``main`` in-process (in a thread where the test
is async, since a job runs its own event loop), with the configuration in ``WISATA_*``
variables exactly as a container would set them. The scheduler runs as a real process so it can
be stopped with SIGTERM. Data: small copies of the packaged demo dataset.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from jobs import backup, retrain, status
from jobs.retrain import NDCG
from service import artifacts
from service.artifacts import ArtifactHeader
from service.config import Config
from service.ml.datasets import load_dataset
from service.ml.recommenders import MODEL_NAMES
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.journal import SET_METADATA
from service.serving.registry import Registry, artifact_key
from service.serving.trainer import BuildResult, build_artifacts
from service.web.app import create_app
from storage import ArtifactStore, NotFound, ObjectInfo, StoreSettings, open_store
from tests.interrupted import interrupt_publish
from tests.s3server import free_port, repo_root

KEY = "jobs-test-signing-key"
Client = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class Datasets:
    """Dataset folders: ``older`` is ``newer`` less some ratings; ``scrambled`` has its items
    shuffled across the ratings, as a broken export would."""

    older: Path
    newer: Path
    scrambled: Path

    def interactions(self, folder: Path) -> int:
        return load_dataset(folder).n_interactions


@dataclass(frozen=True)
class Place:
    """The store the jobs are configured with."""

    url: str
    endpoint: str


def _write(folder: Path, ratings: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    (folder / "items.csv").write_bytes((SAMPLE_DATA_DIR / "items.csv").read_bytes())
    ratings.to_csv(folder / "ratings.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Datasets:
    root = tmp_path_factory.mktemp("datasets")
    ratings = pd.read_csv(SAMPLE_DATA_DIR / "ratings.csv", dtype={"user_id": str, "item_id": str})
    # A third of the demo users keeps every job run to a couple of seconds.
    users = sorted(ratings["user_id"].unique())[:100]
    newer = ratings[ratings["user_id"].isin(users)]
    older = newer.drop(newer.index[::40])
    items = np.random.default_rng(7).permutation(newer["item_id"].to_numpy())
    return Datasets(
        older=_write(root / "older", older),
        newer=_write(root / "newer", newer),
        scrambled=_write(root / "scrambled", newer.assign(item_id=items)),
    )


@pytest.fixture(scope="module")
def built(datasets: Datasets) -> BuildResult:
    """The three artifacts trained on the older data, as a job or the service would publish."""
    metrics = {name: {NDCG: 0.5} for name in MODEL_NAMES}
    return build_artifacts(datasets.older, key=KEY.encode(), hybrid_weight=0.6, metrics=metrics)


@pytest.fixture
def place(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, datasets: Datasets) -> Place:
    """A fresh bucket, and the WISATA_* variables of a job container pointing at it."""
    url = f"s3://jobs-{uuid.uuid4().hex[:12]}/models"
    for name in [n for n in os.environ if n.startswith("WISATA_")]:
        monkeypatch.delenv(name)
    variables = {
        "WISATA_STORAGE": url,
        "WISATA_S3_ENDPOINT": s3_endpoint,
        "WISATA_DATA": str(datasets.older),
        "WISATA_ARTIFACT_KEY": KEY,
        "WISATA_HYBRID_WEIGHT": "0.6",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return Place(url, s3_endpoint)


@asynccontextmanager
async def opened(url: str, endpoint: str) -> AsyncIterator[ArtifactStore]:
    async with open_store(
        url, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True)
    ) as store:
        await store.ensure_ready()
        yield store


async def publish(place: Place, items: dict[str, bytes]) -> None:
    """Publish artifacts the way every writer does: at their key, with their metadata."""
    async with opened(place.url, place.endpoint) as store:
        for name, data in items.items():
            header = artifacts.read_header(data)
            await store.put(artifact_key(name), data, artifacts.to_metadata(header))


async def heads(place: Place) -> dict[str, ObjectInfo | None]:
    found: dict[str, ObjectInfo | None] = {}
    async with opened(place.url, place.endpoint) as store:
        for name in MODEL_NAMES:
            try:
                found[name] = await store.head(artifact_key(name))
            except NotFound:
                found[name] = None
    return found


async def current(place: Place) -> dict[str, tuple[bytes, ObjectInfo]]:
    async with opened(place.url, place.endpoint) as store:
        return {name: await store.get(artifact_key(name)) for name in MODEL_NAMES}


async def run(job: Callable[[Sequence[str] | None], int], *argv: str) -> int:
    """Run a job's ``main`` as its console script would, off the test's event loop."""
    return await asyncio.to_thread(job, list(argv))


def sha(data: bytes) -> str:
    return artifacts.read_header(data).payload_sha256


async def eventually(check: Callable[[], Any], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.1)


# --- wisata-retrain -----------------------------------------------------------------------------


async def test_retrain_publishes_verified_artifacts_that_a_running_service_loads(
    place: Place,
    datasets: Datasets,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WISATA_RELOAD_INTERVAL", "0.2")
    client: Client = await aiohttp_client(create_app(Config.from_env()))
    async with client.get("/readyz") as response:
        assert response.status == 503  # an empty bucket: nothing to serve yet

    assert await run(retrain.main) == 0

    out = capsys.readouterr().out
    stored = await current(place)
    headers: dict[str, ArtifactHeader] = {}
    for name, (data, info) in stored.items():
        headers[name] = artifacts.verify(data, KEY.encode(), expected_model=name)
        meta = artifacts.from_metadata(info.metadata)
        assert meta.sha256 == headers[name].payload_sha256
        assert meta.interactions == datasets.interactions(datasets.older)
        assert set(meta.metrics) == {
            NDCG,
            "precision_at_10",
            "recall_at_10",
            "coverage",
            "diversity",
        }
        assert all(0.0 <= value <= 1.0 for value in meta.metrics.values())
        assert meta.metrics[NDCG] > 0.1  # a real evaluation, not a placeholder
        assert meta.metrics == headers[name].metrics
        assert f"published {name}: NDCG@10 {meta.metrics[NDCG]:.4f}" in out
    assert headers["hybrid"].parents == {
        "content_based": headers["content_based"].payload_sha256,
        "collaborative": headers["collaborative"].payload_sha256,
    }

    async def serving_the_new_models() -> bool:
        async with client.get("/api/ml/status") as response:
            models = (await response.json())["models"]
        return all(models[n]["checksum"] == headers[n].payload_sha256 for n in MODEL_NAMES)

    await eventually(serving_the_new_models, "the service to hot-reload the published models")
    async with client.get("/readyz") as response:
        assert response.status == 200
    async with client.get("/api/frontend/recommendations", params={"user_id": "u001"}) as response:
        assert response.status == 200, await response.text()


async def test_if_new_ratings_skips_until_enough_ratings_arrive(
    place: Place,
    datasets: Datasets,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing published yet: the job trains whatever the threshold.
    assert await run(retrain.main, "--if-new-ratings", "100000") == 0
    first = await heads(place)
    monkeypatch.setenv("WISATA_DATA", str(datasets.newer))
    added = datasets.interactions(datasets.newer) - datasets.interactions(datasets.older)
    capsys.readouterr()

    assert await run(retrain.main, "--if-new-ratings", str(added + 1)) == 3

    out = capsys.readouterr().out
    assert out.startswith("skipped: ")
    assert f"{added} more than the {datasets.interactions(datasets.older)}" in out
    assert await heads(place) == first  # not one object written

    assert await run(retrain.main, "--if-new-ratings", str(added)) == 0

    now = await heads(place)
    for name in MODEL_NAMES:
        before, after = first[name], now[name]
        assert before is not None and after is not None
        assert after.version_id != before.version_id
        assert artifacts.from_metadata(after.metadata).interactions == datasets.interactions(
            datasets.newer
        )


async def test_the_quality_gate_refuses_a_worse_model_and_publishes_nothing(
    place: Place,
    built: BuildResult,
    datasets: Datasets,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await publish(place, built.artifacts)  # their metadata records NDCG@10 0.5 for each
    good = await heads(place)
    monkeypatch.setenv("WISATA_DATA", str(datasets.scrambled))
    capsys.readouterr()

    assert await run(retrain.main) == 4

    out = capsys.readouterr().out
    assert out.startswith("refused by the quality gate, nothing was published: ")
    assert "--min-ndcg-ratio 0" in out
    for name in MODEL_NAMES:
        info = good[name]
        assert info is not None
        published_ndcg = artifacts.from_metadata(info.metadata).metrics[NDCG]
        assert f"{name}: holdout NDCG@10 " in out
        assert f"below 0.95 x the published {published_ndcg:.4f}" in out
    assert await heads(place) == good

    # The operator has looked at the data and decides to publish anyway.
    assert await run(retrain.main, "--min-ndcg-ratio", "0") == 0
    now = await heads(place)
    for name in MODEL_NAMES:
        after, before = now[name], good[name]
        assert after is not None and before is not None
        worse = artifacts.from_metadata(after.metadata).metrics[NDCG]
        assert worse < 0.95 * artifacts.from_metadata(before.metadata).metrics[NDCG]


@pytest.mark.parametrize(
    ("zone", "utc_time", "utc_day"),
    [([], "T03:00:00Z", "Sunday"), (["--timezone", "Asia/Jakarta"], "T20:00:00Z", "Saturday")],
    ids=["utc", "jakarta"],
)
def test_the_scheduler_runs_on_its_cron_and_stops_cleanly_on_sigterm(
    place: Place, tmp_path: Path, zone: list[str], utc_time: str, utc_day: str
) -> None:
    log = tmp_path / "scheduler.log"
    command = ["-m", "jobs.retrain", "--cron", "0 3 * * 0", "--at-start", *zone]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=repo_root(),
            env={**os.environ, "WISATA_LOG_LEVEL": "INFO"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "next run at" not in (text := log.read_text()) or "exit code" not in text:
            assert process.poll() is None, f"the scheduler exited early:\n{text}"
            assert time.monotonic() < deadline, f"no run within 60 s:\n{text}"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert code == 0, text
    assert "the scheduled run ended with exit code 0" in text
    assert "published hybrid" in text
    # The next run is the coming Sunday at 03:00 on the zone's clock, logged in UTC.
    next_line = text.split("next run at ")[-1].splitlines()[0]
    assert next_line.endswith(utc_time)
    assert pd.Timestamp(next_line).day_name() == utc_day
    assert "scheduler stopped" in text
    assert "Traceback" not in text


def test_sigterm_during_a_run_stops_it_before_anything_is_published(
    place: Place, tmp_path: Path
) -> None:
    log = tmp_path / "retrain.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.retrain"],
            cwd=repo_root(),
            env={**os.environ, "WISATA_LOG_LEVEL": "INFO"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "[3/9] evaluating content_based" not in (text := log.read_text()):
            assert process.poll() is None, f"the job ended before evaluating:\n{text}"
            assert time.monotonic() < deadline, f"no evaluation within 60 s:\n{text}"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert code == 1, text
    assert "error: stopped by SIGTERM before " in text
    assert "publishing" not in text.split("SIGTERM received")[1].split("error:")[0]
    assert all(info is None for info in asyncio.run(heads(place)).values())


# --- wisata-status ------------------------------------------------------------------------------


async def test_status_is_ready_when_all_three_models_load(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)

    assert await run(status.main, "--json") == 0

    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True
    assert report["problems"] == []
    stored = await heads(place)
    for name in MODEL_NAMES:
        model, info = report["models"][name], stored[name]
        assert info is not None
        assert model["state"] == "loaded"
        assert model["exists"] is True
        assert model["object"]["size"] == info.size == len(built.artifacts[name])
        assert model["checksum"] == sha(built.artifacts[name])
        assert model["trained_at"] == artifacts.read_header(built.artifacts[name]).trained_at
        assert model["metadata"]["metrics"] == {NDCG: 0.5}
        assert model["metadata"]["interactions"] == built.dataset.interactions
    components = report["models"]["collaborative"]["components"]
    assert components["user_factors_"].startswith(f"ndarray ({built.dataset.users}, ")

    assert await run(status.main) == 0
    text = capsys.readouterr().out
    assert text.rstrip().splitlines()[-1].startswith("READY")
    assert "component   item_factors_: ndarray" in text


async def test_status_names_an_unfinished_publish_and_the_versions_it_loads(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)
    async with opened(place.url, place.endpoint) as store:  # a publish killed after one model
        journal = await interrupt_publish(store, built.artifacts, "content_based")

    assert await run(status.main, "--json") == 0

    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is True
    assert report["unfinished_publish"]["set_id"] == journal.set_id
    assert report["unfinished_publish"]["held_back"] == ["content_based"]
    assert await run(status.main) == 0
    text = capsys.readouterr().out
    assert f"UNFINISHED PUBLISH {journal.set_id[:12]}" in text
    assert "the versions before it are loaded for content_based" in text


async def test_status_is_not_ready_when_a_model_is_missing(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, {n: built.artifacts[n] for n in ("content_based", "collaborative")})

    assert await run(status.main, "--json") == 1

    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is False
    assert report["models"]["hybrid"]["exists"] is False
    assert report["models"]["hybrid"]["state"] == "not_trained"
    assert report["models"]["content_based"]["state"] == "loaded"
    assert [p.split(":")[0] for p in report["problems"]] == ["hybrid"]

    assert await run(status.main) == 1
    text = capsys.readouterr().out
    assert "object      hybrid.pkl: missing" in text
    assert text.rstrip().splitlines()[-1].startswith("NOT READY: hybrid: not_trained")


async def test_status_is_not_ready_when_an_artifact_is_corrupt(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = bytearray(built.artifacts["collaborative"])
    damaged[-100] ^= 0xFF
    await publish(place, built.artifacts)
    async with opened(place.url, place.endpoint) as store:
        header = artifacts.read_header(bytes(damaged))  # the header is intact, its payload not
        await store.put(
            artifact_key("collaborative"), bytes(damaged), artifacts.to_metadata(header)
        )

    assert await run(status.main, "--json") == 1

    report = json.loads(capsys.readouterr().out)
    collaborative = report["models"]["collaborative"]
    assert collaborative["exists"] is True
    assert collaborative["state"] == "failed"
    assert "ChecksumMismatch" in collaborative["reason"]
    assert collaborative["components"] == {}
    # The hybrid runs with the intact stored version of collaborative it was built with.
    assert report["models"]["hybrid"]["state"] == "loaded"
    assert report["models"]["content_based"]["state"] == "loaded"


async def test_status_says_so_when_storage_cannot_be_reached(
    place: Place, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WISATA_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")

    assert await run(status.main) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: cannot read the store: ")
    assert "WISATA_S3_ENDPOINT" in lines[0]


async def test_status_does_not_create_a_missing_bucket(
    place: Place, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(status.main) == 1

    assert "does not exist" in capsys.readouterr().err
    async with open_store(place.url, StoreSettings(endpoint=place.endpoint)) as store:
        with pytest.raises(NotFound):
            await store.ensure_ready()


# --- wisata-backup ------------------------------------------------------------------------------


async def test_backup_and_restore_round_trip(
    place: Place, built: BuildResult, datasets: Datasets, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)
    assert await run(backup.main) == 0
    name = capsys.readouterr().out.split()[1]
    newer = build_artifacts(datasets.newer, key=KEY.encode(), hybrid_weight=0.6)
    await publish(place, newer.artifacts)  # a later training replaces the models

    assert await run(backup.main, "--list", "--json") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == name
    assert listed["complete"] is True
    assert [a["model"] for a in listed["artifacts"]] == list(MODEL_NAMES)
    assert [a["size"] for a in listed["artifacts"]] == [
        len(built.artifacts[n]) for n in MODEL_NAMES
    ]

    assert await run(backup.main, "--restore", name) == 0

    restored = await current(place)
    sets = set()
    for model in MODEL_NAMES:
        data, info = restored[model]
        assert data == built.artifacts[model]
        header = artifacts.read_header(data)
        metadata = dict(info.metadata)
        sets.add(metadata.pop(SET_METADATA))
        assert metadata == artifacts.to_metadata(header)  # reads as a fresh publish does
    assert len(sets) == 1  # restored as one set
    async with opened(place.url, place.endpoint) as store:
        registry = Registry(store, key=KEY.encode())
        await registry.load_all()
    assert registry.missing() == {}
    assert registry.status()["hybrid"].checksum == sha(built.artifacts["hybrid"])


async def test_a_backup_during_an_unfinished_publish_copies_the_served_set(
    place: Place, built: BuildResult, datasets: Datasets, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)
    newer = build_artifacts(datasets.newer, key=KEY.encode(), hybrid_weight=0.6)
    async with opened(place.url, place.endpoint) as store:  # killed after the sub-models
        await interrupt_publish(store, newer.artifacts, "content_based", "collaborative")

    assert await run(backup.main) == 0
    name = capsys.readouterr().out.split()[1]
    await publish(place, newer.artifacts)
    assert await run(backup.main, "--restore", name) == 0

    restored = await current(place)
    assert {n: sha(data) for n, (data, _) in restored.items()} == {
        n: sha(data) for n, data in built.artifacts.items()
    }


async def test_backups_keep_the_artifacts_metadata(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)
    assert await run(backup.main) == 0
    name = capsys.readouterr().out.split()[1]

    originals = await heads(place)
    async with opened(place.url, place.endpoint) as store:
        copies = {info.key: info for info in await store.list(f"backups/{name}/")}
    assert set(copies) == {f"backups/{name}/{artifact_key(n)}" for n in MODEL_NAMES} | {
        f"backups/{name}/backup.json"
    }
    for model in MODEL_NAMES:
        original = originals[model]
        assert original is not None
        copy = copies[f"backups/{name}/{artifact_key(model)}"]
        assert {k: copy.metadata[k] for k in original.metadata} == original.metadata
        assert copy.metadata["backup-of"] == artifact_key(model)
        assert copy.metadata["backup-of-version"] == original.version_id


async def test_backup_to_another_bucket_and_back(
    place: Place, built: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = f"s3://archive-{uuid.uuid4().hex[:12]}/wisata"
    await publish(place, built.artifacts)
    assert await run(backup.main, "--to", archive) == 0
    name = capsys.readouterr().out.split()[1]
    async with opened(place.url, place.endpoint) as store:
        for model in MODEL_NAMES:
            await store.delete(artifact_key(model))  # the models are lost
        assert await store.list("backups/") == []  # the backup is not in this bucket

    assert await run(backup.main, "--to", archive, "--list") == 0
    assert f"{name}: content_based (trained " in capsys.readouterr().out

    assert await run(backup.main, "--to", archive, "--restore", name) == 0

    restored = await current(place)
    assert {m: data for m, (data, _) in restored.items()} == built.artifacts


async def test_a_damaged_or_incomplete_backup_is_not_restored(
    place: Place, built: BuildResult, datasets: Datasets, capsys: pytest.CaptureFixture[str]
) -> None:
    await publish(place, built.artifacts)
    assert await run(backup.main) == 0
    damaged_name = capsys.readouterr().out.split()[1]
    assert await run(backup.main) == 0
    incomplete_name = capsys.readouterr().out.split()[1]
    assert incomplete_name != damaged_name  # two backups in the same second keep apart
    async with opened(place.url, place.endpoint) as store:
        key = f"backups/{damaged_name}/collaborative.pkl"
        data, info = await store.get(key)
        await store.put(key, data[:-1] + bytes([data[-1] ^ 1]), info.metadata)
        await store.delete(f"backups/{incomplete_name}/backup.json")
    newer = build_artifacts(datasets.newer, key=KEY.encode(), hybrid_weight=0.6)
    await publish(place, newer.artifacts)
    before = await heads(place)

    assert await run(backup.main, "--restore", damaged_name) == 1
    err = capsys.readouterr().err
    assert "collaborative does not verify (ChecksumMismatch" in err
    assert "nothing was restored" in err

    assert await run(backup.main, "--restore", incomplete_name) == 1
    assert f"backup {incomplete_name} is incomplete" in capsys.readouterr().err

    assert await run(backup.main, "--restore", "1999-01-01T000000Z") == 1
    assert "there is no backup 1999-01-01T000000Z" in capsys.readouterr().err

    assert await heads(place) == before  # not one model was touched
    assert await run(backup.main, "--list") == 0
    assert f"{incomplete_name}: " in (out := capsys.readouterr().out)
    assert "INCOMPLETE" in out


async def test_a_backup_whose_hybrid_does_not_match_its_sub_models_is_not_restored(
    place: Place, built: BuildResult, datasets: Datasets, capsys: pytest.CaptureFixture[str]
) -> None:
    # The content model was retrained alone: the stored hybrid was built with the old one.
    newer = build_artifacts(datasets.newer, ["content_based"], key=KEY.encode())
    await publish(place, {**built.artifacts, "content_based": newer.artifacts["content_based"]})
    assert await run(backup.main) == 0
    name = capsys.readouterr().out.split()[1]
    await publish(place, built.artifacts)
    before = await heads(place)

    assert await run(backup.main, "--restore", name) == 1

    err = capsys.readouterr().err
    assert f"backup {name}: its hybrid was built with content_based " in err
    assert "nothing was restored" in err
    assert await heads(place) == before


async def test_backup_of_an_empty_store_is_an_error(
    place: Place, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(backup.main) == 1
    assert "nothing to back up" in capsys.readouterr().err


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("job", [retrain.main, status.main, backup.main])
@pytest.mark.parametrize(
    ("variable", "value"),
    [("WISATA_HYBRID_WEIGHT", "1.5"), ("WISATA_STORAGE", "ftp://models"), ("WISATA_PORT", "x")],
)
def test_bad_configuration_is_one_line_and_exit_2(
    place: Place,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    job: Callable[[Sequence[str] | None], int],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)

    assert job([]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: {variable}")


def test_a_time_zone_without_a_cron_is_a_usage_error(
    place: Place, capsys: pytest.CaptureFixture[str]
) -> None:
    assert retrain.main(["--timezone", "Asia/Jakarta"]) == 2
    assert "--timezone only applies to --cron" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--every", "5x"],
        ["--cron", "61 * * * *"],
        ["--every", "1d", "--cron", "0 3 * * 0"],
        ["--min-ndcg-ratio", "-1"],
        ["--if-new-ratings", "many"],
        ["--cron", "0 3 * * 0", "--timezone", "Nowhere/Land"],
    ],
)
def test_bad_retrain_flags_are_usage_errors(
    place: Place, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert retrain.main(argv) == 2
    assert "usage: wisata-retrain" in capsys.readouterr().err
