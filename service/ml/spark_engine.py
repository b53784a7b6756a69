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

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.decomposition import NMF

from service.db import Database, is_database
from service.db.bulk import Watermark
from service.db.schema import CATEGORY_SEPARATOR
from service.errors import DatasetError, WisataError
from service.ml.datasets import Dataset, assemble, load_dataset
from service.ml.evaluation import NDCG, K, evaluate_model
from service.ml.layouts import RATING_RANGE, detect_layout, read_catalogue
from service.ml.model_set import HybridWeight, ModelSet, ordered_models
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)
from service.ml.recommenders.base import SHORTLIST, FloatArray
from service.ml.splits import Holdout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = [
    "DEFAULT_MASTER",
    "AlsCollaborative",
    "SparkEngineError",
    "SparkSettings",
    "SparkSetupError",
    "check_master",
    "check_setup",
    "first_line",
    "fit_model_set",
    "holdout_metrics",
    "read_dataset",
    "spark_session",
]

logger = logging.getLogger(__name__)
logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per closed connection

DEFAULT_MASTER: Final = "local[*]"
"""Where Spark runs when neither ``--spark-master`` nor ``WISATA_SPARK_MASTER`` says."""
JDBC_JAR: Final = Path("/usr/share/java/postgresql.jar")
"""Debian's PostgreSQL JDBC driver (libpostgresql-jdbc-java), added to Spark's classpath."""
PARQUET_RATINGS: Final = "ratings.parquet"
"""A folder's ratings as Parquet (a file or a folder of parts), beside a wisata ``items.csv``."""
GATE_USERS: Final = 10_000
"""Held-out users the Spark engine's quality gate scores (a seeded sample beyond that)."""
_CONNECT_TIMEOUT: Final = 5.0
_MASTER = re.compile(
    r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|spark://[^\s/]+(:\d+)?(,[^\s/]+(:\d+)?)*|yarn"
    r"|k8s://\S+"
)
# The rating columns of each folder layout: user, item, rating, timestamp (or None).
_CSV_COLUMNS: Final[dict[str, tuple[str, str, str, str, str | None]]] = {
    "wisata": ("ratings.csv", "user_id", "item_id", "rating", "timestamp"),
    "tourism": ("tourism_rating.csv", "User_Id", "Place_Id", "Place_Ratings", None),
    "movielens": ("ratings.csv", "userId", "movieId", "rating", "timestamp"),
}
_DEFAULT_CONF: Final = {
    "spark.app.name": "wisata-retrain",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.extraJavaOptions": "-Dlog4j2.level=error",
}

_session: SparkSession | None = None


class SparkEngineError(WisataError):
    """The Spark engine cannot run now (master unreachable, the JVM failed): exit status 1."""

    status = 503
    code = "spark_unavailable"


class SparkSetupError(SparkEngineError):
    """The Spark engine is not set up (pyspark or Java missing, a bad master): exit status 2."""

    code = "spark_not_set_up"


@dataclass(frozen=True)
class SparkSettings:
    """Where Spark runs and the extra ``spark.*`` settings of the session."""

    master: str = DEFAULT_MASTER
    conf: tuple[tuple[str, str], ...] = ()


def check_master(master: str) -> str:
    """Return ``master`` if it is a Spark master URL; raise :class:`SparkSetupError` if not."""
    if _MASTER.fullmatch(master.strip()) is None:
        raise SparkSetupError(
            f"{master!r} is not a Spark master URL; use local[N], local[*], "
            "spark://host:7077, yarn or k8s://https://host:port"
        )
    return master.strip()


def check_setup(settings: SparkSettings) -> None:
    """Check what a session needs before starting one: the master URL, pyspark and Java.

    Raises
    ------
    SparkSetupError
        If one is missing or wrong; the message says what to install or set.
    """
    check_master(settings.master)
    _check_runtime()


def _check_runtime() -> None:
    if not _pyspark_installed():
        raise SparkSetupError(
            "the Spark engine needs pyspark, which is not installed: pip install 'wisata[spark]' "
            "(or run without --engine spark)"
        )
    home = os.environ.get("JAVA_HOME")
    if not (home and Path(home, "bin", "java").is_file()) and shutil.which("java") is None:
        raise SparkSetupError(
            "the Spark engine needs Java 17 or later and none was found (no java on PATH, "
            "JAVA_HOME unset or wrong); install it, e.g. apt-get install default-jre-headless"
        )


def _pyspark_installed() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def _check_reachable(master: str) -> None:
    """Fail fast when a standalone master does not answer (Spark itself would retry a minute)."""
    if not master.startswith("spark://"):
        return
    problems = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "7077")
        try:
            with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT):
                return
        except (OSError, ValueError) as e:
            problems.append(f"{address}: {e}")
    raise SparkEngineError(
        f"the Spark master {master} (--spark-master or WISATA_SPARK_MASTER) does not answer "
        f"({'; '.join(problems)}); start it, or check the URL and the network"
    )


@contextlib.contextmanager
def spark_session(settings: SparkSettings) -> Iterator[SparkSession]:
    """Start a Spark session for one training, and stop it at the end.

    The collaborative models fitted inside the block (:class:`AlsCollaborative`) run on it.

    Raises
    ------
    SparkSetupError
        If pyspark or Java is missing or the master URL is not one.
    SparkEngineError
        If the master does not answer or the JVM does not start.
    """
    global _session
    master = check_master(settings.master)
    _check_runtime()
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        # A session is running in this process already (a notebook, the test suite): train on
        # it, leave it running, and keep its settings.
        session = SparkSession.builder.getOrCreate()
        logger.info("training on the running Spark session (%s)", session.sparkContext.master)
        previous, _session = _session, session
        try:
            yield session
        finally:
            _session = previous
        return
    _check_reachable(master)
    conf = dict(_DEFAULT_CONF)
    if JDBC_JAR.is_file():
        conf["spark.jars"] = str(JDBC_JAR)
    conf.update(settings.conf)
    with contextlib.ExitStack() as cleanup:
        if "spark.checkpoint.dir" not in conf and master.startswith("local"):
            # ALS's lineage grows with each iteration; checkpoints cut it (a cluster needs a
            # shared folder: pass --spark-conf spark.checkpoint.dir=hdfs://... or s3a://...).
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wisata-spark-"))
            conf["spark.checkpoint.dir"] = folder
        builder = SparkSession.builder.master(master)
        for key, value in conf.items():
            builder = builder.config(key, value)
        start = time.perf_counter()
        try:
            session = builder.getOrCreate()
        except Exception as e:  # py4j and pyspark raise several kinds; all mean the same here
            raise SparkEngineError(
                f"Spark did not start on {master}: {first_line(e)}; check Java, the master "
                "and the --spark-conf settings"
            ) from e
        session.sparkContext.setLogLevel("ERROR")
        if "spark.checkpoint.dir" in conf:
            session.sparkContext.setCheckpointDir(conf["spark.checkpoint.dir"])
        logger.info(
            "Spark %s session on %s in %.1f s (parallelism %d)",
            session.version,
            master,
            time.perf_counter() - start,
            session.sparkContext.defaultParallelism,
        )
        _session = session
        try:
            yield session
        finally:
            _session = None
            session.stop()


def active_session() -> SparkSession:
    """The session of the enclosing :func:`spark_session` block."""
    if _session is None:
        raise RuntimeError("no Spark session: fit Spark models inside spark_session(...)")
    return _session


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


@contextlib.contextmanager
def _quiet_pandas() -> Iterator[None]:
    # pyspark warns that it does not fully support pandas 3 on every conversion, and calls
    # pandas in ways pandas 3 deprecates; the columns exchanged here are plain numbers and text.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --- reading --------------------------------------------------------------------------------


def read_dataset(spark: SparkSession, source: str | Path) -> Dataset:
    """Read the dataset at ``source`` with Spark; the canonical dataset on the driver.

    Spark reads and checks the ratings; the driver reads the catalogue and applies the
    dataset policies (:func:`service.ml.datasets.assemble`) to the collected rows, so the
    dataset is the one the sklearn engine would read.

    Raises
    ------
    DatasetError
        If the source cannot be read or a rating row is bad (the message says which).
    SparkSetupError
        If PostgreSQL is read without its JDBC driver on Spark's classpath.
    """
    location = str(source)
    if is_database(location):
        try:
            database = Database.parse(location)
        except ValueError as e:
            raise DatasetError(f"WISATA_DATA: {e}") from e
        if database.kind == "sqlite":
            logger.info("SQLite has no JDBC driver here: reading %s on the driver", location)
            return load_dataset(location)
        return _from_postgres(spark, database)
    return _from_folder(spark, Path(location))


def _from_folder(spark: SparkSession, directory: Path) -> Dataset:
    parquet = directory / PARQUET_RATINGS
    if (directory / "items.csv").is_file() and parquet.exists():
        items = read_catalogue(directory, "wisata")
        frame = _read_parquet(spark, parquet)
        layout, ratings_file = "wisata", parquet
    else:
        layout = detect_layout(directory)
        items = read_catalogue(directory, layout)
        file_name, user, item, rating, timestamp = _CSV_COLUMNS[layout]
        ratings_file = directory / file_name
        frame = _read_csv(spark, ratings_file, user, item, rating, timestamp)
    ratings = _checked(frame, str(ratings_file), RATING_RANGE[layout])
    return assemble(items, ratings, layout, str(directory))


def _read_csv(
    spark: SparkSession, path: Path, user: str, item: str, rating: str, timestamp: str | None
) -> DataFrame:
    from pyspark.sql import functions as F

    try:
        raw = spark.read.csv(str(path), header=True, inferSchema=False, multiLine=False)
    except Exception as e:
        raise DatasetError(f"{path}: Spark cannot read it ({first_line(e)})") from e
    header = {name.strip(): name for name in raw.columns}
    missing = [name for name in (user, item, rating) if name not in header]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)} in the header (line 1); "
            f"found {', '.join(header)}"
        )
    stamp = (
        _number(F.trim(F.col(header[timestamp])))
        if timestamp is not None and timestamp in header
        else F.lit(None).cast("double")
    )
    return raw.select(
        F.trim(F.col(header[user])).alias("user_id"),
        F.trim(F.col(header[item])).alias("item_id"),
        F.trim(F.col(header[rating])).alias("rating_text"),
        stamp.alias("timestamp"),
    )


def _read_parquet(spark: SparkSession, path: Path) -> DataFrame:
    from pyspark.sql import functions as F

    try:
        raw = spark.read.parquet(str(path))
    except Exception as e:
        raise DatasetError(f"{path}: Spark cannot read it as Parquet ({first_line(e)})") from e
    missing = [name for name in ("user_id", "item_id", "rating") if name not in raw.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; a ratings Parquet file holds "
            "user_id, item_id, rating and optionally timestamp (unix seconds)"
        )
    stamp = (
        _number(F.col("timestamp").cast("string"))
        if "timestamp" in raw.columns
        else F.lit(None).cast("double")
    )
    return raw.select(
        F.trim(F.col("user_id").cast("string")).alias("user_id"),
        F.trim(F.col("item_id").cast("string")).alias("item_id"),
        F.col("rating").cast("string").alias("rating_text"),
        stamp.alias("timestamp"),
    )


def _number(text: Column) -> Column:
    """The number in a text column, null where there is none (an ANSI cast would fail)."""
    return text.try_cast("double")


def _checked(frame: DataFrame, where: str, scale: tuple[float, float] | None) -> pd.DataFrame:
    """Check every row in Spark; collect the good ones (user, item, rating, timestamp)."""
    from pyspark.sql import functions as F

    rating = _number(F.col("rating_text"))
    bad = (
        F.col("user_id").isNull()
        | (F.col("user_id") == "")
        | F.col("item_id").isNull()
        | (F.col("item_id") == "")
        | rating.isNull()
        | F.isnan(rating)
    )
    if scale is not None:
        bad = bad | (rating < scale[0]) | (rating > scale[1])
    flagged = frame.withColumn("bad", bad)
    first = flagged.filter("bad").limit(1).collect()
    if first:
        count = flagged.filter("bad").count()
        row = first[0]
        expected = f" on the scale {scale[0]:g}..{scale[1]:g}" if scale is not None else ""
        raise DatasetError(
            f"{where}: {count} rating row(s) have an empty user or item id or a rating that is "
            f"not a number{expected}; the first: user {row['user_id']!r}, item "
            f"{row['item_id']!r}, rating {row['rating_text']!r}. Fix them (wisata-db import "
            "lists each bad row of a CSV file with its line)"
        )
    good = frame.select(
        "user_id", "item_id", rating.alias("rating"), F.col("timestamp").cast("double")
    )
    with _quiet_pandas():
        collected: pd.DataFrame = good.toPandas()
    return collected.astype(
        {"user_id": str, "item_id": str, "rating": "float64", "timestamp": "float64"}
    )


def _jdbc(database: Database) -> tuple[str, dict[str, str]]:
    url = database.url
    host = url.host or "localhost"
    address = f"{host}:{url.port}" if url.port else host
    properties = {"driver": "org.postgresql.Driver"}
    if url.username:
        properties["user"] = url.username
    if url.password:
        properties["password"] = str(url.password)
    for key, value in url.query.items():
        properties[key] = value if isinstance(value, str) else ",".join(value)
    return f"jdbc:postgresql://{address}/{url.database}", properties


def _from_postgres(spark: SparkSession, database: Database) -> Dataset:
    url, properties = _jdbc(database)
    where = database.describe()

    def query(sql: str) -> DataFrame:
        frame: DataFrame = spark.read.jdbc(url, f"({sql}) AS q", properties=properties)
        return frame

    try:
        mark = query(
            "SELECT to_char(max(created_at) AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS latest, count(*) AS n FROM wisata_ratings"
        ).collect()[0]
        if mark["latest"] is None:
            raise DatasetError(
                f"{where} holds no rating yet; load some with wisata-db import DIR or "
                "POST /api/ratings"
            )
        with _quiet_pandas():
            raw_items = query(
                "SELECT id, name, description, categories, city, price FROM wisata_items"
            ).toPandas()
        latest = datetime.fromisoformat(mark["latest"]).replace(tzinfo=UTC)
        parts = max(2, spark.sparkContext.defaultParallelism)
        bound = f"created_at <= timestamptz '{latest.isoformat()}'"
        predicates = [
            f"{bound} AND (hashtext(user_id) & 2147483647) % {parts} = {i}" for i in range(parts)
        ]
        frame = spark.read.jdbc(url, "wisata_ratings", predicates=predicates, properties=properties)
        from pyspark.sql import functions as F

        selected = frame.select(
            "user_id",
            "item_id",
            F.col("rating").cast("string").alias("rating_text"),
            F.col("created_at").cast("double").alias("timestamp"),
        )
        ratings = _checked(selected, f"{where}, table wisata_ratings", None)
    except DatasetError:
        raise
    except Exception as e:
        raise _jdbc_failure(where, e) from e
    items = _canonical_items(raw_items)
    scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
    watermark = Watermark(latest, len(ratings))
    return assemble(items, ratings, "database", where, rating_range=scale, watermark=watermark)


def _jdbc_failure(where: str, e: Exception) -> WisataError:
    text = str(e)
    if "org.postgresql.Driver" in text or "No suitable driver" in text:
        return SparkSetupError(
            f"Spark cannot read {where}: the PostgreSQL JDBC driver is not on its classpath; "
            f"install it (apt-get install libpostgresql-jdbc-java puts it at {JDBC_JAR}) or "
            "pass --spark-conf spark.jars=/path/to/postgresql.jar"
        )
    if "does not exist" in text and "wisata_" in text:
        return DatasetError(
            f"{where} has no wisata tables; create the schema with wisata-db init (and load "
            "data with wisata-db import DIR)"
        )
    return DatasetError(f"Spark cannot read {where} over JDBC: {first_line(e)}")


def _canonical_items(raw: pd.DataFrame) -> pd.DataFrame:
    price = pd.to_numeric(raw["price"], errors="coerce")
    return pd.DataFrame(
        {
            "id": raw["id"].astype(str),
            "name": raw["name"].astype(str),
            "description": raw["description"].fillna("").astype(str),
            "categories": raw["categories"]
            .fillna("")
            .map(lambda joined: [c for c in str(joined).split(CATEGORY_SEPARATOR) if c]),
            "city": raw["city"].fillna("").astype(str),
            "price": price.astype("float64"),
        }
    ).sort_values("id", kind="stable", ignore_index=True)


# --- fitting --------------------------------------------------------------------------------


class AlsCollaborative(Collaborative):
    """The collaborative model fitted by Spark MLlib's ALS, with non-negative factors.

    Fitted inside :func:`spark_session`; :meth:`as_collaborative` gives the standard
    :class:`~service.ml.recommenders.Collaborative` model the artifacts hold.

    Parameters
    ----------
    rank : int, default=64
        Number of latent factors (chosen on MovieLens with ``bench/tune_als.py``:
        docs/EVALUATION.md).
    reg_param : float, default=0.05
        ALS's ``regParam`` (scaled by each user's and item's rating count, as MLlib does).
    implicit_prefs : bool, default=True
        True: MLlib's implicit-feedback ALS, the ratings as confidence ``1 + alpha * rating`` of
        a preference, every unrated pair a weak zero, the problem the service's NMF solves
        (it factorises missing ratings as zeros). False: explicit ALS, fitted on the rated
        pairs only, which ranks poorly (docs/EVALUATION.md).
    alpha : float, default=0.1
        Confidence per rating point (implicit only).
    max_iter : int, default=10
        ALS sweeps.
    blocks : int or None, default=None
        ALS's user and item blocks; None: the session's default parallelism.
    random_state : int, default=0
        Seed of the initial factors.
    shortlist : int, default=100
        Best unseen items ranked per known user at fit time, on the driver, as
        :class:`~service.ml.recommenders.Collaborative` does; 0 ranks none.
    """

    engine: ClassVar[str] = "spark-als"

    def __init__(
        self,
        *,
        rank: int = 64,
        reg_param: float = 0.05,
        implicit_prefs: bool = True,
        alpha: float = 0.1,
        max_iter: int = 10,
        blocks: int | None = None,
        random_state: int = 0,
        shortlist: int = SHORTLIST,
    ) -> None:
        self.rank = rank
        self.reg_param = reg_param
        self.implicit_prefs = implicit_prefs
        self.alpha = alpha
        self.max_iter = max_iter
        self.blocks = blocks
        self.random_state = random_state
        self.shortlist = shortlist

    def _weights(self, ratings: FloatArray) -> FloatArray:
        # Implicit ALS models preference, 1 for a rated pair: a visitor folds in the same way.
        return np.ones_like(ratings) if self.implicit_prefs else ratings

    def _fit(self, dataset: Dataset) -> None:
        from pyspark.ml.recommendation import ALS

        spark = active_session()
        matrix = self.user_items_.tocoo()
        n_users, n_items = matrix.shape
        frame = pd.DataFrame(
            {
                "user": matrix.row.astype(np.int32),
                "item": matrix.col.astype(np.int32),
                "rating": matrix.data.astype(np.float32),
            }
        )
        blocks = self.blocks or max(1, spark.sparkContext.defaultParallelism)
        als = ALS(
            rank=self.rank,
            maxIter=self.max_iter,
            regParam=self.reg_param,
            implicitPrefs=self.implicit_prefs,
            alpha=self.alpha,
            nonnegative=True,
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.random_state,
        )
        with _quiet_pandas():
            ratings = spark.createDataFrame(frame)
            model = als.fit(ratings)
            users = _factors(model.userFactors.toPandas(), n_users, self.rank)
            items = _factors(model.itemFactors.toPandas(), n_items, self.rank)
        self.user_factors_ = users
        self.item_factors_ = np.ascontiguousarray(items.T)
        self.nmf_ = self._fold_in_solver(dataset, n_items)

    def _fold_in_solver(self, dataset: Dataset, n_items: int) -> NMF:
        """An NMF estimator holding the ALS item factors: the fold-in the service runs."""
        # ALS weighs its L2 term by each user's rating count; the fold-in's term is per item
        # of the catalogue, so it takes ALS's at the mean count.
        per_user = dataset.n_interactions / max(1, dataset.n_users)
        solver = NMF(
            n_components=self.rank,
            init="nndsvd",
            solver="cd",
            alpha_W=self.reg_param * per_user / max(1, n_items),
            alpha_H="same",
            l1_ratio=0.0,
            max_iter=100,
            random_state=self.random_state,
        )
        solver.components_ = self.item_factors_.copy()
        solver.n_components_ = self.rank
        solver.n_features_in_ = n_items
        return solver

    def as_collaborative(self) -> Collaborative:
        """The standard collaborative model with this model's learned state."""
        model = Collaborative(
            n_components=self.rank,
            weighting="binary" if self.implicit_prefs else "explicit",
            alpha_W=float(self.nmf_.alpha_W),
            max_iter=int(self.nmf_.max_iter),
            random_state=self.random_state,
            shortlist=self.shortlist,
        )
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(model, name, value)
        return model


def _factors(frame: pd.DataFrame, rows: int, rank: int) -> np.ndarray:
    """ALS's ``(id, features)`` rows as a dense matrix; ids it never saw stay zero."""
    factors = np.zeros((rows, rank), dtype=np.float32)
    if len(frame):
        ids = frame["id"].to_numpy(dtype=np.int64)
        factors[ids] = np.asarray(frame["features"].tolist(), dtype=np.float32)
    return factors


def fit_model_set(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    collaborative: AlsCollaborative | None = None,
    hybrid_weight: HybridWeight = "auto",
    before_each: Callable[[str], object] | None = None,
) -> ModelSet:
    """Fit ``names`` as :func:`service.ml.model_set.fit_model_set` does, the collaborative on Spark.

    The collaborative model in the result is the standard one (``as_collaborative``); the
    hybrid is attached to it. ``collaborative`` is the ALS template (its hyperparameters).
    """
    template = collaborative if collaborative is not None else AlsCollaborative()
    fitted: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    als: AlsCollaborative | None = None
    order = ordered_models(names)
    for name in order:
        if before_each is not None:
            before_each(name)
        start = time.perf_counter()
        if name == ContentBased.name:
            fitted[name] = ContentBased().fit(dataset)
        elif name == Collaborative.name:
            als = clone(template).fit(dataset)
            fitted[name] = als.as_collaborative()
        else:
            content, plain = fitted.get(ContentBased.name), fitted.get(Collaborative.name)
            if not isinstance(content, ContentBased) or als is None:
                raise RuntimeError("cannot build the hybrid: train it with its two sub-models")
            # Its "auto" weight search clones the ALS template, so those fits run on Spark too.
            hybrid = Hybrid(content=content, collaborative=als, content_weight=hybrid_weight)
            hybrid.fit(dataset)
            assert isinstance(plain, Collaborative)
            hybrid.attach(content, plain)
            fitted[name] = hybrid
        seconds[name] = time.perf_counter() - start
    return ModelSet(fitted, seconds)


def holdout_metrics(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    seed: int = 0,
    hybrid_weight: HybridWeight = "auto",
    collaborative: AlsCollaborative | None = None,
    max_users: int = GATE_USERS,
    before_each: Callable[[str], object] | None = None,
) -> dict[str, dict[str, float]]:
    """The holdout metrics of :func:`service.ml.evaluation.holdout_metrics`, ALS on Spark.

    The same seeded split and metric code; the models are scored on a seeded sample of at
    most ``max_users`` held-out users (all of them when there are fewer), which bounds the
    driver's work on a large dataset.
    """
    wanted = ordered_models(names)
    holdout = Holdout.of(dataset, seed)
    needed = {ContentBased.name, *wanted}
    if Hybrid.name in wanted:
        needed.add(Collaborative.name)
    fitted = fit_model_set(
        holdout.part,
        needed,
        collaborative=collaborative,
        hybrid_weight=hybrid_weight,
        before_each=before_each,
    )
    relevant = sample_users(holdout.relevant, max_users, seed)
    metrics: dict[str, dict[str, float]] = {}
    for name in wanted:
        scores = evaluate_model(fitted.models[name], relevant, fitted.content, K)
        metrics[name] = {
            NDCG: scores.ndcg,
            f"precision_at_{K}": scores.precision,
            f"recall_at_{K}": scores.recall,
            "coverage": scores.coverage,
            "diversity": scores.diversity,
        }
    return metrics


def sample_users(
    relevant: Mapping[str, set[str]], max_users: int, seed: int
) -> dict[str, set[str]]:
    """At most ``max_users`` of the held-out users, a seeded sample (all when fewer)."""
    users: Sequence[str] = sorted(relevant)
    if len(users) > max_users:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(np.asarray(users, dtype=object), max_users, replace=False))
    return {user: relevant[user] for user in users}
