"""Training jobs: one at a time, fitted in a worker process, then published and swapped.

A job hands a worker of the process pool where the dataset is (and, for a hybrid built alone,
the stored bytes of the sub-models it is built from); the worker runs
:func:`service.serving.building.train` and returns artifact bytes. Back on the event loop the
registry verifies, publishes and serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from service.errors import TrainingInProgress, UnknownJob
from service.ml.model_set import HybridWeight, ordered_models
from service.ml.recommenders import Hybrid
from service.serving.building import BuildResult, build_artifacts, train
from service.serving.events import Events, JobFinished, JobStarted
from service.serving.registry import Registry
from service.serving.workers import TrainingLock, WorkerGroup

__all__ = [
    "MAX_JOBS_KEPT",
    "BuildResult",
    "Job",
    "JobReport",
    "JobState",
    "Trainer",
    "TrainingInProgress",
    "build_artifacts",
    "make_executor",
    "ordered_models",
    "stop_executor",
]

logger = logging.getLogger(__name__)

#: Niceness added to training workers so request handling keeps the CPU it needs.
WORKER_NICENESS = 10
MAX_JOBS_KEPT = 50


class JobState(enum.StrEnum):
    """Where a training job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobReport(BaseModel):
    """A training job as the API and the dashboard show it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    models: list[str]
    status: JobState
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: dict[str, float]
    error: str | None
    persisted: dict[str, str]


@dataclass
class Job:
    """One training request and what became of it."""

    id: str
    models: tuple[str, ...]
    state: JobState = JobState.QUEUED
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    persisted: dict[str, str | None] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    def report(self) -> JobReport:
        """The job as the API shows it."""
        return JobReport(
            job_id=self.id,
            models=list(self.models),
            status=self.state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            seconds=dict(self.seconds),
            error=self.error,
            persisted={
                name: "yes" if error is None else f"no: {error}"
                for name, error in self.persisted.items()
            },
        )


def _lower_priority() -> None:
    # The niceness, and then SCHED_IDLE where Linux has it: the worker runs only on CPU time
    # nothing else wants, and a waking web process takes the core at once (bench.http: p99 while
    # train-all jobs run 2.46x idle with the niceness alone, 1.29x with SCHED_IDLE).
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: training still works, only at normal priority
        logger.warning("could not lower the training worker's CPU priority")
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def make_executor(workers: int = 1) -> ProcessPoolExecutor:
    """A process pool for training, its workers at a lower CPU priority than the web process.

    The workers start from a fork server, not by forking the web process: that process runs
    threads (the event loop's executor, the S3 client's), and a child forked from it would
    inherit any lock one of them held at that moment, held forever. The fork server imports this
    module once, so a worker starts without paying for the imports again.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_lower_priority)


def stop_executor(executor: ProcessPoolExecutor, grace: float = 5.0) -> None:
    """Shut the pool down without waiting for a fit: terminate its workers, then reap them.

    Blocking; call it in a thread. A worker that ignores SIGTERM for ``grace`` seconds is killed.
    """
    # No public way to stop the workers before 3.14. The manager thread is taken now because the
    # first shutdown drops the executor's reference to it, which a later shutdown would wait on.
    workers = list(executor._processes.values())
    manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            logger.info("stopping training worker %s", worker.pid)
            worker.terminate()
    for worker in workers:
        worker.join(grace)
        if worker.is_alive():
            worker.kill()
            worker.join()
    # The manager thread closes its wake-up pipe once it sees the workers gone. Waiting for it
    # here keeps the interpreter's exit hook from writing to that pipe while it closes (EBADF).
    if manager is not None:
        manager.join(grace)
        if manager.is_alive():
            logger.warning("the training pool's manager thread did not stop in %.0f s", grace)


class Trainer:
    """Runs one training job at a time in ``executor`` and hands the results to the registry.

    Parameters
    ----------
    registry : Registry
        Publishes and serves what a job built.
    executor : Executor
        Where the fits run (a process pool: see :func:`make_executor`).
    data_dir : path or str
        Where the dataset is, read by the worker.
    key : bytes, optional
        HMAC key the artifacts are signed with.
    hybrid_weight : float or "auto"
        The hybrid's content weight.
    events : Events, optional
        Where jobs starting and ending are reported (default: the registry's).
    group : WorkerGroup, optional
        The serving processes sharing this port: a job runs in one of them at a time, and
        every one of them reports it.
    """

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        *,
        data_dir: Path | str,
        key: bytes | None = None,
        hybrid_weight: HybridWeight = "auto",
        events: Events | None = None,
        group: WorkerGroup | None = None,
    ) -> None:
        self.registry = registry
        self.group = group
        self._locks: dict[str, TrainingLock] = {}
        self.executor = executor
        self.data_dir = data_dir
        self.key = key
        self.hybrid_weight = hybrid_weight
        self.events = events if events is not None else registry.events
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def current(self) -> Job | None:
        """The queued or running job, if any."""
        return next((job for job in self._jobs.values() if job.active), None)

    def job(self, job_id: str) -> Job:
        """Return a job by id; :class:`~service.errors.UnknownJob` when unknown."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownJob(job_id, MAX_JOBS_KEPT) from None

    def submit(self, models: Sequence[str]) -> Job:
        """Start training ``models``; raises :class:`TrainingInProgress` while one runs."""
        order = ordered_models(models)
        running = self.current
        if running is not None:
            raise TrainingInProgress(running.id)
        job = Job(id=uuid.uuid4().hex[:12], models=order)
        if self.group is not None:
            lock = self.group.lock_training(job.id)
            if lock is None:
                raise TrainingInProgress(self.group.training_job() or "of another worker")
            self._locks[job.id] = lock
            self._share(job)
        self._jobs[job.id] = job
        for old in list(self._jobs)[:-MAX_JOBS_KEPT]:
            del self._jobs[old]
            self._tasks.pop(old, None)
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job))
        return job

    def report(self, job_id: str) -> JobReport:
        """A job's report: this process's job, or one another worker of the group runs."""
        with contextlib.suppress(UnknownJob):
            return self.job(job_id).report()
        shared = None if self.group is None else self.group.job(job_id)
        if shared is None:
            raise UnknownJob(job_id, MAX_JOBS_KEPT)
        return JobReport.model_validate_json(shared)

    def shared_running(self) -> JobReport | None:
        """The job another worker of the group is running, if one is."""
        if self.group is None or not self.group.training_busy():
            return None
        job_id = self.group.training_job()
        report = None if job_id is None else self.group.job(job_id)
        return None if report is None else JobReport.model_validate_json(report)

    def _share(self, job: Job) -> None:
        if self.group is not None:
            self.group.save_job(job.id, job.report().model_dump_json())

    async def wait(self, job_id: str) -> Job:
        """Wait until a job has ended and return it."""
        job = self.job(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return job

    async def _run(self, job: Job) -> None:
        job.state, job.started_at = JobState.RUNNING, datetime.now(UTC)
        self._share(job)
        logger.info("training job %s started: %s", job.id, ", ".join(job.models))
        self.events.emit(JobStarted(job.id))
        try:
            sub_artifacts: Mapping[str, bytes] | None = None
            if job.models == (Hybrid.name,):
                sub_artifacts = await self.registry.sub_model_artifacts()
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                _train_in_worker,
                str(self.data_dir),
                job.models,
                self.key,
                self.hybrid_weight,
                sub_artifacts,
            )
            job.seconds = {name: round(s, 3) for name, s in result.seconds.items()}
            job.persisted = await self.registry.install(result.artifacts)
            job.state = JobState.SUCCEEDED
        except asyncio.CancelledError:
            job.state, job.error = JobState.FAILED, "cancelled: the service shut down"
            raise
        except Exception as e:
            job.state, job.error = JobState.FAILED, f"{type(e).__name__}: {e}"
            logger.exception("training job %s failed", job.id)
        finally:
            job.finished_at = datetime.now(UTC)
            self._share(job)
            lock = self._locks.pop(job.id, None)
            if lock is not None:
                lock.release()
            logger.info("training job %s %s", job.id, job.state.value)
            self.events.emit(JobFinished(job.id, job.state.value, dict(job.seconds)))

    async def close(self) -> None:
        """Cancel a running job at shutdown and wait for it to end."""
        for task in self._tasks.values():
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _train_in_worker(
    data_dir: str,
    models: tuple[str, ...],
    key: bytes | None,
    hybrid_weight: HybridWeight,
    sub_artifacts: Mapping[str, bytes] | None,
) -> BuildResult:
    # Module-level so the process pool can pickle a reference to it.
    return train(
        data_dir, models, key=key, hybrid_weight=hybrid_weight, sub_artifacts=sub_artifacts
    )
