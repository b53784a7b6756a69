"""Benchmark of the artifact store: publish and get latency and throughput on both backends.

Run from the repository root::

    .venv/bin/python -m bench.storage                 # moto_server process + temp folder
    .venv/bin/python -m bench.storage --endpoint http://minio:9000 --bucket bench

For each object size it publishes (``put``: temporary upload, check, server-side copy, delete)
and reads back (``get``) the same key several times, and prints the median latency and MB/s
(1 MB = 10^6 bytes) as a markdown table. Without ``--endpoint`` it starts its own moto server
in a separate process, so client and server do not share an interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage import ArtifactStore

MB = 1_000_000
DEFAULT_SIZES_MB = (0.2, 2.0, 50.0)


@dataclass(frozen=True)
class Row:
    backend: str
    size: int
    publish: float  # median seconds
    get: float  # median seconds
    repeats: int

    def cells(self) -> list[str]:
        mb = self.size / MB
        return [
            self.backend,
            f"{mb:g} MB",
            f"{self.publish * 1000:.1f}",
            f"{mb / self.publish:.1f}",
            f"{self.get * 1000:.1f}",
            f"{mb / self.get:.1f}",
            str(self.repeats),
        ]


HEADER = ["backend", "size", "publish ms", "publish MB/s", "get ms", "get MB/s", "runs"]


async def median_seconds(action: Callable[[], Awaitable[object]], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        await action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def bench_store(
    name: str, store: ArtifactStore, sizes: Sequence[int], repeats: int
) -> list[Row]:
    rows = []
    await store.ensure_ready()
    for size in sizes:
        data = os.urandom(size)
        key = f"bench/{size}.bin"
        metadata = {"model": "bench", "size": str(size)}
        runs = repeats if size < 10 * MB else max(3, repeats // 2)
        await store.put(key, data, metadata)  # warm-up: connections, folders, caches
        await store.get(key)
        publish = await median_seconds(functools.partial(store.put, key, data, metadata), runs)
        get = await median_seconds(functools.partial(store.get, key), runs)
        rows.append(Row(name, size, publish, get, runs))
        await store.cleanup_temp()
    return rows


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[Row]:
    from storage import StoreSettings, open_store

    sizes = [int(mb * MB) for mb in args.sizes]
    rows: list[Row] = []
    if "local" in args.backends:
        with tempfile.TemporaryDirectory(dir=args.local_dir) as folder:
            async with open_store(folder) as store:
                rows += await bench_store("local", store, sizes, args.repeats)
    if "s3" in args.backends:
        url = f"s3://{args.bucket or 'bench-' + uuid.uuid4().hex[:12]}/bench"
        async with open_store(
            url,
            StoreSettings(endpoint=args.endpoint, create_bucket=True, versioning=args.versioning),
        ) as store:
            rows += await bench_store("s3", store, sizes, args.repeats)
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.storage", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=DEFAULT_SIZES_MB, help="object sizes in MB"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per size (median)")
    parser.add_argument("--backends", nargs="+", choices=("local", "s3"), default=("local", "s3"))
    parser.add_argument("--endpoint", help="S3 endpoint to use instead of a moto server")
    parser.add_argument("--bucket", help="bucket for --endpoint (default: a new one)")
    parser.add_argument("--versioning", action="store_true", help="turn on bucket versioning")
    parser.add_argument("--local-dir", help="folder to create the local store in (default: TMP)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    if not __package__:
        # Run as a file, this module would shadow the project's storage package.
        sys.exit("run it from the repository root: python -m bench.storage")
    args = parse_args(argv)
    server = None
    if args.endpoint is None and "s3" in args.backends:
        from tests.s3server import S3ServerProcess, fake_aws_environment

        os.environ.update(fake_aws_environment())
        server = S3ServerProcess()
        args.endpoint = server.start()
    try:
        rows = asyncio.run(run(args))
    finally:
        if server is not None:
            server.stop()
    where = "moto_server (separate process)" if server else (args.endpoint or "-")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"S3 endpoint: {where}")
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
