"""``WISATA_WORKERS=2``: two serving processes on one port, one model version, one training.

A real ``python -m service`` supervisor and its two workers, on a local artifact folder; every
request below opens a new connection, so the kernel spreads them over both workers.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ServeProcess

pytestmark = pytest.mark.slow

RELOAD = 0.5
TIMEOUT = 120.0


def workers_env(tmp_path: Path) -> dict[str, str]:
    return {
        "WISATA_STORAGE": str(tmp_path / "models"),
        "WISATA_WORKERS": "2",
        "WISATA_RELOAD_INTERVAL": str(RELOAD),
        "WISATA_LOG_LEVEL": "INFO",
    }


def wait_until(check: Any, timeout: float, what: str, server: ServeProcess) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout} s:\n{server.log()}")


def both_workers(server: ServeProcess) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = server.json("GET", "/api/ml/status")["workers"]
    return members if len(members) == 2 else []


def test_a_training_runs_once_and_every_worker_then_answers_with_its_version(
    tmp_path: Path,
) -> None:
    with ServeProcess(workers_env(tmp_path)) as server:
        wait_until(lambda: both_workers(server), TIMEOUT, "two workers did not report", server)

        job_id = server.json("POST", "/api/ml/train-all")["job_id"]
        refused = [server.request("POST", "/api/ml/train-all") for _ in range(6)]
        assert {status for status, _ in refused} == {409}, refused
        assert all(answer["error"] == "training_in_progress" for _, answer in refused)
        job = server.wait_job(job_id, TIMEOUT)  # polled through both workers
        assert job["status"] == "succeeded", job

        def one_version() -> dict[str, Any] | None:
            members = both_workers(server)
            versions = [m["models"] for m in members]
            agreed = len(versions) == 2 and versions[0] == versions[1]
            return versions[0] if agreed and None not in versions[0].values() else None

        served = wait_until(one_version, 10 * RELOAD + 5, "the workers did not agree", server)
        answered_by = set()
        for i in range(30):
            path = f"/api/frontend/recommendations?user_id=u{i + 1:03d}&limit=5"
            answer = server.json("GET", path)
            assert answer["model_version"] == served["hybrid"]
            answered_by.add(server.json("GET", "/api/ml/status")["worker"]["worker"])
        assert answered_by == {0, 1}  # both workers answered, with the same version
        for name in ("content_based", "collaborative", "hybrid"):  # published once
            stored = server.json("GET", f"/api/ml/models/{name}/versions")["versions"]
            assert len(stored) == 1, (name, stored)
        # Both workers map the models' arrays from the same files: one copy in memory.
        maps = [shared_files(member["pid"]) for member in both_workers(server)]
        assert maps[0] and maps[0] == maps[1], maps
        assert {path.name.split("-")[0] for path in maps[0]} >= {"collaborative", "hybrid"}


def shared_files(pid: int) -> set[Path]:
    """The group's array files the process ``pid`` has mapped."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    paths = {Path(line.split(maxsplit=5)[5]) for line in lines if line.endswith(".npy")}
    return {path for path in paths if path.parent.name == "arrays"}


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    with ServeProcess(workers_env(tmp_path)) as server:
        first = wait_until(lambda: both_workers(server), TIMEOUT, "no two workers", server)
        pids = {m["worker"]: m["pid"] for m in first}
        os.kill(pids[0], signal.SIGKILL)

        def replaced() -> dict[int, int] | None:
            # A connection the kernel had queued on the killed worker's socket is reset: a
            # known cost of SO_REUSEPORT; clients retry, as this poll does.
            try:
                now = {m["worker"]: m["pid"] for m in both_workers(server)}
            except OSError:
                return None
            return now if len(now) == 2 and now[0] != pids[0] else None

        now = wait_until(replaced, TIMEOUT, "the killed worker was not replaced", server)
        assert now[1] == pids[1]  # the other one kept serving
        assert server.request("GET", "/healthz")[0] == 200

        assert server.stop() == 0
        log = server.log()
    assert "worker 0" in log and "starting a new one" in log
    for pid in now.values():
        assert not Path(f"/proc/{pid}").exists()
    assert "Traceback" not in log, log
