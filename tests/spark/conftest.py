"""One local Spark session (``local[2]``) for the whole test session, or a skip saying why.

``make test`` installs Java and the PostgreSQL JDBC driver with ``tests/install_java.sh`` and
pyspark with the ``spark`` extra; the tests skip only when one of them is missing. Every
training in these tests (``wisata-retrain --engine spark`` run in-process included) joins this
session, so the JVM starts once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from service.ml import spark_engine
from service.ml.spark_engine import SparkSettings, SparkSetupError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Small data: few partitions keep each ALS fit to a few seconds.
SETTINGS = SparkSettings(
    master="local[2]",
    conf=(("spark.sql.shuffle.partitions", "2"), ("spark.default.parallelism", "2")),
)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    try:
        spark_engine.check_setup(SETTINGS)
    except SparkSetupError as e:
        pytest.skip(f"the Spark engine cannot run here: {e} (tests/install_java.sh installs Java)")
    with spark_engine.spark_session(SETTINGS) as session:
        yield session
