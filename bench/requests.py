"""In-process cost of one request: recommend, recommend_for_ratings and similar_items per model.

Usage: python -m bench.requests [DATASET_DIR ...] [--calls 2000] [--seed 0] [--hybrid-weight 0.6]

With no dataset, it measures the demo catalogue, then MovieLens small when
``../shared/data/movielens-latest-small`` exists. Each dataset is trained and serialised by the
service's own ``build_artifacts``, then the models are loaded back from their artifacts as the
registry loads them (so what is built on unpickling or on first use is part of the picture).

Every model is called in process (no HTTP, no event loop), one call at a time:

- ``recommend``: known users, drawn with replacement, ``n=10``, seen items excluded;
- ``recommend_for_ratings``: seeded visitors with 3 to 20 random ratings each, ``n=10``;
- ``similar_items``: items drawn with replacement, ``n=10``.

A warm-up of 50 calls of each kind comes first, so lazily built state is not timed. Prints one
markdown row per dataset, model and kind: mean and p99 in microseconds per call.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service import artifacts
from service.ml.datasets import load_dataset
from service.ml.recommenders import Hybrid, Recommender
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.trainer import build_artifacts

MOVIELENS_SMALL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MOVIELENS_SMALL = MOVIELENS_SMALL / "movielens-latest-small"
WARM_UP = 50


def load_models(path: str | Path, hybrid_weight: float | str) -> tuple[str, dict[str, Recommender]]:
    """Train on ``path`` and load the three models back from their artifacts."""
    dataset = load_dataset(path)
    built = build_artifacts(dataset, hybrid_weight=hybrid_weight)
    models: dict[str, Recommender] = {}
    for name, data in built.artifacts.items():
        model, _ = artifacts.load(data)
        assert isinstance(model, Recommender)
        models[name] = model
    hybrid = models.get(Hybrid.name)
    if isinstance(hybrid, Hybrid):
        hybrid.attach(models["content_based"], models["collaborative"])
    label = (
        f"{Path(path).name}: {dataset.n_users} users, {dataset.n_items} items, "
        f"{dataset.n_interactions} interactions"
    )
    return label, models


def workload(model: Recommender, calls: int, seed: int) -> dict[str, list[Any]]:
    """The seeded arguments of each kind of call."""
    rng = np.random.default_rng(seed)
    users = np.asarray(model.user_ids_, dtype=object)
    item_ids = np.asarray(model.catalogue_.ids, dtype=object)
    n_items = len(item_ids)
    visitors = [
        [
            (str(item_ids[i]), float(rng.integers(1, 6)))
            for i in rng.choice(n_items, min(n_items, int(rng.integers(3, 21))), replace=False)
        ]
        for _ in range(calls)
    ]
    return {
        "recommend": [str(u) for u in rng.choice(users, calls, replace=True)],
        "recommend_for_ratings": visitors,
        "similar_items": [str(i) for i in rng.choice(item_ids, calls, replace=True)],
    }


def measure(model: Recommender, calls: int, seed: int) -> dict[str, tuple[float, float]]:
    """Mean and p99 microseconds per call of each kind."""
    kinds: dict[str, Callable[[Any], object]] = {
        "recommend": lambda user: model.recommend(user, n=10),
        "recommend_for_ratings": lambda ratings: model.recommend_for_ratings(ratings, n=10),
        "similar_items": lambda item: model.similar_items(item, n=10),
    }
    arguments = workload(model, calls, seed)
    figures = {}
    for kind, call in kinds.items():
        for argument in arguments[kind][:WARM_UP]:
            call(argument)
        times = _timed(call, arguments[kind])
        figures[kind] = (float(np.mean(times)), float(np.percentile(times, 99)))
    return figures


def _timed(call: Callable[[Any], object], arguments: Sequence[Any]) -> list[float]:
    times = []
    for argument in arguments:
        start = time.perf_counter_ns()
        call(argument)
        times.append((time.perf_counter_ns() - start) / 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", help="dataset folders (default: demo, MovieLens)")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per model and kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hybrid-weight", default="0.6", help="a float, or auto")
    args = parser.parse_args()
    weight: float | str = (
        args.hybrid_weight if args.hybrid_weight == "auto" else float(args.hybrid_weight)
    )
    datasets: list[str | Path] = list(args.datasets)
    if not datasets:
        datasets = [SAMPLE_DATA_DIR]
        if MOVIELENS_SMALL.is_dir():
            datasets.append(MOVIELENS_SMALL.resolve())
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"command: python -m bench.requests {' '.join(sys.argv[1:])}".rstrip())
    rows = []
    for path in datasets:
        label, models = load_models(path, weight)
        print(f"- {label}")
        for name, model in models.items():
            for kind, (mean, p99) in measure(model, args.calls, args.seed).items():
                rows.append(f"| {Path(path).name} | {name} | {kind} | {mean:.0f} | {p99:.0f} |")
    print()
    print("| dataset | model | call | mean µs | p99 µs |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
