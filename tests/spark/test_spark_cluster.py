"""``wisata-retrain --spark-master spark://...`` against a standalone Spark master and worker.

The compose profile ``spark`` (docker/docker-compose.spark.yml) runs a master and a worker with
``spark-class`` and points the retrain container at the master. Here the same two daemons are
started from pyspark's own Spark distribution on 127.0.0.1 (free ports, a temporary folder),
and ``wisata-retrain`` runs as its own process, the Spark driver, as it does in the container.
The master's JSON status then tells that the application really ran on the cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service import artifacts
from service.ml import spark_engine
from service.ml.recommenders import MODEL_NAMES, Collaborative
from service.ml.spark_engine import SparkSettings, SparkSetupError
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import artifact_key
from storage import open_store
from tests.s3server import free_port
from tests.spark.processes import job_process

KEY = "spark-cluster-test-key"
STARTUP = 90.0
"""Seconds a daemon gets to come up (a JVM start, slower on a loaded machine)."""


@dataclass
class Cluster:
    master: str
    """The master's URL, ``spark://127.0.0.1:<port>``."""
    status_url: str
    """The master's web UI JSON status."""

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(self.status_url, timeout=5) as answer:
            found: dict[str, object] = json.load(answer)
        return found


def _daemon(home: Path, folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder),
        "PYSPARK_PYTHON": sys.executable,
    }
    with (folder / f"{name}.log").open("wb") as log:  # the daemon keeps its own descriptor
        return subprocess.Popen(
            [str(home / "bin" / "spark-class"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait(cluster: Cluster, ready: str, folder: Path) -> None:
    deadline = time.monotonic() + STARTUP
    while True:
        try:
            status = cluster.status()
            if ready == "master" or int(str(status.get("aliveworkers", 0))) >= 1:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in folder.glob("*.log"))
            pytest.fail(f"the Spark {ready} did not come up within {STARTUP:g} s:\n{logs}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        spark_engine.check_setup(SparkSettings(master="local[2]"))
    except SparkSetupError as e:
        pytest.skip(f"the Spark engine cannot run here: {e} (tests/install_java.sh installs Java)")
    import pyspark

    home = Path(pyspark.__file__).parent
    folder = tmp_path_factory.mktemp("spark-cluster")
    port, ui = free_port(), free_port()
    found = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}/json/")
    master = _daemon(
        home, folder, "master", "org.apache.spark.deploy.master.Master",
        "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui),
    )  # fmt: skip
    worker = None
    try:
        _wait(found, "master", folder)
        worker = _daemon(
            home, folder, "worker", "org.apache.spark.deploy.worker.Worker", found.master,
            "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
            "--webui-port", str(free_port()), "--work-dir", str(folder / "work"),
        )  # fmt: skip
        _wait(found, "worker", folder)
        yield found
    finally:
        for process in (worker, master):
            if process is not None:
                _stop(process)


async def test_a_retrain_on_a_standalone_master_runs_there_and_publishes_verified_artifacts(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("WISATA_")},
        "WISATA_STORAGE": str(tmp_path / "models"),
        "WISATA_DATA": str(SAMPLE_DATA_DIR),
        "WISATA_ARTIFACT_KEY": KEY,
        "WISATA_HYBRID_WEIGHT": "0.6",
        "WISATA_SPARK_MASTER": cluster.master,
        "PYSPARK_PYTHON": sys.executable,
    }
    done = await asyncio.to_thread(
        job_process,
        env,
        *("--engine", "spark", "--als-rank", "8", "--spark-conf", "spark.executor.memory=1g"),
        *("--spark-conf", "spark.driver.host=127.0.0.1"),
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    for name in MODEL_NAMES:
        assert f"published {name}: NDCG@10" in done.stdout
    # The driver's application ran on the cluster's worker and ended there.
    status = cluster.status()
    applications = [*status["completedapps"], *status["activeapps"]]  # type: ignore[misc]
    assert applications, status
    async with open_store(env["WISATA_STORAGE"]) as store:
        stored = {name: (await store.get(artifact_key(name)))[0] for name in MODEL_NAMES}
    headers = {
        name: artifacts.verify(data, KEY.encode(), expected_model=name)
        for name, data in stored.items()
    }
    model, _ = artifacts.load(stored["collaborative"], KEY.encode())
    assert type(model) is Collaborative and model.item_factors_.shape[0] == 8
    assert headers["hybrid"].parents["collaborative"] == headers["collaborative"].payload_sha256
    answer = model.recommend("u001", 5)
    assert not answer.cold_start and len(answer.items) == 5
