"""Memory of the serving processes: one process against ``WISATA_WORKERS=N``, RSS and PSS.

Usage: python -m bench.memory [--data DIR | --size 20k:5k:1M] [--workers 2] [--requests 2000]

Trains the three models once (the hybrid's content weight fixed at 0.5) on a dataset folder or a
seeded synthetic dataset (``bench/synthetic.py``), publishes them to a local artifact folder,
then starts ``python -m service`` alone and with ``--workers`` workers on that folder. Once each
is ready, it asks every algorithm for ``--requests`` random known users' answers and similar
items (so the models' pages are read), then reads each serving process's ``/proc`` figures:

- RSS counts every page a process has mapped, shared or not: two workers mapping one file both
  count it;
- PSS divides each shared page among the processes that map it, so the group's PSS total is
  what it costs the machine;
- "models mapped" is the size of the shared array files each process maps
  (:mod:`service.serving.sharing`).

The training pools' processes are left out (they exist only while a job runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.http import free_port, process, serving_children, wait_for
from bench.scale import parse_size


def publish(data: str | None, size: tuple[int, int, int] | None, folder: Path) -> list[str]:
    """Train and publish the models into ``folder``; return the known users' ids."""
    from service import artifacts
    from service.ml.datasets import load_dataset
    from service.serving.building import build_artifacts
    from service.serving.journal import artifact_key
    from storage import StoreSettings, open_store

    if data is not None:
        dataset = load_dataset(data)
    else:
        from bench.synthetic import SyntheticSpec, generate

        assert size is not None
        dataset = generate(SyntheticSpec(*size, seed=0))
    built = build_artifacts(dataset, hybrid_weight=0.5).artifacts

    async def put() -> None:
        async with open_store(str(folder), StoreSettings()) as store:
            await store.ensure_ready()
            for name, blob in built.items():
                header = artifacts.read_header(blob)
                await store.put(artifact_key(name), blob, artifacts.to_metadata(header))

    asyncio.run(put())
    sizes = ", ".join(f"{name} {len(blob) / 2**20:.1f} MB" for name, blob in built.items())
    print(f"- Artifacts: {sizes}")
    return sorted(str(u) for u in dataset.interactions["user_id"].unique())


def figures(pid: int) -> dict[str, float]:
    """RSS, PSS and the shared array files mapped, in MB."""
    rollup = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        rollup[key.rstrip(":")] = int(value) / 1024
    mapped = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].endswith(".npy"):
            mapped.add(Path(fields[5]))
    files = sum(path.stat().st_size for path in mapped if path.exists()) / 2**20
    return {"rss": rollup["Rss"], "pss": rollup["Pss"], "mapped": files}


def every_worker_serving(base: str, workers: int, timeout: float = 600.0) -> None:
    """Wait until the status lists ``workers`` workers, each serving the three models."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/ml/status", timeout=30) as response:
            members = json.loads(response.read()).get("workers") or []
        if len(members) == workers and all(
            None not in member["models"].values() for member in members
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers did not all serve within {timeout} s")


def exercise(base: str, users: list[str], requests: int) -> None:
    rng = random.Random(0)
    for i in range(requests):
        algorithm = ("hybrid", "collaborative", "content")[i % 3]
        user = rng.choice(users)
        url = f"{base}/api/frontend/recommendations?user_id={user}&algorithm={algorithm}"
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a dataset folder")
    source.add_argument("--size", type=parse_size, help="users:items:ratings, synthetic")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()

    print(f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- Machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"- Command: `.venv/bin/python -m bench.memory {' '.join(sys.argv[1:])}`")
    print(f"- Data: {options.data or options.size}")
    with tempfile.TemporaryDirectory(prefix="wisata-memory-") as scratch:
        folder = Path(scratch) / "models"
        users = publish(options.data, options.size, folder)
        print()
        print("| serving | process | RSS MB | PSS MB | models mapped MB |")
        print("|---|---|---|---|---|")
        for workers in (1, options.workers):
            port = free_port()
            env = {
                **os.environ,
                "WISATA_STORAGE": str(folder),
                "WISATA_PORT": str(port),
                "WISATA_WORKERS": str(workers),
                "WISATA_RELOAD_INTERVAL": "0",
                "WISATA_RESPONSE_CACHE": "0",
                "WISATA_LOG_LEVEL": "WARNING",
            }
            base = f"http://127.0.0.1:{port}"
            with process([sys.executable, "-m", "service"], env) as server:
                wait_for(f"{base}/readyz", timeout=600)
                if workers > 1:
                    every_worker_serving(base, workers)
                exercise(base, users, options.requests)
                pids = [server.pid, *serving_children(server.pid)]
                names = ["process"] if len(pids) == 1 else ["supervisor"]
                names += [f"worker {k}" for k in range(len(pids) - 1)]
                label = "1 process" if workers == 1 else f"WISATA_WORKERS={workers}"
                total = {"rss": 0.0, "pss": 0.0}
                for name, pid in zip(names, pids, strict=True):
                    found = figures(pid)
                    total["rss"] += found["rss"]
                    total["pss"] += found["pss"]
                    print(
                        f"| {label} | {name} | {found['rss']:.0f} | {found['pss']:.0f} | "
                        f"{found['mapped']:.0f} |"
                    )
                print(f"| {label} | **total** | {total['rss']:.0f} | {total['pss']:.0f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
