"""Training time and artifact size of the three models, through the service's own training path.

Usage: python -m bench.training DATASET_DIR [--hybrid-weight auto|0.6]

Prints one markdown row per model: fit seconds (from ``build_artifacts``), artifact bytes, and
the total; the figures go to docs/PERFORMANCE.md with the date and command.
"""

from __future__ import annotations

import argparse
import os
import time

from service.ml.datasets import load_dataset
from service.serving.trainer import build_artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--hybrid-weight", default="auto")
    args = parser.parse_args()
    weight: float | str = (
        args.hybrid_weight if args.hybrid_weight == "auto" else float(args.hybrid_weight)
    )
    start = time.perf_counter()
    dataset = load_dataset(args.dataset)
    read = time.perf_counter() - start
    start = time.perf_counter()
    result = build_artifacts(dataset, hybrid_weight=weight)
    total = time.perf_counter() - start
    print(
        f"dataset {args.dataset}: {dataset.n_users} users, {dataset.n_items} items, "
        f"{dataset.n_interactions} interactions (read in {read:.1f} s); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("| model | fit s | artifact MB |")
    print("| --- | --- | --- |")
    for name, data in result.artifacts.items():
        print(f"| {name} | {result.seconds[name]:.1f} | {len(data) / 1e6:.2f} |")
    size = sum(len(d) for d in result.artifacts.values()) / 1e6
    print(f"| all three (fit + serialise) | {total:.1f} | {size:.2f} |")


if __name__ == "__main__":
    main()
