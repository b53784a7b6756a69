"""The fit-time ranking pass alone: its seconds, and whether its tables changed.

Usage: python -m bench.ranking [--size 20k:5k:1M] [--seed 0] [--save FILE | --compare FILE]

On a seeded synthetic dataset (``bench/synthetic.py``), fits the content and collaborative models
with ``rank=False``, as the model set does, then a hybrid with a fixed content weight of 0.5 (no
weight search), whose fit is the one ranking pass of the three models: every user's shortlists
and every item's neighbours. Prints that fit's seconds and the process's peak RSS.

``--save`` pickles the twelve tables (three models x shortlists, their scores, neighbours, their
scores) and the hybrid's spans; ``--compare`` checks another tree's tables against them, array by
array, to the last bit. To compare two commits, run the script of one tree against the other's
code: ``PYTHONPATH=<other tree> python <this tree>/bench/ranking.py --compare FILE``.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np

from bench.scale import parse_size
from bench.synthetic import SyntheticSpec, generate
from service.ml.recommenders import Collaborative, ContentBased, Hybrid

TABLES = ("shortlist_", "shortlist_scores_", "neighbours_", "neighbour_scores_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("20k:5k:1M"))
    parser.add_argument("--seed", type=int, default=0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--save", type=Path, help="pickle the tables here")
    where.add_argument("--compare", type=Path, help="compare the tables with this pickle")
    options = parser.parse_args()

    dataset = generate(SyntheticSpec(*options.size, seed=options.seed))
    content = ContentBased().fit(dataset, rank=False)
    collaborative = Collaborative().fit(dataset, rank=False)
    hybrid = Hybrid(content=content, collaborative=collaborative, content_weight=0.5)
    start = time.perf_counter()
    hybrid.fit(dataset)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"size {options.size}: ranking pass {seconds:.1f} s, peak RSS {peak:.2f} GB")

    tables = {
        f"{model.name}.{table}": getattr(model, table)
        for model in (content, collaborative, hybrid)
        for table in TABLES
    }
    tables["hybrid.spans_"] = hybrid.spans_
    if options.save:
        options.save.write_bytes(pickle.dumps(tables))
    if options.compare:
        expected = pickle.loads(options.compare.read_bytes())
        differ = [name for name in expected if not np.array_equal(expected[name], tables[name])]
        print("tables:", f"differ: {', '.join(differ)}" if differ else "all equal, bit for bit")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
