"""Crashes: the service SIGKILLed while it publishes a training, and the S3 server going away.

**Kill during publish.** A chain of real ``python -m service`` processes on one bucket: each
starts on what the previous one left, checks it, trains on a dataset of its own (so its
artifacts have checksums of their own), and is killed with SIGKILL at a random moment 0 to 300 ms
after the first new object of its publish appears in the bucket. The next process must load a
verified set that is all old (what the killed process served) or all new (what it trained): no
model failed, the hybrid loaded with exactly its own sub-models, its answers the ones computed
here from the stored versions it records. Where the bucket's current object of a model is from
the unfinished publish, the status must name it as held back and the version before it served.

**S3 server restarted.** The service reaches a ``moto_server`` process through a TCP proxy. The
proxy is cut and that server killed (its buckets die with it); a new server is started, the
artifacts published to it again (as a MinIO restarting on its disk would still hold them) and
the proxy pointed at it. Meanwhile every request must be answered from memory, the status must
say the storage is unavailable, and afterwards the service must recover without a restart.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aioboto3
import aiohttp
import pytest

from service import artifacts
from service.ml.recommenders import MODEL_NAMES, Collaborative, ContentBased, Hybrid
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import artifact_key
from tests.reliability.conftest import (
    ADMIN,
    bucket_url,
    build,
    checksum,
    open_bucket,
    publish,
    served,
    service_env,
    variant_dataset,
)
from tests.s3server import CuttableProxy, S3ServerProcess, free_port
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow

RUNS: Final = 10
MAX_KILL_DELAY: Final = 0.3
SEED: Final = 20261127
PUBLISH_TIMEOUT: Final = 60.0
SUB_MODELS: Final = ("content_based", "collaborative")


# --- SIGKILL during a publish -------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One artifact as stored: its ETag and its payload checksum.

    The ETag tells two trainings apart; the checksum alone may not: a hybrid with a fixed
    weight pickles the same bytes whatever it was trained on, only its header (which names
    its sub-models) differs.
    """

    etag: str
    checksum: str | None


async def stored(url: str, endpoint: str) -> dict[str, dict[str | None, Version]]:
    """Model name -> version id -> the stored artifact, the current one first."""
    found: dict[str, dict[str | None, Version]] = {}
    async with open_bucket(url, endpoint) as store:
        for name in MODEL_NAMES:
            versions = await store.versions(artifact_key(name))
            found[name] = {
                v.version_id: Version(v.etag, v.metadata.get("sha256")) for v in versions
            }
    return found


def current(listing: dict[str, dict[str | None, Version]]) -> dict[str, Version]:
    return {name: next(iter(versions.values())) for name, versions in listing.items()}


async def train_until_publishing(
    server: ServeProcess, endpoint: str, url: str, within: float
) -> float:
    """Start a training; return as soon as a new object (a temporary upload too) is in the bucket.

    The bucket is listed before the training starts, so the first write is never missed.
    Returns the seconds from the request to that first write.
    """
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint) as client:

        async def snapshot() -> set[tuple[str, str]]:
            page = await client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
            return {(o["Key"], o["ETag"]) for o in page.get("Contents", [])}

        before = await snapshot()
        start = time.monotonic()
        await asyncio.to_thread(server.json, "POST", "/api/ml/train-all", None, dict(ADMIN))
        try:
            async with asyncio.timeout(within):
                while True:  # polled: nothing signals a write to this process
                    if await snapshot() - before:
                        return time.monotonic() - start
                    await asyncio.sleep(0.005)
        except TimeoutError:
            pytest.fail(f"nothing new was published within {within} s")


def published(
    before: dict[str, dict[str | None, Version]], after: dict[str, dict[str | None, Version]]
) -> dict[str, Version | None]:
    """Each model's version written between the two listings; None where none was written."""
    found: dict[str, Version | None] = {}
    for name in MODEL_NAMES:
        written = [v for vid, v in after[name].items() if vid not in before[name]]
        assert len(written) <= 1, (name, written)  # one training publishes each model once
        found[name] = written[0] if written else None
    return found


def serving(status: dict[str, Any]) -> dict[str, Version | None]:
    """Model name -> the artifact it serves (None when it serves nothing), from the status."""
    return {
        name: Version(model["artifact"]["etag"], model["checksum"])
        if model["state"] in ("loaded", "stale")
        else None
        for name, model in status["models"].items()
    }


@dataclass(frozen=True)
class Run:
    """One killed training: what its process served and the bucket held, what it wrote."""

    served: dict[str, Version | None]
    stored: dict[str, Version]
    written: dict[str, Version | None]


def check_consistent(status: dict[str, Any], run: Run, now: dict[str, Version]) -> str:
    """Check the set a restarted service loaded after ``run``: "all old" or "all new".

    ``now`` is what the bucket holds when the restarted service starts.
    """
    models = status["models"]
    assert {model["state"] for model in models.values()} == {"loaded"}, models
    held = (status["unfinished_publish"] or {}).get("held_back", [])
    after = serving(status)
    for name, version in after.items():
        if name in held:  # the current object is the unfinished publish's (or that of one it
            # took over, killed in an earlier run): what was served before it still serves
            assert now[name] in (run.written[name], run.stored[name]), (name, now, run)
            assert version == run.served[name], (name, version, run)
        else:  # the current object, whole
            assert version == now[name], (name, version, now)
    hybrid = models["hybrid"]
    assert hybrid["header"]["parents"] == {n: models[n]["checksum"] for n in SUB_MODELS}, hybrid

    if after == run.served:
        return "all old" + (f" ({', '.join(held)} held back)" if held else "")
    if after == run.written:
        return "all new"
    sides = [f"{n} {'new' if after[n] == run.written[n] else 'old'}" for n in MODEL_NAMES]
    pytest.fail(f"a mixed set was loaded: {', '.join(sides)}; {run}")


def test_a_kill_during_publish_leaves_a_consistent_set(
    s3_server: S3ServerProcess, tmp_path: Path
) -> None:
    endpoint, url = s3_server.endpoint, bucket_url()
    rng = random.Random(SEED)
    asyncio.run(publish(url, endpoint, build(variant_dataset(tmp_path / "data-0", seed=0))))
    outcomes: collections.Counter[str] = collections.Counter()
    details: list[str] = []
    killed: Run | None = None
    delay = 0.0
    for run in range(RUNS + 1):
        before = asyncio.run(stored(url, endpoint))
        data = variant_dataset(tmp_path / f"data-{run + 1}", seed=run + 1)
        env = service_env(url, endpoint, WISATA_DATA=str(data))
        with ServeProcess(env) as server:
            status = server.json("GET", "/api/ml/status")
            if killed is None:
                assert served(status) == {n: v.checksum for n, v in current(before).items()}
            else:  # this process is the restart after the previous run's kill
                outcome = check_consistent(status, killed, current(before))
                outcomes[outcome] += 1
                details.append(f"run {run}: killed {delay * 1000:.0f} ms in: {outcome}")
                check_answers(server, url, endpoint)
            if run == RUNS:
                break
            serving_before = serving(status)
            asyncio.run(train_until_publishing(server, endpoint, url, within=PUBLISH_TIMEOUT))
            delay = rng.uniform(0, MAX_KILL_DELAY)
            time.sleep(delay)
            server.kill()
        written = published(before, asyncio.run(stored(url, endpoint)))
        killed = Run(serving_before, current(before), written)
    summary = "\n".join([*details, str(dict(outcomes))])
    print(summary)  # RELIABILITY.md quotes these (pytest -s)
    assert sum(outcomes.values()) == RUNS, summary


def check_answers(server: ServeProcess, url: str, endpoint: str) -> None:
    """Every model answers; the hybrid what its own sub-models compute."""
    for algorithm in ("content", "collaborative", "hybrid"):
        path = f"/api/frontend/recommendations?user_id=u001&algorithm={algorithm}&limit=10"
        code, body = server.request("GET", path)
        assert code == 200 and body["items"], body
        if algorithm == "hybrid":
            expected = asyncio.run(own_hybrid_answer(url, endpoint, "u001"))
            assert [item["id"] for item in body["items"]] == expected, (body, expected)


async def own_hybrid_answer(url: str, endpoint: str, user: str) -> list[str]:
    """What the stored hybrid answers with the sub-model versions it records, computed here."""
    async with open_bucket(url, endpoint) as store:
        data, _ = await store.get(artifact_key("hybrid"))
        hybrid, header = artifacts.load(data, expected_model="hybrid")
        parts: dict[str, object] = {}
        for name in SUB_MODELS:
            for info in await store.versions(artifact_key(name)):
                if info.metadata.get("sha256") == header.parents[name]:
                    blob, _ = await store.get(artifact_key(name), info.version_id)
                    parts[name] = artifacts.load(blob, expected_model=name)[0]
                    break
    content, collaborative = parts["content_based"], parts["collaborative"]
    assert isinstance(hybrid, Hybrid) and isinstance(content, ContentBased)
    assert isinstance(collaborative, Collaborative)
    hybrid.attach(content, collaborative)
    return [item for item, _ in hybrid.recommend(user, n=10).items]


# --- the S3 server restarted while serving ------------------------------------------------------


class MovableProxy(CuttableProxy):
    """The shared cuttable proxy on a port fixed in advance, so it can come back on it, maybe
    in front of another server (the service keeps one endpoint for its whole life)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self.was_cut = False
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self.endpoint

    async def restore(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        await self.start()


@pytest.fixture
async def first_s3(aws_credentials: dict[str, str]) -> AsyncIterator[S3ServerProcess]:
    """A moto_server process of the test's own, which it will kill."""
    server = S3ServerProcess()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def get_json(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within} s")


async def test_the_s3_server_restarting_does_not_interrupt_serving(
    first_s3: S3ServerProcess, tmp_path: Path
) -> None:
    url, demo = bucket_url(), build(SAMPLE_DATA_DIR)
    await publish(url, first_s3.endpoint, demo)
    proxy = MovableProxy(first_s3.endpoint)
    await proxy.start()
    env = service_env(url, proxy.endpoint, WISATA_RELOAD_INTERVAL="1")
    server = ServeProcess(env)
    second = S3ServerProcess()
    await asyncio.to_thread(server.__enter__)  # the loop stays free to run the proxy
    try:
        async with aiohttp.ClientSession(server.base) as http:
            await outage_and_recovery(http, server, proxy, first_s3, second, url, demo, tmp_path)
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)
        await proxy.close()
        await asyncio.to_thread(second.stop)


async def outage_and_recovery(
    http: aiohttp.ClientSession,
    server: ServeProcess,
    proxy: MovableProxy,
    first_s3: S3ServerProcess,
    second: S3ServerProcess,
    url: str,
    demo: dict[str, bytes],
    tmp_path: Path,
) -> None:
    status = (await get_json(http, "GET", "/api/ml/status"))[1]
    assert status["storage"]["reachable"] is True
    checksums = served(status)
    answered: collections.Counter[int] = collections.Counter()

    async def serve_some() -> None:
        for algorithm in ("content", "collaborative", "hybrid"):
            path = f"/api/frontend/recommendations?user_id=u002&algorithm={algorithm}"
            code, body = await get_json(http, "GET", path)
            answered[code] += 1
            assert code == 200 and body["items"], body
        ratings = {"ratings": [{"item_id": "3", "rating": 5}]}
        code, body = await get_json(http, "POST", "/api/recommendations", json=ratings)
        answered[code] += 1
        assert code == 200 and body["items"], body

    await serve_some()
    proxy.cut()
    cut_at, answered_before = time.monotonic(), answered.total()
    await asyncio.to_thread(first_s3.kill)  # the server crashes: its buckets are gone

    async def unavailable() -> bool:
        await serve_some()
        storage = (await get_json(http, "GET", "/api/ml/status"))[1]["storage"]
        return storage["reachable"] is False and bool(storage["error"])

    await until(unavailable, "the status showing the storage unavailable")
    seen_down = time.monotonic() - cut_at
    for _ in range(20):  # keeps serving from memory while the storage stays away
        await serve_some()
    assert (await get_json(http, "GET", "/readyz"))[0] == 200
    code, body = await get_json(http, "POST", "/api/ml/reload", headers=dict(ADMIN))
    assert (code, body["error"]) == (503, "storage_unavailable"), body
    code, body = await get_json(http, "GET", "/api/ml/models/hybrid/versions")
    assert (code, body["error"]) == (503, "storage_unavailable"), body

    during = answered.total() - answered_before
    await asyncio.to_thread(second.start)
    await publish(url, second.endpoint, demo)  # what the restarted server still has on disk
    await proxy.restore(second.endpoint)
    restored_at = time.monotonic()

    async def reachable() -> bool:
        status = (await get_json(http, "GET", "/api/ml/status"))[1]
        return bool(status["storage"]["reachable"]) and status["storage"]["error"] is None

    await until(reachable, "the service seeing the storage again")
    print(  # RELIABILITY.md quotes these (pytest -s)
        f"\noutage of {restored_at - cut_at:.1f} s: the status said unavailable {seen_down:.1f} s "
        f"after the cut; {during} requests answered from memory meanwhile; reachable again "
        f"{time.monotonic() - restored_at:.1f} s after the new server came back"
    )
    code, body = await get_json(http, "POST", "/api/ml/reload", headers=dict(ADMIN))
    assert code == 200 and served(body) == checksums, body
    # A model published after the outage is picked up by the same process.
    newer = build(variant_dataset(tmp_path / "newer", seed=7))
    await publish(url, second.endpoint, newer)
    code, body = await get_json(http, "POST", "/api/ml/reload", headers=dict(ADMIN))
    assert code == 200 and served(body) == {n: checksum(d) for n, d in newer.items()}, body
    await serve_some()
    assert set(answered) == {200}
    assert "Traceback" not in server.log()
