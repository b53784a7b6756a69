"""End to end: the models a ``wisata-serve`` process trains are there after a restart.

A real ``python -m service`` process on an empty bucket of the session's moto server trains
the three models through the API and is stopped with SIGTERM; a second process on the same
bucket must serve the same models (same checksums, same answers) without training anything.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.synthetic import SyntheticSpec, generate, write_wisata
from service.ml.recommenders import MODEL_NAMES
from tests.serving import ServeProcess, descendants

pytestmark = pytest.mark.slow

JOB_TIMEOUT = 120.0


def answers(server: ServeProcess) -> dict[str, Any]:
    """Everything a client would compare across a restart."""
    found: dict[str, Any] = {}
    for algorithm in ("content", "collaborative", "hybrid"):
        for user in ("u001", "u150", "someone-new"):
            path = f"/api/frontend/recommendations?user_id={user}&algorithm={algorithm}&limit=15"
            found[path] = server.json("GET", path)
        similar = f"/api/items/12/similar?algorithm={algorithm}&limit=8"
        found[similar] = server.json("GET", similar)
        ratings = {"ratings": [{"item_id": "3", "rating": 5}], "algorithm": algorithm}
        found[f"POST {algorithm}"] = server.json("POST", "/api/recommendations", ratings)
    return found


def niceness(pid: int) -> int:
    """A process's nice value, field 19 of ``/proc/<pid>/stat`` (after the command's parens)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def check_training_worker(service: int) -> None:
    """The pool's worker outlives its job: lower priority, and not forked from the web process.

    A child forked from the threaded web process could inherit a lock held by one of its
    threads; the workers come from a fork server instead.
    """
    workers = [pid for pid in descendants(service) if niceness(pid) > niceness(service)]
    assert len(workers) == 1, [(pid, niceness(pid)) for pid in descendants(service)]
    assert niceness(workers[0]) == niceness(service) + 10
    # and it runs only on CPU time the web process leaves (SCHED_IDLE)
    assert os.sched_getscheduler(workers[0]) == os.SCHED_IDLE
    assert parent(workers[0]) != service


def test_trained_models_survive_a_restart(s3_endpoint: str) -> None:
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    env = {
        "WISATA_STORAGE": f"s3://{bucket}/wisata",
        "WISATA_S3_ENDPOINT": s3_endpoint,
        "WISATA_RELOAD_INTERVAL": "0",
        "WISATA_LOG_LEVEL": "INFO",
    }
    with ServeProcess(env) as first:
        empty = first.json("GET", "/api/ml/status")
        assert {m["state"] for m in empty["models"].values()} == {"not_trained"}
        assert empty["storage"]["reachable"] is True
        assert first.request("GET", "/readyz")[0] == 503

        job_id = first.json("POST", "/api/ml/train-all")["job_id"]
        deadline = time.monotonic() + JOB_TIMEOUT
        while (job := first.json("GET", f"/api/ml/jobs/{job_id}"))["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, f"training did not finish:\n{first.log()}"
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert all(v == "yes" for v in job["persisted"].values()), job
        check_training_worker(first.pid)
        trained = first.json("GET", "/api/ml/status")["models"]
        before = answers(first)
        assert first.stop() == 0, first.log()
        first_log = first.log()
    assert "Traceback" not in first_log, first_log

    with ServeProcess(env) as second:
        assert second.request("GET", "/readyz")[0] == 200, second.log()
        status = second.json("GET", "/api/ml/status")
        for name in MODEL_NAMES:
            now, then = status["models"][name], trained[name]
            assert now["state"] == "loaded", now
            assert now["checksum"] == then["checksum"]
            assert now["trained_at"] == then["trained_at"]
            assert now["artifact"]["etag"] == then["artifact"]["etag"]
            assert now["load_seconds"] > 0  # read from the store, not rebuilt
        assert answers(second) == before
        # Nothing was trained: no job, no training counted, no training logged.
        assert status["job"] is None
        metrics = second.request("GET", "/metrics")[1]
        assert re.search(r'^wisata_training_jobs_total\{state="succeeded"\} 0\.0$', metrics, re.M)
        assert re.search(r'^wisata_training_jobs_total\{state="failed"\} 0\.0$', metrics, re.M)
        assert second.stop() == 0
        second_log = second.log()
    assert "training job" not in second_log, second_log
    for name in MODEL_NAMES:
        assert f"{name}: LOADED" in second_log


def test_sigterm_during_a_training_stops_its_worker_and_exits_cleanly(tmp_path: Path) -> None:
    # A dataset whose training takes seconds (about 10 s of fitting on this VM), so the
    # shutdown surely arrives while the worker fits.
    spec = SyntheticSpec(n_users=10_000, n_items=2_000, n_interactions=200_000, seed=3)
    data = write_wisata(generate(spec), tmp_path / "data")
    env = {
        "WISATA_STORAGE": str(tmp_path / "models"),
        "WISATA_DATA": str(data),
        "WISATA_RELOAD_INTERVAL": "0",
        "WISATA_LOG_LEVEL": "INFO",
    }
    with ServeProcess(env) as server:
        job_id = server.json("POST", "/api/ml/train-all")["job_id"]
        deadline = time.monotonic() + JOB_TIMEOUT
        workers: list[int] = []
        while not workers:  # the fit has started in a worker below the service
            assert time.monotonic() < deadline, server.log()
            running = server.json("GET", f"/api/ml/jobs/{job_id}")
            assert running["status"] in ("queued", "running"), running
            workers = [p for p in descendants(server.pid) if niceness(p) > niceness(server.pid)]
            time.sleep(0.1)

        assert server.stop() == 0
        log = server.log()
    assert f"training job {job_id} failed" in log  # cancelled: nothing was published
    assert "stopping training worker" in log
    assert "Traceback" not in log, log
    assert not Path(f"/proc/{workers[0]}").exists()  # reaped, not left fitting
    assert not list((tmp_path / "models").glob("*.pkl"))
