"""Training: fit and serialise in a worker process, then publish and swap on the event loop.

:func:`build_artifacts` is the one training code path: the service runs it in a process pool and
the ``wisata-retrain`` job calls it directly. It returns artifact bytes, so all that crosses the
process boundary back is bytes and timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service import artifacts
from service.artifacts import DatasetSummary
from service.errors import TrainingInProgress, UnknownJob, UnknownModel
from service.ml.datasets import Dataset, load_dataset
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)
from service.serving.registry import Registry

__all__ = [
    "BuildResult",
    "Job",
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

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data."""

        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "job_id": self.id,
            "models": list(self.models),
            "status": self.state.value,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "seconds": dict(self.seconds),
            "error": self.error,
            "persisted": {
                name: "yes" if error is None else f"no: {error}"
                for name, error in self.persisted.items()
            },
        }


@dataclass(frozen=True)
class BuildResult:
    """Artifact bytes by model name, and the fit seconds of each."""

    artifacts: dict[str, bytes]
    seconds: dict[str, float]
    dataset: DatasetSummary


def ordered_models(models: Sequence[str]) -> tuple[str, ...]:
    """Validate model names and put them in training order (the hybrid last)."""
    for name in models:
        if name not in MODEL_NAMES:
            raise UnknownModel(name, MODEL_NAMES)
    return tuple(name for name in MODEL_NAMES if name in models)


def summarize(dataset: Dataset) -> DatasetSummary:
    """The dataset facts an artifact records."""
    return DatasetSummary(
        fingerprint=dataset.fingerprint(),
        items=dataset.n_items,
        users=dataset.n_users,
        interactions=dataset.n_interactions,
    )


def build_artifacts(
    data: str | Path | Dataset,
    models: Sequence[str] = MODEL_NAMES,
    *,
    key: bytes | None = None,
    hybrid_weight: float | str = "auto",
    sub_models: Mapping[str, tuple[Recommender, str]] | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
) -> BuildResult:
    """Fit ``models`` on the dataset and return their artifacts.

    Parameters
    ----------
    data : path or Dataset
        The dataset directory (read here, in the worker) or an already loaded dataset.
    models : sequence of str
        Which models to build; the hybrid is built last, from the content and collaborative
        models fitted in the same call or else from ``sub_models``.
    key : bytes or None
        HMAC key to sign the artifacts with.
    hybrid_weight : float or "auto"
        The hybrid's content weight.
    sub_models : mapping, optional
        Fitted sub-models and their artifact checksums, for building the hybrid alone.
    metrics : mapping, optional
        Evaluation metrics to record in each model's artifact.
    """
    order = ordered_models(models)
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    summary = summarize(dataset)
    available: dict[str, tuple[Recommender, str]] = dict(sub_models or {})
    built: dict[str, bytes] = {}
    seconds: dict[str, float] = {}
    for name in order:
        start = time.perf_counter()
        parents: dict[str, str] = {}
        model: Recommender
        if name == Hybrid.name:
            content, collaborative = _parents(available)
            parents = {ContentBased.name: content[1], Collaborative.name: collaborative[1]}
            model = Hybrid(
                content=content[0],
                collaborative=collaborative[0],
                content_weight=hybrid_weight,  # type: ignore[arg-type]
            ).fit(dataset)
        else:
            model = (ContentBased() if name == ContentBased.name else Collaborative()).fit(dataset)
        seconds[name] = time.perf_counter() - start
        data_bytes = artifacts.dump(
            model,
            model_name=name,
            dataset=summary,
            training_seconds=seconds[name],
            metrics=(metrics or {}).get(name),
            parents=parents,
            params=_params(model),
            key=key,
        )
        built[name] = data_bytes
        available[name] = (model, artifacts.read_header(data_bytes).payload_sha256)
    return BuildResult(artifacts=built, seconds=seconds, dataset=summary)


def _parents(
    available: Mapping[str, tuple[Recommender, str]],
) -> tuple[tuple[Recommender, str], tuple[Recommender, str]]:
    missing = [n for n in (ContentBased.name, Collaborative.name) if n not in available]
    if missing:
        raise RuntimeError(
            f"cannot build the hybrid: {' and '.join(missing)} not trained; train all three"
        )
    return available[ContentBased.name], available[Collaborative.name]


def _params(model: Recommender) -> dict[str, str]:
    params = model.get_params(deep=False)
    text = {
        name: str(value) for name, value in params.items() if not isinstance(value, Recommender)
    }
    if isinstance(model, Hybrid):
        text["weights"] = ",".join(f"{w:g}" for w in model.weights_)
    return text


def _lower_priority() -> None:
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: training still works, only at normal priority
        logger.warning("could not lower the training worker's CPU priority")


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
    workers = list(executor._processes.values())  # no public way to stop them before 3.14
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


class Trainer:
    """Runs one training job at a time in ``executor`` and hands the results to the registry."""

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        *,
        data_dir: Path,
        key: bytes | None = None,
        hybrid_weight: float | str = "auto",
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.data_dir = data_dir
        self.key = key
        self.hybrid_weight = hybrid_weight
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
        self._jobs[job.id] = job
        for old in list(self._jobs)[:-MAX_JOBS_KEPT]:
            del self._jobs[old]
            self._tasks.pop(old, None)
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job))
        return job

    async def wait(self, job_id: str) -> Job:
        """Wait until a job has ended and return it."""
        job = self.job(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return job

    async def _run(self, job: Job) -> None:
        job.state, job.started_at = JobState.RUNNING, datetime.now(UTC)
        logger.info("training job %s started: %s", job.id, ", ".join(job.models))
        try:
            sub_models = self.registry.sub_models() if job.models == (Hybrid.name,) else None
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                _build_in_worker,
                str(self.data_dir),
                job.models,
                self.key,
                self.hybrid_weight,
                sub_models,
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
            logger.info("training job %s %s", job.id, job.state.value)

    async def close(self) -> None:
        """Cancel a running job at shutdown and wait for it to end."""
        for task in self._tasks.values():
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _build_in_worker(
    data_dir: str,
    models: tuple[str, ...],
    key: bytes | None,
    hybrid_weight: float | str,
    sub_models: Mapping[str, tuple[Recommender, str]] | None,
) -> BuildResult:
    # Module-level so the process pool can pickle a reference to it.
    return build_artifacts(
        data_dir, models, key=key, hybrid_weight=hybrid_weight, sub_models=sub_models
    )
