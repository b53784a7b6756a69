"""Choose the collaborative model's input weighting and size by measurement.

Tunes on a validation split (seed 1) carved out of the evaluation's training part (seed 0), so the
chosen settings never see the evaluation's held-out ratings.

Usage: python bench/tune_collaborative.py DATASET_DIR [--components 16 32 64]
"""

from __future__ import annotations

import argparse
import itertools
import time

from service.ml.datasets import load_dataset
from service.ml.evaluation import evaluate_model
from service.ml.recommenders import Collaborative, ContentBased
from service.ml.splits import holdout_split, relevant_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--components", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--weightings", nargs="+", default=["explicit", "binary", "confidence"])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.001, 0.01])
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    train, _ = holdout_split(dataset.interactions, 0.2, seed=0)
    inner, validation = holdout_split(train, 0.2, seed=1)
    part = dataset.with_interactions(inner)
    relevant = relevant_items(validation)
    content = ContentBased().fit(part)
    print("| weighting | components | alpha_W | NDCG@10 | precision@10 | coverage | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    grid = itertools.product(args.weightings, args.components, args.alphas)
    for weighting, components, alpha in grid:
        start = time.perf_counter()
        model = Collaborative(n_components=components, weighting=weighting, alpha_W=alpha)
        model.fit(part)
        seconds = time.perf_counter() - start
        scores = evaluate_model(model, relevant, content)
        print(
            f"| {weighting} | {components} | {alpha:g} | {scores.ndcg:.3f} "
            f"| {scores.precision:.3f} | {scores.coverage:.3f} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
