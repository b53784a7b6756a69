"""The training engine of a ``wisata-retrain`` run: scikit-learn, or Spark (``--engine spark``).

Each step takes the run's Spark session, None for the scikit-learn engine: reading the dataset,
the holdout metrics and the fit of the model set. A Spark failure becomes a :class:`JobError`
that says what failed and where to look.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from jobs.cli import JobError
from jobs.retrain_options import Options
from service.config import Config
from service.errors import DatasetError
from service.ml import spark_engine
from service.ml.datasets import Dataset, load_dataset
from service.ml.evaluation import holdout_metrics
from service.ml.model_set import HybridWeight
from service.ml.recommenders import MODEL_NAMES
from service.ml.spark_engine import SparkEngineError, SparkSettings, SparkSetupError
from service.serving.building import BuildResult, build_artifacts

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "build_on",
    "evaluate_on",
    "load_on",
    "setup_problem",
    "spark_settings",
    "training_engine",
]

logger = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def spark_settings(config: Config, options: Options) -> SparkSettings:
    """Where the Spark engine runs: --spark-master, else WISATA_SPARK_MASTER, else local[*]."""
    master = options.spark_master or config.spark_master or spark_engine.DEFAULT_MASTER
    return SparkSettings(master=master, conf=options.spark_conf)


def setup_problem(config: Config, options: Options) -> str | None:
    """Why ``--engine spark`` cannot run here (pyspark, Java, the master), or None."""
    try:
        spark_engine.check_setup(spark_settings(config, options))
    except SparkSetupError as e:
        return str(e)
    return None


@contextlib.contextmanager
def training_engine(config: Config, options: Options) -> Iterator[SparkSession | None]:
    """The Spark session of a run with ``--engine spark``; None for the sklearn engine."""
    if options.engine != "spark":
        yield None
        return
    settings = spark_settings(config, options)
    logger.info("training engine: Spark (MLlib ALS) on %s", settings.master)
    try:
        session = contextlib.ExitStack()
        spark = session.enter_context(spark_engine.spark_session(settings))
    except SparkEngineError as e:
        raise JobError(str(e)) from e
    with session:
        yield spark


def load_on(spark: SparkSession | None, config: Config) -> Dataset:
    """The dataset at ``WISATA_DATA``, read by Spark when there is a session."""
    try:
        if spark is not None:
            return spark_engine.read_dataset(spark, config.data)
        return load_dataset(config.data)
    except DatasetError as e:
        raise JobError(f"cannot read the dataset (WISATA_DATA={config.data}): {e}") from e
    except SparkEngineError as e:
        raise JobError(str(e)) from e


def evaluate_on(
    spark: SparkSession | None,
    dataset: Dataset,
    *,
    seed: int,
    hybrid_weight: HybridWeight,
    before_each: Callable[[str], object],
    als_rank: int | None = None,
) -> dict[str, dict[str, float]]:
    """Each model's holdout metrics; with Spark the same split and metrics, ALS on Spark, on a
    sample of the held-out users."""
    if spark is None:
        return holdout_metrics(
            dataset, MODEL_NAMES, seed=seed, hybrid_weight=hybrid_weight, before_each=before_each
        )
    return _on_spark(
        spark_engine.holdout_metrics,
        dataset,
        MODEL_NAMES,
        seed=seed,
        hybrid_weight=hybrid_weight,
        collaborative=_als(als_rank),
        before_each=before_each,
    )


def build_on(
    spark: SparkSession | None,
    dataset: Dataset,
    config: Config,
    metrics: Mapping[str, Mapping[str, float]],
    als_rank: int | None = None,
) -> BuildResult:
    """The three models fitted on all of ``dataset`` and serialised with ``metrics``."""
    fitted = None
    if spark is not None:  # the collaborative model on Spark; the others here, as always
        fitted = _on_spark(
            spark_engine.fit_model_set,
            dataset,
            MODEL_NAMES,
            collaborative=_als(als_rank),
            hybrid_weight=config.hybrid_weight,
        )
    return build_artifacts(
        dataset,
        MODEL_NAMES,
        key=config.artifact_key,
        hybrid_weight=config.hybrid_weight,
        metrics=metrics,
        fitted=fitted,
    )


def _on_spark(call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run a Spark engine call; a Spark failure becomes a job error saying what failed."""
    try:
        return call(*args, **kwargs)
    except SparkEngineError as e:
        raise JobError(str(e)) from e
    except Exception as e:
        if type(e).__module__.startswith(("pyspark", "py4j")):
            raise JobError(
                f"Spark failed while training: {spark_engine.first_line(e)}; check the "
                "executors' logs, their memory (--spark-conf spark.executor.memory=...) and "
                "the master"
            ) from e
        raise


def _als(rank: int | None) -> spark_engine.AlsCollaborative | None:
    """The ALS template of ``--als-rank``; None: the engine's default."""
    return None if rank is None else spark_engine.AlsCollaborative(rank=rank)
