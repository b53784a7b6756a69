"""Load: 32 concurrent clients on the recommendation routes while a training and a reload happen.

Two phases of at least 60 s each, one on a service with the response cache (the default) and
one with ``WISATA_RESPONSE_CACHE=0``, so that the models really run on every request. In each,
a real ``python -m service`` process on a ``moto_server`` bucket serves a first set of models
(A) while 32 aiohttp clients on 127.0.0.1 send recommendation, similar-item and fold-in
requests as fast as it answers. Meanwhile the service trains all three models through its API
(set C, in its worker process), then another writer publishes a third set (B) to the bucket,
which the service's reloader must pick up (``WISATA_RELOAD_INTERVAL=1``). Every response must
be a 200 with a valid body, and once B is served, the answers must be B's (the cache must not
hand out answers of the models it replaced). Both trainings use the fixed hybrid weight, so the
hybrid's own bytes are the same in C and B and only its sub-models differ: the case where a cache
keyed by the hybrid's checksum alone served C's answers after B was loaded.

Only correctness is asserted; the throughput and latency printed are for ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from service import artifacts
from service.ml.recommenders import MODEL_NAMES, Collaborative, ContentBased, Hybrid, Recommender
from service.sample_data import SAMPLE_DATA_DIR
from tests.reliability.conftest import (
    ADMIN,
    bucket_url,
    build,
    publish,
    service_env,
    variant_dataset,
)
from tests.s3server import S3ServerProcess
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow

CLIENTS: Final = 32
PHASE_SECONDS: Final = 60.0
#: The phase goes on until the training and the reload are done, but never past this.
MAX_PHASE_SECONDS: Final = 150.0
REQUEST_TIMEOUT: Final = 30.0
SEED: Final = 7
ALGORITHMS: Final = {
    "content": "content_based",
    "collaborative": "collaborative",
    "hybrid": "hybrid",
}
ITEMS: Final = [str(i) for i in range(1, 63)]
KNOWN_USERS: Final = [f"u{i:03d}" for i in range(1, 301)]
CHECK_USERS: Final = ["u001", "u002", "u150", "someone-new"]


@dataclass(frozen=True)
class Call:
    """One request the clients may send, and what a valid answer looks like."""

    method: str
    path: str
    body: dict[str, Any] | None
    algorithm: str
    limit: int
    item: str | None = None  # the item of a similar-items request


def calls(rng: random.Random) -> list[Call]:
    """A seeded mix of the three recommendation routes, known and unknown users."""
    found: list[Call] = []
    for _ in range(6000):
        algorithm = rng.choice(list(ALGORITHMS))
        limit = rng.choice((5, 10, 20))
        kind = rng.random()
        if kind < 0.6:
            user = (
                rng.choice(KNOWN_USERS) if rng.random() < 0.9 else f"visitor-{rng.randrange(999)}"
            )
            path = (
                f"/api/frontend/recommendations?user_id={user}&algorithm={algorithm}&limit={limit}"
            )
            if algorithm == "hybrid" and rng.random() < 0.3:
                path += f"&lambda={rng.choice((0.3, 0.7, 1.0))}"
            found.append(Call("GET", path, None, algorithm, limit))
        elif kind < 0.85:
            item = rng.choice(ITEMS)
            path = f"/api/items/{item}/similar?algorithm={algorithm}&limit={limit}"
            found.append(Call("GET", path, None, algorithm, limit, item))
        else:
            rated = rng.sample(ITEMS, rng.randint(1, 8))
            ratings = [{"item_id": i, "rating": rng.randint(1, 5)} for i in rated]
            body = {"ratings": ratings, "algorithm": algorithm, "limit": limit}
            found.append(Call("POST", "/api/recommendations", body, algorithm, limit))
    return found


def problem(call: Call, status: int, raw: bytes) -> str | None:
    """What is wrong with an answer, or None when it is a 200 with a valid body."""
    if status != 200:
        return f"{call.method} {call.path}: {status} {raw[:300]!r}"
    try:
        body = json.loads(raw)
        items = body["items"]
        assert body["algorithm"] == call.algorithm
        assert isinstance(body["model_version"], str) and body["model_version"]
        assert 1 <= len(items) <= call.limit
        assert len({item["id"] for item in items}) == len(items)
        for item in items:
            assert isinstance(item["name"], str) and isinstance(item["categories"], list)
            assert isinstance(item["score"], float | int) and math.isfinite(item["score"])
        if call.item is not None:
            assert body["item"]["id"] == call.item
            assert call.item not in {item["id"] for item in items}
        else:
            assert isinstance(body["cold_start"], bool)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        return f"{call.method} {call.path}: invalid body ({e!r}): {raw[:300]!r}"
    return None


@dataclass
class Tally:
    """What the clients saw."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def client(
    http: aiohttp.ClientSession,
    plan: list[Call],
    rng: random.Random,
    done: asyncio.Event,
    tally: Tally,
) -> None:
    """Send requests one after the other until ``done``."""
    while not done.is_set():
        call = rng.choice(plan)
        start = time.perf_counter()
        try:
            async with http.request(call.method, call.path, json=call.body) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            tally.failures.append(f"{call.method} {call.path}: {e!r}")
            continue
        tally.latencies.append(time.perf_counter() - start)
        if (found := problem(call, status, raw)) is not None:
            tally.failures.append(found)


def attached(built: dict[str, bytes]) -> dict[str, Recommender]:
    """The models of a set of artifacts, the hybrid attached to its sub-models."""
    models = {name: artifacts.load(data, expected_model=name)[0] for name, data in built.items()}
    content, collaborative, hybrid = (models[name] for name in MODEL_NAMES)
    assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
    assert isinstance(hybrid, Hybrid)
    hybrid.attach(content, collaborative)
    return {ContentBased.name: content, Collaborative.name: collaborative, Hybrid.name: hybrid}


def etags(built: dict[str, bytes]) -> dict[str, str]:
    """The ETags the artifacts get in the bucket (the MD5 of a single-part upload)."""
    return {name: hashlib.md5(data).hexdigest() for name, data in built.items()}


@dataclass
class Events:
    """What the controller made happen, and when (seconds into the phase)."""

    job: dict[str, Any] = field(default_factory=dict)
    published_at: float = math.nan
    reloaded_at: float = math.nan


async def control(
    http: aiohttp.ClientSession,
    started: float,
    writer: Callable[[], Awaitable[None]],
    newest: dict[str, bytes],
    events: Events,
) -> None:
    """Train through the API, then publish another set as another writer; wait for the reload."""
    admin = dict(ADMIN)

    async def status() -> dict[str, Any]:
        async with http.get("/api/ml/status") as response:
            assert response.status == 200
            answer: dict[str, Any] = await response.json()
            return answer

    await asyncio.sleep(1.0)
    async with http.post("/api/ml/train-all", headers=admin) as response:
        assert response.status == 202, await response.text()
        job_id = (await response.json())["job_id"]
    while True:
        async with http.get(f"/api/ml/jobs/{job_id}") as response:
            events.job = await response.json()
        if events.job["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.5)
    assert events.job["status"] == "succeeded", events.job
    assert set(events.job["persisted"].values()) == {"yes"}, events.job

    for user in CHECK_USERS:  # answers the cache now holds for the models about to be replaced
        for algorithm in ALGORITHMS:
            path = f"/api/frontend/recommendations?user_id={user}&algorithm={algorithm}"
            async with http.get(path) as response:
                assert response.status == 200
    events.published_at = time.monotonic() - started
    await writer()
    wanted = etags(newest)
    while True:  # polled, as an operator's dashboard would
        served = {n: m["artifact"]["etag"] for n, m in (await status())["models"].items()}
        if served == wanted:
            break
        await asyncio.sleep(0.1)
    events.reloaded_at = time.monotonic() - started


async def answers_match(http: aiohttp.ClientSession, models: dict[str, Recommender]) -> None:
    """The service answers what ``models`` compute, for the users checked."""
    for user in CHECK_USERS:
        for algorithm, name in ALGORITHMS.items():
            path = f"/api/frontend/recommendations?user_id={user}&algorithm={algorithm}"
            async with http.get(path) as response:
                body = await response.json()
            expected = models[name].recommend(user, n=10)
            assert [item["id"] for item in body["items"]] == [i for i, _ in expected.items], (
                path,
                body,
            )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@pytest.mark.parametrize("cache", ["2048", "0"], ids=["cache on", "cache off"])
async def test_32_clients_during_a_training_and_a_reload_all_get_valid_answers(
    s3_server: S3ServerProcess, tmp_path: Path, cache: str
) -> None:
    endpoint, url = s3_server.endpoint, bucket_url()
    first = build(variant_dataset(tmp_path / "a", seed=1))
    newest = build(variant_dataset(tmp_path / "b", seed=2))
    expected = attached(newest)
    await publish(url, endpoint, first)
    env = service_env(
        url,
        endpoint,
        WISATA_DATA=str(SAMPLE_DATA_DIR),
        WISATA_RELOAD_INTERVAL="1",
        WISATA_RESPONSE_CACHE=cache,
    )
    server = ServeProcess(env)
    await asyncio.to_thread(server.__enter__)
    try:
        tally, events, elapsed = await run_phase(server, url, endpoint, newest, expected)
    finally:
        await asyncio.to_thread(server.stop)
        log = server.log()
        server.__exit__(None, None, None)

    count = len(tally.latencies)
    print(  # RELIABILITY.md quotes these (pytest -s)
        f"\ncache {cache}: {count} requests by {CLIENTS} clients in {elapsed:.1f} s "
        f"({count / elapsed:.0f}/s), p50 {percentile(tally.latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(tally.latencies, 0.99) * 1000:.1f} ms, {len(tally.failures)} failed; "
        f"train-all job {events.job['started_at']} -> {events.job['finished_at']}, "
        f"published at {events.published_at:.1f} s, served {events.reloaded_at:.1f} s"
    )
    assert not tally.failures, tally.failures[:20]
    assert count > 0
    assert "loaded new stored versions of" in log  # B came in by the reloader, not a restart
    assert "Traceback" not in log, log[-5000:]


async def run_phase(
    server: ServeProcess,
    url: str,
    endpoint: str,
    newest: dict[str, bytes],
    expected: dict[str, Recommender],
) -> tuple[Tally, Events, float]:
    rng = random.Random(SEED)
    plan = calls(rng)
    tally, events, done = Tally(), Events(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    # The controller has a session of its own: the clients keep every connection of theirs busy.
    async with (
        aiohttp.ClientSession(server.base, connector=connector, timeout=timeout) as http,
        aiohttp.ClientSession(server.base, timeout=timeout) as operator,
    ):
        started = time.monotonic()
        workers = [
            asyncio.create_task(client(http, plan, random.Random(SEED + i), done, tally))
            for i in range(CLIENTS)
        ]
        try:
            async with asyncio.timeout(MAX_PHASE_SECONDS):
                writer = lambda: publish(url, endpoint, newest)  # noqa: E731
                await control(operator, started, writer, newest, events)
                await answers_match(operator, expected)
                await asyncio.sleep(max(0.0, PHASE_SECONDS - (time.monotonic() - started)))
        finally:
            done.set()
            await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
    return tally, events, elapsed
