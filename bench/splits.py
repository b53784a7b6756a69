"""Time of one per-user holdout split (``service.ml.splits.holdout_split``) on a synthetic frame.

Usage: python -m bench.splits [--interactions 5000000] [--users 100000] [--items 20000]
[--rounds 3]

The frame has string user ids ``u<n>`` (what the dataset readers produce), uniform random users,
items and ratings; the split's cost depends on the number of rows and users, not on who rated
what. Prints the median and range of ``--rounds`` splits with the date and the command.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from service.ml.splits import holdout_split


def frame(interactions: int, users: int, items: int, seed: int = 0) -> pd.DataFrame:
    """A seeded interactions frame shaped like the dataset readers' output."""
    rng = np.random.default_rng(seed)
    names = np.array([f"u{n}" for n in range(users)], dtype=object)
    return pd.DataFrame(
        {
            "user_id": names[rng.integers(0, users, interactions)],
            "item_id": rng.integers(0, items, interactions).astype(str),
            "rating": rng.integers(1, 6, interactions).astype(np.float64),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = frame(args.interactions, args.users, args.items)
    seconds = []
    for seed in range(args.rounds):
        start = time.perf_counter()
        holdout_split(data, seed=seed)
        seconds.append(time.perf_counter() - start)
    print(f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"- Command: `{' '.join(['python -m bench.splits', *sys.argv[1:]])}`")
    print(
        f"{args.interactions:,} interactions, {args.users:,} users: holdout split "
        f"{statistics.median(seconds):.2f} s (median of {args.rounds}; "
        f"{min(seconds):.2f}-{max(seconds):.2f} s)"
    )


if __name__ == "__main__":
    main()
