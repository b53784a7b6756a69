"""In-process cost of the web layer on the two hot GET routes, with and without the cache.

Usage: python -m bench.web [--calls 3000] [--repeats 3]

Run from the root of the tree to measure: it imports that tree's ``service`` package, so the
same script times two versions of the code (a checkout of the old one, run from its folder,
against the new one). It trains the demo data, stores the artifacts in a temporary folder and
starts the application's resources (store, registry...) without a listening socket; then it
awaits the view coroutines directly on mocked requests (no HTTP, no middlewares):

- ``recommendations``: ``GET /api/frontend/recommendations?user_id=uNNN&algorithm=hybrid&
  limit=10&lambda=0.7``, users cycling over the demo's 300;
- ``similar``: ``GET /api/items/{id}/similar?limit=10``, items cycling over the 62;

each with the response cache on (every timed call a hit: parse the query, build the key, find
the bytes) and off (``WISATA_RESPONSE_CACHE=0``: parse, ask the model, serialise 10 scored
items). The model's own call is timed alone too, so ``off - model`` is what the web layer adds
to an answer it computes. Prints the mean and p99 in microseconds per call, the median over
``--repeats`` runs. The objects alive before a measure are frozen out of the garbage collector
(``gc.freeze``), so that its full passes over the mocked requests do not land in the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from service import artifacts
from service.config import Config
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.trainer import build_artifacts
from service.web import views
from service.web.app import create_app
from service.web.keys import REGISTRY
from storage import open_store

USERS = [f"u{i:03d}" for i in range(1, 301)]
ITEMS = [str(i) for i in range(1, 63)]
WARM_UP = 300


async def seed(url: str) -> None:
    built = await asyncio.to_thread(build_artifacts, SAMPLE_DATA_DIR)
    async with open_store(url) as store:
        await store.ensure_ready()
        for name, data in built.artifacts.items():
            await store.put(f"{name}.pkl", data, artifacts.to_metadata(artifacts.read_header(data)))


def requests_of(app: web.Application, route: str, count: int) -> list[web.Request]:
    """``count`` fresh mocked requests of one route (a request caches its parsed query)."""
    if route == "recommendations":
        return [
            make_mocked_request(
                "GET",
                f"/api/frontend/recommendations?user_id={USERS[i % len(USERS)]}"
                "&algorithm=hybrid&limit=10&lambda=0.7",
                app=app,
            )
            for i in range(count)
        ]
    return [
        make_mocked_request(
            "GET",
            f"/api/items/{ITEMS[i % len(ITEMS)]}/similar?limit=10",
            app=app,
            match_info={"id": ITEMS[i % len(ITEMS)]},
        )
        for i in range(count)
    ]


def model_call(app: web.Application, route: str) -> Callable[[int], object]:
    """The hybrid's own call behind request ``i`` of ``route``."""
    hybrid = app[REGISTRY].model("hybrid")
    if route == "recommendations":
        return lambda i: hybrid.recommend(USERS[i % len(USERS)], n=10, mmr_lambda=0.7)
    return lambda i: hybrid.similar_items(ITEMS[i % len(ITEMS)], n=10)


async def timed(call: Callable[[int], Awaitable[object] | object], calls: int) -> list[float]:
    """Microseconds of each of ``calls`` calls ``call(i)``, after :data:`WARM_UP` calls.

    The objects alive before (the mocked requests, the models) are frozen out of the garbage
    collector first: its full passes over them (up to 2 s for the earlier runs' garbage) would
    land in whichever call happens to trigger one. The collections the calls' own allocations
    cause still count.
    """
    gc.collect()
    gc.freeze()
    times = []
    try:
        for i in range(WARM_UP + calls):
            start = time.perf_counter_ns()
            result = call(i)
            if asyncio.iscoroutine(result):
                await result
            if i >= WARM_UP:
                times.append((time.perf_counter_ns() - start) / 1000.0)
    finally:
        gc.unfreeze()
    return times


async def run(url: str, cache: str, calls: int) -> dict[str, list[float]]:
    config = Config.from_env(
        {"WISATA_STORAGE": url, "WISATA_RELOAD_INTERVAL": "0", "WISATA_RESPONSE_CACHE": cache}
    )
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        found = {}
        handlers = {"recommendations": views.recommendations, "similar": views.similar_items}
        for route, view in handlers.items():
            requests = requests_of(app, route, WARM_UP + calls)
            label = f"{route}, cache {'on' if cache != '0' else 'off'}"
            found[label] = await timed(lambda i, r=requests, v=view: v(r[i]), calls)
            if cache == "0":
                found[f"{route}, model alone"] = await timed(model_call(app, route), calls)
        return found
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per measure")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median is printed")
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}, "
        f"code from {Path(views.__file__).resolve().parents[2]}"
    )
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = Path(folder).as_uri()
        asyncio.run(seed(url))
        for _ in range(args.repeats):
            for cache in ("2048", "0"):
                for label, times in asyncio.run(run(url, cache, args.calls)).items():
                    p99 = sorted(times)[int(0.99 * len(times))]
                    runs.setdefault(label, []).append((statistics.fmean(times), p99))
    print()
    print("| measure | mean µs | p99 µs |")
    print("| --- | --- | --- |")
    for label, figures in runs.items():
        mean = statistics.median(m for m, _ in figures)
        p99 = statistics.median(p for _, p in figures)
        print(f"| {label} | {mean:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
