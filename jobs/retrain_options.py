"""The command line of ``wisata-retrain``: its flags, their checks, what a run is asked to do."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

from jobs.schedule import Schedule, check_zone, parse_cron, parse_every
from service.ml.evaluation import K

__all__ = ["DEFAULT_MIN_NDCG_RATIO", "ENGINES", "Options", "build_parser"]

DEFAULT_MIN_NDCG_RATIO = 0.95
"""Below this share of the published model's holdout NDCG@10, a new model is not published."""
ENGINES = ("sklearn", "spark")
"""What fits the collaborative model: scikit-learn NMF here, or MLlib ALS on Spark."""


@dataclass(frozen=True)
class Options:
    """What one run is asked to do."""

    if_new_ratings: int | None
    min_ndcg_ratio: float
    seed: int
    engine: str = "sklearn"
    spark_master: str | None = None
    """--spark-master, else WISATA_SPARK_MASTER, else the engine's default (``local[*]``)."""
    spark_conf: tuple[tuple[str, str], ...] = field(default=())
    als_rank: int | None = None
    """--als-rank, else the Spark engine's default rank."""


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ratio; use a number >= 0, e.g. 0.95 (0 turns the gate off)"
        )
    return value


def _rank(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rank; use a whole number 1-1000, e.g. 64"
        )
    return int(text)


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0, e.g. 100")
    return int(text)


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not key.strip().startswith("spark."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Spark setting; write KEY=VALUE with a spark.* key, e.g. "
            "spark.executor.memory=4g"
        )
    return key.strip(), value.strip()


def _master(text: str) -> str:
    # Imported here: the engine's module is only needed when a Spark option is given.
    from service.ml.spark_engine import SparkSetupError, check_master

    try:
        return check_master(text)
    except SparkSetupError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _every(text: str) -> Schedule:
    try:
        return parse_every(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cron(text: str) -> Schedule:
    try:
        return parse_cron(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _zone(text: str) -> str:
    try:
        return check_zone(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``wisata-retrain`` (its flags and their checks)."""
    parser = argparse.ArgumentParser(
        prog="wisata-retrain",
        description="Train the three models on WISATA_DATA, evaluate them on a holdout and "
        "publish them to WISATA_STORAGE with their metrics. Settings come from the WISATA_* "
        "variables, as for the service.",
        epilog="Exit status: 0 published, 3 skipped (not enough new ratings), 4 refused by the "
        "quality gate, 1 error, 2 bad usage or configuration.",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--every",
        type=_every,
        metavar="INTERVAL",
        help="stay up and run at this interval, e.g. 7d, 12h, 30m (the first run after one "
        "interval, unless --at-start)",
    )
    when.add_argument(
        "--cron",
        type=_cron,
        metavar="EXPRESSION",
        help="stay up and run at the times of this cron expression, in UTC (or --timezone), "
        "e.g. '0 3 * * 0' for Sundays at 03:00",
    )
    parser.add_argument(
        "--timezone",
        type=_zone,
        metavar="ZONE",
        help="with --cron: read the expression on this IANA time zone's clock, e.g. "
        "Asia/Jakarta (default UTC)",
    )
    parser.add_argument(
        "--at-start",
        action="store_true",
        help="with --every or --cron: also run once right away",
    )
    parser.add_argument(
        "--if-new-ratings",
        type=_count,
        metavar="N",
        help="train only if the dataset has at least N more interactions than the published "
        "artifacts were trained on (always train when a model is not published)",
    )
    parser.add_argument(
        "--min-ndcg-ratio",
        type=_ratio,
        default=DEFAULT_MIN_NDCG_RATIO,
        metavar="R",
        help=f"refuse to publish when a model's holdout NDCG@{K} is below R x the published "
        f"model's (default {DEFAULT_MIN_NDCG_RATIO}; 0 turns the check off)",
    )
    parser.add_argument(
        "--seed", type=_count, default=0, help="seed of the holdout split (default 0)"
    )
    spark = parser.add_argument_group("training engine")
    spark.add_argument(
        "--engine",
        choices=ENGINES,
        default="sklearn",
        help="what fits the collaborative model: scikit-learn NMF on this machine (default), "
        "or MLlib ALS on Apache Spark (needs the spark extra and Java); the artifacts are the "
        "same either way",
    )
    spark.add_argument(
        "--spark-master",
        type=_master,
        metavar="URL",
        help="with --engine spark: where Spark runs, e.g. spark://spark-master:7077 or "
        "local[4] (default WISATA_SPARK_MASTER, else local[*])",
    )
    spark.add_argument(
        "--spark-conf",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --engine spark: a Spark setting, e.g. spark.executor.memory=4g (repeatable)",
    )
    spark.add_argument(
        "--als-rank",
        type=_rank,
        metavar="N",
        help="with --engine spark: ALS's number of factors (default 200, the rank whose "
        "MovieLens NDCG@10 is within 5 %% of NMF's; a lower rank trains faster at scale)",
    )
    return parser
