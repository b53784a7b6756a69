"""The site database at scale: importing ratings, and the training read, beside reading CSV.

Usage: python -m bench.database [--size 100k:20k:5M] [--seed 0]

It writes a seeded synthetic dataset (``bench.synthetic``) as a wisata-layout CSV folder, starts
a PostgreSQL server of Debian's package in a temporary folder (as the tests do), and runs each
step in its own process, so that its peak RSS is its own:

- ``csv read``: ``load_dataset(folder)``, what training from a folder reads;
- ``postgresql import``: ``wisata-db import folder`` into a new database (COPY, one upsert);
- ``postgresql read``: ``load_dataset(url)``, the training read from the database (COPY out);
- the same import and read on a SQLite file.

Prints a markdown table: seconds and peak RSS per step, and the database read against CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.synthetic import SyntheticSpec, generate, write_wisata

ROOT = Path(__file__).resolve().parents[1]
_STEP = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
kind, location = sys.argv[1], sys.argv[2]
if kind == "read":
    from service.ml.datasets import load_dataset
    dataset = load_dataset(location)
    facts = {"interactions": dataset.n_interactions, "users": dataset.n_users}
else:
    from service.db import Database
    from service.serving.imports import import_folder, init
    database = Database.parse(location)
    init(database)
    report = import_folder(database, Path(sys.argv[3]))
    facts = {"ratings": report["ratings"], "rejected": report["rejected"]}
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child started by this large
# parent would report the parent's peak; exec gives the child a new VmHWM.
status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
peak = int(status.split()[0]) * 1024
print(json.dumps({"seconds": seconds, "peak": peak, **facts}))
"""


def parse_size(text: str) -> SyntheticSpec:
    def number(part: str) -> int:
        scale = {"k": 1_000, "M": 1_000_000}.get(part[-1], 1)
        return int(float(part[:-1] if part[-1] in "kM" else part) * scale)

    users, items, interactions = (number(p) for p in text.split(":"))
    return SyntheticSpec(n_users=users, n_items=items, n_interactions=interactions)


def step(*argv: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _STEP, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WISATA_LOG_LEVEL": "WARNING"},
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.database", description=__doc__)
    parser.add_argument("--size", default="100k:20k:5M", help="users:items:interactions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.postgres import PostgresServer

    spec = parse_size(args.size)
    spec = SyntheticSpec(spec.n_users, spec.n_items, spec.n_interactions, seed=args.seed)
    print(f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.platform()}")
    print(f"- Load average at the start: {os.getloadavg()[0]:.2f}")
    print(f"- Command: python -m bench.database --size {args.size} --seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="wisata-bench-db-") as scratch:
        folder = Path(scratch) / "data"
        started = time.perf_counter()
        write_wisata(generate(spec), folder)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"- Dataset: {args.size}, {size:.0f} MB of CSV, written in "
              f"{time.perf_counter() - started:.0f} s\n")  # fmt: skip
        rows = [("csv read", step("read", str(folder)))]
        with PostgresServer() as server:
            url = server.create_database()
            rows.append(("postgresql import", step("import", url, str(folder))))
            rows.append(("postgresql read", step("read", url)))
        sqlite = f"sqlite:///{Path(scratch) / 'wisata.db'}"
        rows.append(("sqlite import", step("import", sqlite, str(folder))))
        rows.append(("sqlite read", step("read", sqlite)))
    csv_seconds = rows[0][1]["seconds"]
    print("| step | seconds | peak RSS MB | against the CSV read | rows |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in rows:
        ratio = f"{result['seconds'] / csv_seconds:.2f}x" if name.endswith("read") else "-"
        count = result.get("interactions", result.get("ratings", 0))
        print(f"| {name} | {result['seconds']:.1f} | {result['peak'] / 2**20:.0f} | {ratio} "
              f"| {int(count)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
