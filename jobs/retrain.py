"""``wisata-retrain``: train the three models, check them on a holdout, publish them.

One run: read what is published, load the dataset (``WISATA_DATA``), measure each model on a
seeded 20 % per-user holdout (:func:`service.ml.evaluation.holdout_metrics`, fitted on the other
80 %), refuse to publish when a model got clearly worse, then fit on all the data
(:func:`service.serving.building.build_artifacts`) and publish the three as one set through the
:class:`~service.serving.publisher.Publisher`, the holdout metrics in each artifact's metadata.
These are the service's own training steps. A running service picks the new artifacts up by its
hot reload.

Exit statuses: 0 published, 3 skipped (``--if-new-ratings``: not enough new interactions),
4 refused by the quality gate (nothing published), 1 error, 2 bad usage or configuration.
With ``--every`` or ``--cron`` the process stays up as the scheduler and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jobs.cli import (
    ExitCode,
    JobError,
    Progress,
    StopFlag,
    error,
    open_config_store,
    run_job,
    stop_on_signals,
)
from jobs.retrain_engine import build_on, evaluate_on, load_on, setup_problem, training_engine
from jobs.retrain_options import DEFAULT_MIN_NDCG_RATIO, Options, build_parser
from jobs.schedule import Cron, Schedule, run_forever
from service import artifacts
from service.artifacts import MetadataSummary
from service.config import Config
from service.db import Database
from service.db.bulk import count_since
from service.errors import DatasetError
from service.ml.datasets import Dataset
from service.ml.evaluation import NDCG, K
from service.serving.journal import survey
from service.serving.publisher import Publisher
from storage import ArtifactStore, ObjectInfo, StorageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_MIN_NDCG_RATIO",
    "NDCG",
    "K",
    "Options",
    "build_parser",
    "main",
    "quality_gate",
    "retrain_once",
]

logger = logging.getLogger(__name__)

# Steps of one run: published, dataset, 3 evaluations, fit, 3 publishes.
_STEPS = 9


def quality_gate(
    metrics: Mapping[str, Mapping[str, float]],
    published: Mapping[str, MetadataSummary | None],
    ratio: float,
) -> list[str]:
    """Say why each model may not be published (empty: all may).

    A model is refused when its holdout NDCG@10 is below ``ratio`` times the NDCG@10 its
    published artifact records. A model with nothing published, or whose artifact records no
    NDCG, is not compared. ``ratio`` 0 turns the gate off.
    """
    reasons = []
    for name, scores in metrics.items():
        summary = published.get(name)
        old = summary.metrics.get(NDCG) if summary is not None else None
        if ratio <= 0 or old is None:
            continue
        new = scores[NDCG]
        if new < ratio * old:
            reasons.append(
                f"{name}: holdout NDCG@{K} {new:.4f} is below {ratio:g} x the published "
                f"{old:.4f} (= {ratio * old:.4f})"
            )
    return reasons


def _new_ratings_reason(
    dataset: Dataset, published: Mapping[str, MetadataSummary | None], wanted: int
) -> str | None:
    """Why the run is skipped under ``--if-new-ratings``, or None to train."""
    recorded = [s.interactions if s is not None else None for s in published.values()]
    if any(count is None for count in recorded):
        return None  # a model is missing or does not say what it was trained on: train
    baseline = min(count for count in recorded if count is not None)
    new = dataset.n_interactions - baseline
    if new >= wanted:
        logger.info(
            "%d new interactions since the published artifacts (%d then, %d now): training",
            new,
            baseline,
            dataset.n_interactions,
        )
        return None
    return (
        f"the dataset has {dataset.n_interactions} interactions, {new} more than the "
        f"{baseline} the published artifacts were trained on; --if-new-ratings asks "
        f"for at least {wanted}"
    )


def _new_rows_reason(
    database: Database, published: Mapping[str, MetadataSummary | None], wanted: int
) -> str | None:
    """Why the run is skipped under ``--if-new-ratings`` on a database, or None to train."""
    marks = [
        summary.data_watermark if summary is not None else None for summary in published.values()
    ]
    if any(mark is None for mark in marks):
        return None  # a model is missing or was not trained from the database: train
    since = min(datetime.fromisoformat(mark) for mark in marks if mark is not None)
    try:
        new = count_since(database, since)
    except DatasetError as e:
        raise JobError(str(e)) from e
    if new >= wanted:
        logger.info("%d ratings since the published watermark %s: training", new, since.isoformat())
        return None
    return (
        f"{new} ratings arrived since the published models' watermark ({since.isoformat()}); "
        f"--if-new-ratings asks for at least {wanted}"
    )


async def _published(store: ArtifactStore) -> dict[str, MetadataSummary | None]:
    current = (await survey(store)).current
    return {
        name: None if info is None else artifacts.from_metadata(info.metadata)
        for name, info in current.items()
    }


async def retrain_once(config: Config, options: Options, stop: StopFlag) -> int:
    """Run the job once against the configured store; return its exit status.

    The outcome (published, skipped or refused, and why) is printed on stdout once the
    progress display has ended.

    Raises
    ------
    JobError
        If the dataset cannot be read, a publish failed, or a stop was asked for.
    StorageError
        If the store cannot be reached.
    """
    async with open_config_store(config) as store:
        with Progress(_STEPS, stop=stop, log=logger) as progress:
            code, lines = await _retrain(config, options, store, progress)
    for line in lines:
        print(line, flush=True)
    return code


async def _retrain(
    config: Config, options: Options, store: ArtifactStore, progress: Progress
) -> tuple[int, list[str]]:
    progress.step("reading the published artifacts")
    await store.ensure_ready()
    published = await _published(store)
    database = config.database
    if options.if_new_ratings is not None and database is not None:
        # Counted in the database, through the index on created_at: the table is not read.
        reason = await asyncio.to_thread(
            _new_rows_reason, database, published, options.if_new_ratings
        )
        if reason is not None:
            return ExitCode.SKIPPED, [f"skipped: {reason}"]
    engine = training_engine(config, options)
    spark = await asyncio.to_thread(engine.__enter__)  # a JVM starts: not on the event loop
    try:
        return await _train(config, options, store, progress, published, spark)
    finally:
        await asyncio.to_thread(engine.__exit__, None, None, None)


async def _train(
    config: Config,
    options: Options,
    store: ArtifactStore,
    progress: Progress,
    published: Mapping[str, MetadataSummary | None],
    spark: SparkSession | None,
) -> tuple[int, list[str]]:
    database = config.database
    progress.step(f"loading the dataset from {config.data}")
    dataset = await asyncio.to_thread(load_on, spark, config)
    logger.info(
        "dataset %s: %d items, %d users, %d interactions",
        dataset.source,
        dataset.n_items,
        dataset.n_users,
        dataset.n_interactions,
    )
    if options.if_new_ratings is not None and database is None:
        reason = _new_ratings_reason(dataset, published, options.if_new_ratings)
        if reason is not None:
            return ExitCode.SKIPPED, [f"skipped: {reason}"]
    metrics = await _evaluate(dataset, config, options, progress, spark)
    refusals = quality_gate(metrics, published, options.min_ndcg_ratio)
    if refusals:
        return ExitCode.REFUSED, [
            "refused by the quality gate, nothing was published: "
            + "; ".join(refusals)
            + ". Check the dataset (WISATA_DATA), or pass --min-ndcg-ratio 0 to publish anyway"
        ]
    progress.step("training the three models on all the data")
    built = await asyncio.to_thread(build_on, spark, dataset, config, metrics, options.als_rank)
    stored = await _publish(store, built.artifacts, progress)
    return ExitCode.OK, _report(built.artifacts, stored, metrics)


async def _evaluate(
    dataset: Dataset,
    config: Config,
    options: Options,
    progress: Progress,
    spark: SparkSession | None,
) -> dict[str, dict[str, float]]:
    def step(name: str) -> None:
        progress.step(f"evaluating {name} on the holdout")

    metrics = await asyncio.to_thread(
        evaluate_on,
        spark,
        dataset,
        seed=options.seed,
        hybrid_weight=config.hybrid_weight,
        before_each=step,
        als_rank=options.als_rank,
    )
    for name, scores in metrics.items():
        logger.info("%s: %s", name, _format_metrics(scores))
    return metrics


async def _publish(
    store: ArtifactStore, built: Mapping[str, bytes], progress: Progress
) -> dict[str, ObjectInfo]:
    """Publish through the service's own path: the three as one set, the hybrid last."""
    result = await Publisher(store).publish(built, lambda name: progress.step(f"publishing {name}"))
    if result.error is not None:
        raise JobError(_publish_failure(list(built), result.error))
    return result.stored


def _report(
    built: Mapping[str, bytes],
    stored: Mapping[str, ObjectInfo],
    metrics: Mapping[str, Mapping[str, float]],
) -> list[str]:
    lines = []
    for name, data in built.items():
        checksum = artifacts.read_header(data).payload_sha256
        version = stored[name].version_id or "-"
        lines.append(
            f"published {name}: NDCG@{K} {metrics[name][NDCG]:.4f}, "
            f"sha256 {checksum[:12]}, version {version}"
        )
    return lines


def _publish_failure(names: list[str], problem: str) -> str:
    return (
        f"publishing {', '.join(names)} failed: {problem}. The set was not published whole, so "
        "a running service keeps serving its current models; run wisata-retrain again once the "
        "store is reachable"
    )


def _format_metrics(scores: Mapping[str, float]) -> str:
    return ", ".join(f"{metric} {value:.4f}" for metric, value in scores.items())


async def _run(config: Config, args: argparse.Namespace) -> int:
    options = Options(
        if_new_ratings=args.if_new_ratings,
        min_ndcg_ratio=args.min_ndcg_ratio,
        seed=args.seed,
        engine=args.engine,
        spark_master=args.spark_master,
        spark_conf=tuple(args.spark_conf),
        als_rank=args.als_rank,
    )
    spark_only = options.spark_master or options.spark_conf or options.als_rank is not None
    if options.engine != "spark" and spark_only:
        error(
            "--spark-master, --spark-conf and --als-rank apply to --engine spark; "
            "add --engine spark"
        )
        return ExitCode.USAGE
    if options.engine == "spark":
        problem = setup_problem(config, options)
        if problem is not None:
            error(problem)
            return ExitCode.USAGE
    schedule: Schedule | None = args.every or args.cron
    if args.timezone is not None and not isinstance(schedule, Cron):
        error("--timezone only applies to --cron; add --cron '<expression>' or drop --timezone")
        return ExitCode.USAGE
    if isinstance(schedule, Cron) and args.timezone is not None:
        schedule = Cron(schedule.expression, args.timezone)
    stop = StopFlag()
    wake = asyncio.Event()
    with stop_on_signals(stop, wake):
        if schedule is None:
            return await retrain_once(config, options, stop)

        async def scheduled_run() -> int:
            # A failed run is logged and the schedule goes on: the next one may succeed.
            try:
                return await retrain_once(config, options, stop)
            except (JobError, StorageError) as e:
                logger.error("retrain failed: %s", e)
            except Exception:
                logger.exception("retrain failed unexpectedly; please report this with the log")
            return ExitCode.ERROR

        await run_forever(schedule, scheduled_run, wake, at_start=args.at_start)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wisata-retrain``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    return run_job(build_parser(), list(argv) if argv is not None else None, _run)


if __name__ == "__main__":
    sys.exit(main())
