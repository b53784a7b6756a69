"""Benchmark of the HTTP service: startup to ready, recommendation throughput, training impact.

Run from the repository root, as a module (run as a script, this file would shadow the standard
library's ``http``)::

    .venv/bin/python -m bench.http [--data DIR] [--duration 10] [--connections 32]
        [--startups 3] [--workers 2]

It starts a ``moto_server`` process, publishes the three artifacts trained on ``--data`` (the
demo data by default; MovieLens small for the computed-answer targets) to a bucket, and runs
every server as its own process on 127.0.0.1; the load comes from this process, a bounded
aiohttp loop (``--connections`` workers, each sending its next request when the previous one
is answered, for ``--duration`` seconds after half a second of warm-up; every target in turn,
``--rounds`` times, pooled). It measures:

1. startup to ready: from spawning ``python -m service`` to ``/readyz`` answering 200, with the
   seconds the service itself spent loading the artifacts (from ``/api/ml/status``);
2. requests per second (median of the rounds) and p50/p99 latency of
   ``GET /api/frontend/recommendations`` (the dataset's known users in a seeded random order)
   with the response cache on (the default) and off (``WISATA_RESPONSE_CACHE=0``: every answer
   computed by the model, for each of the three models, and for the hybrid with ``--workers``
   serving processes), against a bare aiohttp JSON hello-world server, and the service's own
   ``/healthz``;
3. p99 of the same requests while train-all jobs run back to back, against idle p99.

Everything shares the machine's cores: on a 2-core VM client, server and training worker
compete, which the figures include.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

WARMUP_SECONDS = 0.5
USERS: list[str] = []


@dataclass
class Load:
    """What the load runs of one target measured, pooled over rounds."""

    label: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, requests: int, seconds: float, latencies: list[float], errors: int) -> None:
        self.rates.append(requests / seconds)
        self.latencies.extend(latencies)
        self.errors += errors

    @property
    def rate(self) -> float:
        """Median requests per second over the rounds."""
        return statistics.median(self.rates)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def cells(self, baseline: Load) -> list[str]:
        return [
            self.label,
            f"{self.rate:.0f}",
            f"{100 * self.rate / baseline.rate:.0f} %",
            f"{self.quantile(0.5) * 1000:.1f}",
            f"{self.quantile(0.99) * 1000:.1f}",
            str(len(self.latencies)),
            str(self.errors),
        ]


# --- servers ------------------------------------------------------------------------------------


def hello_app() -> web.Application:
    """The baseline: aiohttp answering a small JSON object, nothing else."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def free_port() -> int:
    from tests.s3server import free_port as pick

    return pick()


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> float:
    """Poll ``url`` until it answers ``status``; return the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == status:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer {status} within {timeout} s")


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


DATA = ""


def service_env(storage: str, endpoint: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "WISATA_DATA": DATA,
        "WISATA_STORAGE": storage,
        "WISATA_S3_ENDPOINT": endpoint,
        "WISATA_PORT": str(port),
        "WISATA_RELOAD_INTERVAL": "0",
        "WISATA_LOG_LEVEL": "WARNING",
    }


def get_json(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


async def seed(storage: str, endpoint: str, data: str) -> None:
    """Publish the three models trained on ``data``; its known users become ``USERS``."""
    import random

    from service import artifacts
    from service.ml.datasets import load_dataset
    from service.serving.registry import artifact_key
    from service.serving.trainer import build_artifacts
    from storage import StoreSettings, open_store

    dataset = load_dataset(data)
    users = sorted(str(u) for u in dataset.interactions["user_id"].unique())
    random.Random(0).shuffle(users)
    USERS[:] = users
    built = build_artifacts(dataset).artifacts
    async with open_store(
        storage, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True)
    ) as store:
        await store.ensure_ready()
        for name, data in built.items():
            header = artifacts.read_header(data)
            await store.put(artifact_key(name), data, artifacts.to_metadata(header))


# --- measurements -------------------------------------------------------------------------------


def startup(storage: str, endpoint: str, runs: int) -> list[tuple[float, float, float]]:
    """(spawn to listening, spawn to ready, seconds loading artifacts) per run."""
    results = []
    for _ in range(runs):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with process([sys.executable, "-m", "service"], service_env(storage, endpoint, port)):
            listening = wait_for(f"{base}/healthz")
            ready = wait_for(f"{base}/readyz")
            models = get_json(f"{base}/api/ml/status")["models"].values()
            loading = sum(m["load_seconds"] or 0.0 for m in models)
        results.append((listening - started, ready - started, loading))
    return results


def import_seconds() -> float:
    """Seconds for a fresh interpreter to import the service (the floor of any startup)."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import service.web.app, service.__main__"],
        check=True,
        env=os.environ,
    )
    return time.monotonic() - started


async def load(
    target: Load,
    url: Callable[[int], str],
    connections: int,
    duration: float,
    body: Callable[[int], Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Keep ``connections`` requests in flight for ``duration`` s; add the run to ``target``.

    Request ``i`` is a GET of ``url(i)``, or a POST of the JSON ``body(i)`` when ``body`` is
    given; an answer outside 2xx counts as an error.
    """
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()

        async def worker(first: int, until: float, record: bool) -> None:
            nonlocal errors
            i = first
            while loop.time() < until:
                start = time.perf_counter()
                sent = (
                    session.get(url(i), headers=headers)
                    if body is None
                    else session.post(url(i), json=body(i), headers=headers)
                )
                async with sent as response:
                    await response.read()
                    failed = not 200 <= response.status < 300
                if record:
                    latencies.append(time.perf_counter() - start)
                    errors += failed
                i += connections

        warm = loop.time() + WARMUP_SECONDS
        await asyncio.gather(*(worker(k, warm, False) for k in range(connections)))
        started = time.perf_counter()
        until = loop.time() + duration
        await asyncio.gather(*(worker(k, until, True) for k in range(connections)))
        elapsed = time.perf_counter() - started
    target.add(len(latencies), elapsed, latencies, errors)


async def train_continuously(base: str, stop: asyncio.Event) -> tuple[int, float]:
    """Run train-all jobs back to back until ``stop``; return (jobs finished, busy seconds)."""
    jobs, busy = 0, 0.0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.post(f"{base}/api/ml/train-all") as response:
                job_id = (await response.json())["job_id"]
            while True:
                async with session.get(f"{base}/api/ml/jobs/{job_id}") as response:
                    state = (await response.json())["status"]
                if state not in ("queued", "running"):
                    break
                await asyncio.sleep(0.05)
            if state != "succeeded":
                raise RuntimeError(f"training job {job_id} ended {state}")
            jobs += 1
            busy += time.perf_counter() - started
    return jobs, busy


@dataclass
class Training:
    """Train-all jobs run back to back during the load runs of one target."""

    jobs: int = 0
    busy: float = 0.0
    measured: float = 0.0
    misses: int = 0
    lookups: int = 0


async def during_training(
    target: Load,
    training: Training,
    base: str,
    url: Callable[[int], str],
    connections: int,
    duration: float,
) -> None:
    """Load ``url`` while train-all jobs run back to back on the service at ``base``."""
    stop = asyncio.Event()
    trainer = asyncio.create_task(train_continuously(base, stop))
    await asyncio.sleep(0.2)  # the first job is running before the load starts
    before = cache_lookups(base)
    await load(target, url, connections, duration)
    after = cache_lookups(base)
    stop.set()
    jobs, busy = await trainer
    training.misses += after[1] - before[1]
    training.lookups += sum(after) - sum(before)
    training.jobs += jobs
    training.busy += busy
    training.measured += duration


def cache_lookups(base: str) -> tuple[int, int]:
    """The response cache's (hits, misses) so far, from the service's ``/metrics``."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    found = {"hit": 0, "miss": 0}
    for line in text.splitlines():
        if line.startswith("wisata_response_cache_lookups_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = int(float(line.rsplit(" ", 1)[1]))
    return found["hit"], found["miss"]


def serving_children(pid: int) -> list[int]:
    """The ``python -m service`` children of ``pid``: a supervisor's workers."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_text().split("\0")
            if command[1:3] == ["-m", "service"]:
                found.append(int(child))
    return found


def serving_rss(servers: dict[str, int]) -> dict[str, tuple[float, str]]:
    """RSS (MB) of each server's serving processes: itself, and its ``python -m service`` children.

    A supervisor's children are its workers; the training pools' processes are left out.
    """

    def rss(pid: int) -> float:
        status = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1]
        return int(status.split()[0]) / 1024

    figures = {}
    for label, pid in servers.items():
        parts = {"supervisor" if serving_children(pid) else "process": rss(pid)}
        for k, child in enumerate(serving_children(pid)):
            parts[f"worker {k}"] = rss(child)
        each = ", ".join(f"{name} {mb:.0f} MB" for name, mb in parts.items())
        figures[label] = (sum(parts.values()), each)
    return figures


# --- report -------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    from tests.s3server import S3ServerProcess, fake_aws_environment

    os.environ.update(fake_aws_environment())
    load_average = os.getloadavg()[0]
    global DATA
    DATA = str(args.data)
    with S3ServerProcess() as moto:
        storage = f"s3://bench-{uuid.uuid4().hex[:12]}/wisata"
        await seed(storage, moto.endpoint, DATA)
        imports = statistics.median(import_seconds() for _ in range(3))
        starts = startup(storage, moto.endpoint, args.startups)

        ports = {name: free_port() for name in ("hello", "cached", "uncached", "workers")}
        hello_cmd = [sys.executable, "-m", "bench.http", "hello", "--port", str(ports["hello"])]
        service_cmd = [sys.executable, "-m", "service"]
        uncached_env = {
            **service_env(storage, moto.endpoint, ports["uncached"]),
            "WISATA_RESPONSE_CACHE": "0",
        }
        workers_env = {
            **service_env(storage, moto.endpoint, ports["workers"]),
            "WISATA_RESPONSE_CACHE": "0",
            "WISATA_WORKERS": str(args.workers),
        }
        with (
            process(hello_cmd, dict(os.environ)),
            process(service_cmd, service_env(storage, moto.endpoint, ports["cached"])),
            process(service_cmd, uncached_env) as single,
            process(service_cmd, workers_env) as group,
        ):
            servers = {"1 process": single.pid, f"WISATA_WORKERS={args.workers}": group.pid}
            cached, uncached, workers = (
                f"http://127.0.0.1:{ports[k]}" for k in ("cached", "uncached", "workers")
            )
            hello = f"http://127.0.0.1:{ports['hello']}/"
            wait_for(hello)
            for base in (cached, uncached, workers):
                wait_for(f"{base}/readyz")
            results, trainings = await measure(args, hello, cached, uncached, workers)
            memory = serving_rss(servers)

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"- Date: {when}")
    print(
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, aiohttp {aiohttp.__version__}; load average "
        f"{load_average:.1f} when the benchmark started"
    )
    print(f"- Command: `.venv/bin/python -m bench.http {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Data: {args.data} ({len(USERS)} known users, in a seeded random order)")
    print()
    rows = [
        [f"{i + 1}", f"{a:.2f}", f"{b:.2f}", f"{c * 1000:.0f}"]
        for i, (a, b, c) in enumerate(starts)
    ]
    print(f"Startup (a fresh interpreter importing the service: {imports:.2f} s, median of 3):\n")
    print(table(["run", "spawn to listening s", "spawn to ready s", "loading 3 models ms"], rows))
    print()
    header = ["target", "req/s", "of hello-world", "p50 ms", "p99 ms", "requests", "errors"]
    baseline = results["hello"]
    print(table(header, [r.cells(baseline) for r in results.values()]))
    print()
    print()
    for label, (total, each) in memory.items():
        print(f"- RSS of the serving processes, {label}: {total:.0f} MB ({each})")
    print()
    for key, training in trainings.items():
        busy, idle = results[f"{key} training"], results[key]
        print(
            f"- {busy.label}: p99 {busy.quantile(0.99) / idle.quantile(0.99):.2f}x idle p99 "
            f"({training.jobs} train-all jobs back to back through the {training.measured:.0f} s "
            f"measured, {training.busy / max(training.jobs, 1):.1f} s each)"
        )
        if training.lookups:
            print(
                f"  - response cache: {training.misses} misses of {training.lookups} lookups "
                f"({100 * training.misses / training.lookups:.2f} %) during those runs"
            )


async def measure(
    args: argparse.Namespace, hello: str, cached: str, uncached: str, workers: str
) -> tuple[dict[str, Load], dict[str, Training]]:
    """Every target in turn, ``--rounds`` times, so that drift in the machine's load hits all."""
    n, d = args.connections, args.duration

    def recs(base: str, algorithm: str) -> Callable[[int], str]:
        return lambda i: (
            f"{base}/api/frontend/recommendations?user_id={USERS[i % len(USERS)]}"
            f"&algorithm={algorithm}"
        )

    targets: dict[str, tuple[str, Callable[[int], str], str | None]] = {
        "hello": ("bare aiohttp JSON hello-world", lambda i: hello, None),
        "healthz": ("service /healthz", lambda i: f"{cached}/healthz", None),
        "hit": ("hybrid (default), cache on", recs(cached, "hybrid"), None),
        "hit training": ("hybrid, cache on, train-all running", recs(cached, "hybrid"), cached),
        "miss": ("hybrid, cache off", recs(uncached, "hybrid"), None),
        "miss training": (
            "hybrid, cache off, train-all running",
            recs(uncached, "hybrid"),
            uncached,
        ),
        "collaborative": ("collaborative, cache off", recs(uncached, "collaborative"), None),
        "content": ("content, cache off", recs(uncached, "content"), None),
        "workers": (
            f"hybrid, cache off, {args.workers} workers",
            recs(workers, "hybrid"),
            None,
        ),
    }
    results = {key: Load(label) for key, (label, _, _) in targets.items()}
    # Every user's answer computed once: the cache-on runs then measure answers from the cache.
    async with aiohttp.ClientSession() as session:
        for user in USERS:
            async with session.get(f"{cached}/api/frontend/recommendations?user_id={user}") as r:
                await r.read()
    trainings = {"hit": Training(), "miss": Training()}
    for _ in range(args.rounds):
        for key, (_, url, train) in targets.items():
            if train is None:
                await load(results[key], url, n, d)
            else:
                training = trainings[key.removesuffix(" training")]
                await during_training(results[key], training, train, url, n, d)
    return results, trainings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    hello = sub.add_parser("hello", help="run the bare hello-world server (used by the bench)")
    hello.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="load runs per target")
    parser.add_argument("--connections", type=int, default=32, help="requests in flight")
    parser.add_argument("--startups", type=int, default=3, help="service starts to time")
    parser.add_argument(
        "--data", default=None, help="dataset folder the models are trained on (default: demo)"
    )
    parser.add_argument("--workers", type=int, default=2, help="WISATA_WORKERS of the workers row")
    args = parser.parse_args()
    if args.data is None:
        from service.sample_data import SAMPLE_DATA_DIR

        args.data = str(SAMPLE_DATA_DIR)
    if args.command == "hello":
        web.run_app(hello_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
