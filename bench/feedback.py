"""The feedback API under load: ratings written through HTTP, and the answers that count them.

Usage: python -m bench.feedback [--duration 8] [--connections 32] [--rounds 2]

For each database (PostgreSQL of Debian's package, started in a temporary folder as the tests
do; a SQLite file), it runs what a deployment runs: ``wisata-db init --seed`` with the demo data,
``wisata-retrain`` into a local artifact folder, then ``wisata-serve`` on the database with a
feedback token and the response cache off. The load comes from this process
(:func:`bench.http.load`: ``--connections`` requests in flight):

1. ``POST /api/ratings`` with one rating per request, then with 100 per request: requests and
   ratings per second, p50 and p99 (every rating a new row or a re-rating of one of 5,000 new
   visitors, on the demo catalogue's items);
2. ``GET /api/frontend/recommendations`` (hybrid) for those visitors, now answered from their
   new ratings (the overlay and the fold-in), against the users the models were trained with.

Prints one markdown table per database.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http import Load, free_port, load, process, table, wait_for
from service.sample_data import SAMPLE_DATA_DIR

TOKEN = "bench-feedback-token"
VISITORS = 5_000
TRAINED = [f"u{i:03d}" for i in range(1, 301)]


def item_ids() -> list[str]:
    with (SAMPLE_DATA_DIR / "items.csv").open(newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle)]


def rating(i: int, items: list[str]) -> dict[str, Any]:
    """The ``i``-th rating of the load: a visitor, an item, 1 to 5 stars."""
    return {
        "user_id": f"v{i % VISITORS}",
        "item_id": items[(i * 7) % len(items)],
        "rating": i % 5 + 1,
    }


@contextmanager
def databases(folder: Path) -> Iterator[list[tuple[str, str]]]:
    """(label, URL) of each database to measure; PostgreSQL only where its package is."""
    from tests.postgres import PostgresServer, postgres_binaries

    found = [("SQLite file", f"sqlite:///{folder / 'wisata.db'}")]
    if postgres_binaries() is None:
        print("- PostgreSQL skipped: bash tests/install_postgres.sh installs it")
        yield found
        return
    with PostgresServer() as server:
        yield [("PostgreSQL", server.create_database()), *found]


def run_job(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", *args], env=env, check=True, stdout=subprocess.DEVNULL)


async def measure(label: str, url: str, folder: Path, args: argparse.Namespace) -> list[list[str]]:
    env = {
        **os.environ,
        "WISATA_DATA": url,
        "WISATA_STORAGE": str(folder / label.replace(" ", "-") / "models"),
        "WISATA_LOG_LEVEL": "WARNING",
    }
    run_job(["jobs.db", "init", "--seed", str(SAMPLE_DATA_DIR)], env)
    run_job(["jobs.retrain", "--min-ndcg-ratio", "0"], env)
    port = free_port()
    serve = {
        **env,
        "WISATA_PORT": str(port),
        "WISATA_FEEDBACK_TOKEN": TOKEN,
        "WISATA_RESPONSE_CACHE": "0",
        "WISATA_RELOAD_INTERVAL": "30",
    }
    base = f"http://127.0.0.1:{port}"
    items = item_ids()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    single = Load(f"{label}: 1 rating per request")
    batch = Load(f"{label}: 100 ratings per request")
    visitors = Load(f"{label}: hybrid for visitors with new ratings")
    trained = Load(f"{label}: hybrid for trained users")
    n, d = args.connections, args.duration

    def recs(users: list[str]) -> Callable[[int], str]:
        return lambda i: f"{base}/api/frontend/recommendations?user_id={users[i % len(users)]}"

    with process([sys.executable, "-m", "service"], serve):
        wait_for(f"{base}/readyz")
        for _ in range(args.rounds):
            await load(
                single,
                lambda i: f"{base}/api/ratings",
                n,
                d,
                lambda i: {"ratings": [rating(i, items)]},
                auth,
            )
            await load(
                batch,
                lambda i: f"{base}/api/ratings",
                n,
                d,
                lambda i: {"ratings": [rating(i * 100 + k, items) for k in range(100)]},
                auth,
            )
            await load(visitors, recs([f"v{i}" for i in range(VISITORS)]), n, d)
            await load(trained, recs(TRAINED), n, d)
    rows = []
    for target, per_request in ((single, 1), (batch, 100), (visitors, 0), (trained, 0)):
        ratings = f"{target.rate * per_request:.0f}" if per_request else "-"
        rows.append(
            [
                target.label,
                f"{target.rate:.0f}",
                ratings,
                f"{target.quantile(0.5) * 1000:.1f}",
                f"{target.quantile(0.99) * 1000:.1f}",
                str(len(target.latencies)),
                str(target.errors),
            ]
        )
    return rows


async def run(args: argparse.Namespace) -> None:
    from tests.s3server import fake_aws_environment

    os.environ.update(fake_aws_environment())
    load_average = os.getloadavg()[0]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as folder, databases(Path(folder)) as found:
        for label, url in found:
            rows += await measure(label, url, Path(folder), args)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"- Date: {when}; load average {load_average:.1f} when it started")
    print(f"- Machine: {platform.machine()}, {os.cpu_count()} cores")
    print(f"- Command: `.venv/bin/python -m bench.feedback {' '.join(sys.argv[1:])}`".rstrip())
    print()
    header = ["target", "req/s", "ratings/s", "p50 ms", "p99 ms", "requests", "errors"]
    print(table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=2, help="load runs per target")
    parser.add_argument("--connections", type=int, default=32, help="requests in flight")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
