"""Training on Apache Spark: MLlib ALS for the collaborative model, the service's own artifacts.

``wisata-retrain --engine spark`` trains here. What is distributed and what is not:

- **Reading.** Spark reads the ratings from the dataset source: a folder's CSV file (the
  layout's columns) or ``ratings.parquet`` beside a wisata ``items.csv``, or PostgreSQL through
  Spark's JDBC reader (partitioned by a hash of the user id, every partition bounded by one
  ``created_at`` watermark read first). It checks every row there (ids present, rating a number
  on the scale). The catalogue is small and is read on the driver. SQLite has no JDBC driver in
  Debian: a SQLite source is read on the driver, as the sklearn engine does.
- **Fitting.** The collaborative model is MLlib ALS with ``nonnegative=True``
  (:class:`AlsCollaborative`), on the executors. The content model and the hybrid's blend are
  catalogue-sized and are built on the driver, as today; the hybrid's ``"auto"`` weight search
  refits its collaborative template on each validation split, so those fits run on Spark too.
- **Output.** The driver collects the item factors and the user factors (rank x 4 bytes per
  user and per item: 0.4 of a byte per rating at ML-small's density, far less than the ratings
  the artifact already holds to exclude seen items) and writes the standard
  :class:`~service.ml.recommenders.Collaborative` model: the service loads it unchanged, serves
  known users from the user factors and folds visitors in against the item factors.
- **The quality gate** (:func:`holdout_metrics`): the project's own seeded 20 % per-user
  holdout and metric code on the driver, scored on a seeded sample of at most ``max_users``
  held-out users, so the figure is the same NDCG@10 the sklearn engine's artifacts record.

Nothing here imports pyspark at module import: the service loads artifacts without it.
"""

from __future__ import annotations

from service.ml.spark_engine.fitting import (
    GATE_USERS,
    AlsCollaborative,
    fit_model_set,
    holdout_metrics,
    sample_users,
)
from service.ml.spark_engine.reading import PARQUET_RATINGS, read_dataset
from service.ml.spark_engine.session import (
    DEFAULT_MASTER,
    JDBC_JAR,
    SparkEngineError,
    SparkSettings,
    SparkSetupError,
    active_session,
    check_master,
    check_setup,
    first_line,
    spark_session,
)

__all__ = [
    "DEFAULT_MASTER",
    "GATE_USERS",
    "JDBC_JAR",
    "PARQUET_RATINGS",
    "AlsCollaborative",
    "SparkEngineError",
    "SparkSettings",
    "SparkSetupError",
    "active_session",
    "check_master",
    "check_setup",
    "first_line",
    "fit_model_set",
    "holdout_metrics",
    "read_dataset",
    "sample_users",
    "spark_session",
]
