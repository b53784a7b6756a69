"""Serving processes of one port (``WISATA_WORKERS``): what they share, through one folder.

``wisata-serve`` with N workers starts N serving processes that each listen on the port with
SO_REUSEPORT, so the kernel spreads the connections among them. Each loads and serves the
models itself; the folder they share (``WISATA_WORKER_DIR``, made by the supervisor) keeps them
one service:

- ``training.lock``: held (``flock``) by the worker running a training job, so a training
  started through any worker runs once; ``training.json`` names that job;
- ``jobs/<id>.json``: every job's report, so any worker answers ``GET /api/ml/jobs/<id>``;
- ``worker-<n>.json``: what each worker serves (model versions), for the status;
- ``arrays/``: the served models' large arrays, mapped by every worker
  (:mod:`service.serving.sharing`).

A worker that dies releases its lock with its file descriptor: the kernel does it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["TrainingLock", "WorkerGroup"]


class TrainingLock:
    """The group's training lock, held until :meth:`release` (or the process's end)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


@dataclass(frozen=True)
class WorkerGroup:
    """One worker's view of the group's shared folder."""

    folder: Path
    worker: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerGroup | None:
        """The group this process belongs to (None when it serves alone)."""
        folder, worker = environ.get("WISATA_WORKER_DIR"), environ.get("WISATA_WORKER_ID")
        if not folder or worker is None:
            return None
        return cls(Path(folder), int(worker))

    @property
    def shared_arrays(self) -> Path:
        """Where the loaded models' arrays are kept, one copy for the group."""
        return self.folder / "arrays"

    # --- training: one at a time across the group ------------------------------------------

    def lock_training(self, job_id: str) -> TrainingLock | None:
        """Take the training lock for ``job_id``; None when another worker holds it."""
        handle = (self.folder / "training.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        _write(self.folder / "training.json", {"job_id": job_id, "worker": self.worker})
        return TrainingLock(handle)

    def training_busy(self) -> bool:
        """Whether a worker holds the training lock now."""
        handle = (self.folder / "training.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            handle.close()  # closing releases a lock taken here
        return False

    def training_job(self) -> str | None:
        """The id of the job holding the training lock, as far as the folder says."""
        found = _read(self.folder / "training.json")
        return None if found is None else str(found.get("job_id"))

    def save_job(self, job_id: str, report: str) -> None:
        """Keep a job's report (JSON) where every worker reads it."""
        jobs = self.folder / "jobs"
        jobs.mkdir(exist_ok=True)
        _write_text(jobs / f"{job_id}.json", report)

    def job(self, job_id: str) -> str | None:
        """A job's report as its worker last saved it (None when no worker ran it)."""
        if not job_id.isalnum():
            return None
        with contextlib.suppress(OSError):
            return (self.folder / "jobs" / f"{job_id}.json").read_text()
        return None

    # --- what each worker serves ----------------------------------------------------------

    def announce(self, models: Mapping[str, str | None]) -> None:
        """Record the versions this worker serves now."""
        entry = {"worker": self.worker, "pid": os.getpid(), "models": dict(models)}
        _write(self.folder / f"worker-{self.worker}.json", {**entry, "updated": time.time()})

    def members(self) -> list[dict[str, Any]]:
        """Every live worker's last record, by worker number."""
        found = []
        for path in sorted(self.folder.glob("worker-*.json")):
            entry = _read(path)
            if entry is not None and _alive(int(entry.get("pid", 0))):
                found.append(entry)
        return sorted(found, key=lambda entry: int(entry["worker"]))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: Path, value: Mapping[str, Any]) -> None:
    _write_text(path, json.dumps(value))


def _write_text(path: Path, text: str) -> None:
    # Write then rename: a reader sees the old file or the new one, never half of one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
