"""The Spark session of a training: settings, checks before starting, the one session."""

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from service.errors import WisataError
from service.ml.quiet import ignoring

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_MASTER",
    "JDBC_JAR",
    "SparkEngineError",
    "SparkSettings",
    "SparkSetupError",
    "active_session",
    "check_master",
    "check_setup",
    "first_line",
    "spark_session",
]

logger = logging.getLogger(__name__)
logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per closed connection

DEFAULT_MASTER: Final = "local[*]"
"""Where Spark runs when neither ``--spark-master`` nor ``WISATA_SPARK_MASTER`` says."""
JDBC_JAR: Final = Path("/usr/share/java/postgresql.jar")
"""Debian's PostgreSQL JDBC driver (libpostgresql-jdbc-java), added to Spark's classpath."""
_CONNECT_TIMEOUT: Final = 5.0
_MASTER = re.compile(
    r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|spark://[^\s/]+(:\d+)?(,[^\s/]+(:\d+)?)*|yarn"
    r"|k8s://\S+"
)
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
    with ignoring(FutureWarning, DeprecationWarning):
        yield
