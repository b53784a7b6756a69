"""``wisata-retrain``: train the three models, check them on a holdout, publish them.

One run: read what is published, load the dataset (``WISATA_DATA``), evaluate each model on a
seeded 20 % per-user holdout (fitted on the other 80 %), refuse to publish when a model got
clearly worse, then fit on all the data with :func:`service.serving.trainer.build_artifacts` (the
service's own training path) and publish through :meth:`service.serving.registry.Registry.install`
(verified, content and collaborative first, the hybrid last), the holdout metrics in each
artifact's metadata. A running service picks the new artifacts up by its hot reload.

Exit statuses: 0 published, 3 skipped (``--if-new-ratings``: not enough new interactions),
4 refused by the quality gate (nothing published), 1 error, 2 bad usage or configuration.
With ``--every`` or ``--cron`` the process stays up as the scheduler and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobs.cli import (
    ExitCode,
    JobError,
    Progress,
    StopFlag,
    error,
    open_config_store,
    run_job,
    stop_on_signals,
    storage_failure,
)
from jobs.schedule import Cron, Schedule, check_zone, parse_cron, parse_every, run_forever
from service import artifacts
from service.artifacts import MetadataSummary
from service.config import Config
from service.ml.datasets import Dataset, DatasetError, load_dataset
from service.ml.evaluation import evaluate_model
from service.ml.recommenders import MODEL_NAMES, Collaborative, ContentBased, Hybrid, Recommender
from service.ml.splits import holdout_split, relevant_items
from service.serving.registry import Registry, artifact_key
from service.serving.trainer import build_artifacts
from storage import ArtifactStore, NotFound, StorageError

__all__ = [
    "HOLDOUT_FRACTION",
    "NDCG",
    "Holdout",
    "K",
    "Options",
    "build_parser",
    "main",
    "quality_gate",
    "retrain_once",
]

logger = logging.getLogger(__name__)

K = 10
"""Length of the evaluated recommendation lists."""
HOLDOUT_FRACTION = 0.2
"""Share of each user's interactions held out to evaluate on."""
NDCG = f"ndcg_at_{K}"
"""The metric the quality gate compares, as named in the artifacts' metadata.

Metric names use only characters S3 metadata keys keep as they are, so the MinIO console shows
``metric-ndcg_at_10`` rather than an escaped name.
"""
DEFAULT_MIN_NDCG_RATIO = 0.95
# Steps of one run: published, dataset, 3 evaluations, fit, 3 publishes.
_STEPS = 9


@dataclass(frozen=True)
class Options:
    """What one run is asked to do."""

    if_new_ratings: int | None
    min_ndcg_ratio: float
    seed: int


class Holdout:
    """One seeded per-user holdout of a dataset, and the models fitted on its training part.

    Parameters
    ----------
    dataset : Dataset
        All the data.
    seed : int
        Seed of the split: the same data and seed always give the same split.
    hybrid_weight : float or "auto"
        The hybrid's content weight, as the service trains it.
    """

    def __init__(self, dataset: Dataset, *, seed: int, hybrid_weight: float | str) -> None:
        train, test = holdout_split(dataset.interactions, HOLDOUT_FRACTION, seed)
        self.part = dataset.with_interactions(train)
        self.relevant = relevant_items(test)
        self.hybrid_weight = hybrid_weight
        self.fitted: dict[str, Recommender] = {}

    def score(self, name: str) -> dict[str, float]:
        """Fit model ``name`` on the training part and return its metrics on the held-out part.

        The content model must be scored first: it is the hybrid's sub-model and gives the item
        vectors that diversity is measured with.
        """
        model = self._fit(name)
        content = self.fitted[ContentBased.name]
        assert isinstance(content, ContentBased)
        scores = evaluate_model(model, self.relevant, content, K)
        if scores.users == 0:
            logger.warning(
                "%s: no held-out user has a rating >= 4, so its metrics are zeros; "
                "the dataset is too small to judge the model",
                name,
            )
        return {
            NDCG: scores.ndcg,
            f"precision_at_{K}": scores.precision,
            f"recall_at_{K}": scores.recall,
            "coverage": scores.coverage,
            "diversity": scores.diversity,
        }

    def _fit(self, name: str) -> Recommender:
        model: Recommender
        if name == Hybrid.name:
            content, collaborative = (
                self.fitted[ContentBased.name],
                self.fitted[Collaborative.name],
            )
            assert isinstance(content, ContentBased)
            assert isinstance(collaborative, Collaborative)
            model = Hybrid(
                content=content,
                collaborative=collaborative,
                content_weight=self.hybrid_weight,  # type: ignore[arg-type]
            )
        else:
            model = ContentBased() if name == ContentBased.name else Collaborative()
        self.fitted[name] = model.fit(self.part)
        return model


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


async def _published(store: ArtifactStore) -> dict[str, MetadataSummary | None]:
    found: dict[str, MetadataSummary | None] = {}
    for name in MODEL_NAMES:
        try:
            info = await store.head(artifact_key(name))
        except NotFound:
            found[name] = None
        else:
            found[name] = artifacts.from_metadata(info.metadata)
    return found


def _load(config: Config) -> Dataset:
    try:
        return load_dataset(config.data_dir)
    except DatasetError as e:
        raise JobError(f"cannot read the dataset (WISATA_DATA={config.data_dir}): {e}") from e


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
    progress.step(f"loading the dataset from {config.data_dir}")
    dataset = await asyncio.to_thread(_load, config)
    logger.info(
        "dataset %s: %d items, %d users, %d interactions",
        dataset.source,
        dataset.n_items,
        dataset.n_users,
        dataset.n_interactions,
    )
    if options.if_new_ratings is not None:
        reason = _new_ratings_reason(dataset, published, options.if_new_ratings)
        if reason is not None:
            return ExitCode.SKIPPED, [f"skipped: {reason}"]
    metrics = await _evaluate(dataset, config, options, progress)
    refusals = quality_gate(metrics, published, options.min_ndcg_ratio)
    if refusals:
        return ExitCode.REFUSED, [
            "refused by the quality gate, nothing was published: "
            + "; ".join(refusals)
            + ". Check the dataset (WISATA_DATA), or pass --min-ndcg-ratio 0 to publish anyway"
        ]
    progress.step("training the three models on all the data")
    built = await asyncio.to_thread(
        build_artifacts,
        dataset,
        MODEL_NAMES,
        key=config.artifact_key,
        hybrid_weight=config.hybrid_weight,
        metrics=metrics,
    )
    registry = await _publish(store, config, built.artifacts, progress)
    return ExitCode.OK, _report(registry, metrics)


async def _evaluate(
    dataset: Dataset, config: Config, options: Options, progress: Progress
) -> dict[str, dict[str, float]]:
    holdout = await asyncio.to_thread(
        Holdout, dataset, seed=options.seed, hybrid_weight=config.hybrid_weight
    )
    metrics: dict[str, dict[str, float]] = {}
    for name in MODEL_NAMES:
        progress.step(f"evaluating {name} on the holdout")
        metrics[name] = await asyncio.to_thread(holdout.score, name)
        logger.info("%s: %s", name, _format_metrics(metrics[name]))
    return metrics


async def _publish(
    store: ArtifactStore, config: Config, built: Mapping[str, bytes], progress: Progress
) -> Registry:
    """Publish through the service's own path: the three as one set, the hybrid last."""
    registry = Registry(store, key=config.artifact_key)
    problems = await registry.install(built, lambda name: progress.step(f"publishing {name}"))
    failed = {name: problem for name, problem in problems.items() if problem is not None}
    if failed:
        raise JobError(_publish_failure(failed))
    return registry


def _report(registry: Registry, metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = []
    for name, status in registry.status().items():
        info = status.artifact
        version = info.version_id if info is not None and info.version_id else "-"
        lines.append(
            f"published {name}: NDCG@{K} {metrics[name][NDCG]:.4f}, "
            f"sha256 {(status.checksum or '')[:12]}, version {version}"
        )
    return lines


def _publish_failure(failed: Mapping[str, str]) -> str:
    problem = next(iter(failed.values()))
    return (
        f"publishing {', '.join(failed)} failed: {problem}. The set was not published whole, so "
        "a running service keeps serving its current models; run wisata-retrain again once the "
        "store is reachable"
    )


def _format_metrics(scores: Mapping[str, float]) -> str:
    return ", ".join(f"{metric} {value:.4f}" for metric, value in scores.items())


async def _run(config: Config, args: argparse.Namespace) -> int:
    options = Options(
        if_new_ratings=args.if_new_ratings, min_ndcg_ratio=args.min_ndcg_ratio, seed=args.seed
    )
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
                logger.error("retrain failed: %s", storage_failure(config, e))
            except Exception:
                logger.exception("retrain failed unexpectedly; please report this with the log")
            return ExitCode.ERROR

        await run_forever(schedule, scheduled_run, wake, at_start=args.at_start)
    return ExitCode.OK


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


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0, e.g. 100")
    return int(text)


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
    return parser


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
