"""Reading the ratings with Spark: a folder's CSV or Parquet, or PostgreSQL over JDBC."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd

from service.db import Database, is_database
from service.db.bulk import Watermark
from service.db.schema import CATEGORY_SEPARATOR
from service.errors import DatasetError, WisataError
from service.ml.datasets import Dataset, assemble, load_dataset
from service.ml.layouts import RATING_RANGE, detect_layout, read_catalogue
from service.ml.spark_engine.session import JDBC_JAR, SparkSetupError, _quiet_pandas, first_line

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


__all__ = ["PARQUET_RATINGS", "read_dataset"]

logger = logging.getLogger(__name__)

PARQUET_RATINGS: Final = "ratings.parquet"
"""A folder's ratings as Parquet (a file or a folder of parts), beside a wisata ``items.csv``."""
# The rating columns of each folder layout: user, item, rating, timestamp (or None).
_CSV_COLUMNS: Final[dict[str, tuple[str, str, str, str, str | None]]] = {
    "wisata": ("ratings.csv", "user_id", "item_id", "rating", "timestamp"),
    "tourism": ("tourism_rating.csv", "User_Id", "Place_Id", "Place_Ratings", None),
    "movielens": ("ratings.csv", "userId", "movieId", "rating", "timestamp"),
}


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
