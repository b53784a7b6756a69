"""Choose the Spark engine's ALS hyperparameters on MovieLens, against today's NMF.

Usage: python -m bench.tune_als DATASET_DIR [--master local[2]] [--seed 0]
       [--grid RANK:REG:ALPHA[:ITERATIONS] ...] [--explicit RANK:REG ...]

The project's own protocol (:class:`service.ml.splits.Holdout`, seeded 20 % per user,
:func:`service.ml.evaluation.evaluate_model`, NDCG@10 over every held-out user): the sklearn
``Collaborative`` first, then one :class:`service.ml.spark_engine.AlsCollaborative` per grid
point on a local Spark session, each scored for known users and for visitors folded in (each
held-out user's training ratings sent as a visitor's, as ``POST /api/recommendations`` does).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from service.ml import spark_engine
from service.ml.datasets import load_dataset
from service.ml.evaluation import evaluate_model
from service.ml.ranking import ndcg_at_k
from service.ml.recommenders import Collaborative, ContentBased, Recommender
from service.ml.splits import Holdout

DEFAULT_GRID = ("32:0.1:0.1", "64:0.05:0.05", "64:0.02:0.05", "64:0.05:0.1", "64:0.02:0.1")


def fold_in_ndcg(model: Recommender, relevant: dict[str, set[str]], k: int = 10) -> float:
    """Mean NDCG@k when each held-out user is answered as a visitor from their ratings."""
    scores = []
    ids = np.asarray(model.catalogue_.ids)
    for user, truth in relevant.items():
        row = model.user_position(user)
        if row is None:
            continue
        items, ratings = model.user_ratings(row)
        given = [(str(ids[i]), float(r)) for i, r in zip(items, ratings, strict=True)]
        ranked = [item for item, _ in model.recommend_for_ratings(given, k).items]
        scores.append(ndcg_at_k(ranked, truth, k))
    return float(np.mean(scores)) if scores else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", nargs="*", default=list(DEFAULT_GRID))
    parser.add_argument("--explicit", nargs="*", default=["32:0.1"])
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}, master {args.master}",
        flush=True,
    )
    dataset = load_dataset(args.dataset)
    holdout = Holdout.of(dataset, args.seed)
    content = ContentBased().fit(holdout.part)
    print("| model | NDCG@10 known users | NDCG@10 fold-in | fit s |", flush=True)
    print("| --- | --- | --- | --- |", flush=True)

    def report(label: str, model: Recommender, seconds: float) -> None:
        known = evaluate_model(model, holdout.relevant, content, 10).ndcg
        folded = fold_in_ndcg(model, holdout.relevant)
        print(f"| {label} | {known:.4f} | {folded:.4f} | {seconds:.1f} |", flush=True)

    start = time.perf_counter()
    nmf = Collaborative().fit(holdout.part)
    report("sklearn NMF (the shipped Collaborative)", nmf, time.perf_counter() - start)
    settings = spark_engine.SparkSettings(args.master)
    with spark_engine.spark_session(settings):
        points = [(text, True) for text in args.grid] + [(text, False) for text in args.explicit]
        for text, implicit in points:
            rank, reg, *rest = text.split(":")
            alpha = float(rest[0]) if rest else 0.0
            iterations = int(rest[1]) if len(rest) > 1 else 10
            als = spark_engine.AlsCollaborative(
                rank=int(rank),
                reg_param=float(reg),
                alpha=alpha,
                implicit_prefs=implicit,
                max_iter=iterations,
            )
            start = time.perf_counter()
            fitted = als.fit(holdout.part).as_collaborative()
            kind = f"implicit, alpha {alpha:g}" if implicit else "explicit"
            kind += f", {iterations} iterations"
            label = f"Spark ALS rank {rank}, regParam {reg}, {kind}"
            report(label, fitted, time.perf_counter() - start)


if __name__ == "__main__":
    main()
