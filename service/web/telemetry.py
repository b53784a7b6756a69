"""Prometheus metrics of the service: requests, model versions and ages, loads, reloads, training.

Each application owns one :class:`Metrics` with its own ``CollectorRegistry``, so two apps in
one process (tests, benchmarks) never share counters. Model and storage gauges are read from the
registry at scrape time; training counters are settled at scrape time from the jobs submitted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service.ml.recommenders import MODEL_NAMES
from service.serving.registry import ModelState, ModelStatus, Registry
from service.serving.trainer import Trainer

__all__ = ["CONTENT_TYPE", "Metrics", "load_and_record", "refresh_and_record"]

_T = TypeVar("_T")

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`Metrics.exposition`."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WORK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Metrics:
    """The service's metrics and the hooks that update them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "wisata_http_requests",
            "HTTP requests answered, by method, route (its path template) and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "wisata_http_request_duration_seconds",
            "Seconds from a request's arrival to its response, by method and route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.loads = Counter(
            "wisata_model_loads",
            "Artifacts fetched and verified at startup, reload or rollback, by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "wisata_model_load_seconds",
            "Seconds to fetch, verify and unpickle one artifact.",
            ["model"],
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.reload_checks = Counter(
            "wisata_reload_checks",
            "Checks of the stored artifacts for new versions, by outcome (ok or error).",
            ["outcome"],
            registry=r,
        )
        self.reload_check_seconds = Histogram(
            "wisata_reload_check_seconds",
            "Seconds one check for new artifact versions took, reloads included.",
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "wisata_model_reloads",
            "Models swapped for a new stored version without a restart.",
            ["model"],
            registry=r,
        )
        self.training_jobs = Counter(
            "wisata_training_jobs",
            "Training jobs finished, by final state (succeeded or failed).",
            ["state"],
            registry=r,
        )
        self.training_seconds = Histogram(
            "wisata_training_seconds",
            "Seconds to fit and serialise one model in a training worker.",
            ["model"],
            buckets=_WORK_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "wisata_response_cache_lookups",
            "Lookups of recent answers before asking a model, by outcome (hit or miss).",
            ["outcome"],
            registry=r,
        )
        self._cache_hit, self._cache_miss = self.cache.labels("hit"), self.cache.labels("miss")
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._pending_jobs: set[str] = set()
        self._trainer: Trainer | None = None
        for model in MODEL_NAMES:
            self.loads.labels(model, "loaded")
            self.loads.labels(model, "failed")
        for state in ("succeeded", "failed"):
            self.training_jobs.labels(state)

    def watch(self, registry: Registry, reachable: Callable[[], bool]) -> None:
        """Report the model gauges of ``registry`` and whether storage is ``reachable``."""
        self.registry.register(_ServingCollector(registry, reachable, lambda: self._trainer))

    def watch_trainer(self, trainer: Trainer) -> None:
        """Settle the jobs of ``trainer`` at every scrape."""
        self._trainer = trainer

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:  # labels() takes a lock and builds a tuple: once per series is enough
            series = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def observe_cache(self, *, hit: bool) -> None:
        """Count one lookup of the response cache."""
        (self._cache_hit if hit else self._cache_miss).inc()

    def observe_loads(
        self, before: Mapping[str, ModelStatus], after: Mapping[str, ModelStatus]
    ) -> None:
        """Count the loads that happened between two registry snapshots."""
        for name, new in after.items():
            old = before.get(name)
            changed = old is None or (new.checksum, _etag(new)) != (old.checksum, _etag(old))
            if new.checksum is not None and changed and new.load_seconds is not None:
                self.loads.labels(name, "loaded").inc()
                self.load_seconds.labels(name).observe(new.load_seconds)
            elif _failed_since(old, new):
                self.loads.labels(name, "failed").inc()

    def observe_reload_check(self, reloaded: Iterable[str] | None, seconds: float) -> None:
        """Count one check for new versions; ``reloaded`` is None when it failed."""
        self.reload_checks.labels("error" if reloaded is None else "ok").inc()
        self.reload_check_seconds.observe(seconds)
        for name in reloaded or ():
            self.reloads.labels(name).inc()

    def track_job(self, job_id: str) -> None:
        """Remember a submitted job, to count it once it ends."""
        self._pending_jobs.add(job_id)

    def settle_jobs(self) -> None:
        """Count the tracked jobs that have ended since the last call."""
        trainer = self._trainer
        if trainer is None:
            return
        for job_id in list(self._pending_jobs):
            try:
                job = trainer.job(job_id)
            except KeyError:  # dropped from the trainer's history: nothing left to count
                self._pending_jobs.discard(job_id)
                continue
            if job.active:
                continue
            self._pending_jobs.discard(job_id)
            self.training_jobs.labels(job.state.value).inc()
            for name, seconds in job.seconds.items():
                self.training_seconds.labels(name).observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (jobs settled first)."""
        self.settle_jobs()
        return generate_latest(self.registry)


async def load_and_record(registry: Registry, metrics: Metrics, call: Awaitable[_T]) -> _T:
    """Await a registry call that loads models (startup, rollback) and count its loads."""
    before = registry.status()
    try:
        return await call
    finally:
        metrics.observe_loads(before, registry.status())


async def refresh_and_record(registry: Registry, metrics: Metrics) -> list[str]:
    """Check the store for new artifact versions (``registry.refresh``) and count the check."""
    before = registry.status()
    start = time.perf_counter()
    reloaded: list[str] | None = None
    try:
        reloaded = await registry.refresh()
    finally:
        metrics.observe_reload_check(reloaded, time.perf_counter() - start)
        metrics.observe_loads(before, registry.status())
    return reloaded


def _failed_since(old: ModelStatus | None, new: ModelStatus) -> bool:
    if new.last_error is not None and (old is None or new.last_error != old.last_error):
        return True
    return new.state is ModelState.FAILED and (old is None or old.state is not new.state)


def _etag(status: ModelStatus) -> str | None:
    return status.artifact.etag if status.artifact is not None else None


class _ServingCollector(Collector):
    """Model, storage and training gauges read from the live objects at scrape time."""

    def __init__(
        self,
        registry: Registry,
        reachable: Callable[[], bool],
        trainer: Callable[[], Trainer | None],
    ) -> None:
        self._registry = registry
        self._reachable = reachable
        self._trainer = trainer

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "wisata_model_info",
            "1 for each served model, labelled with its state, version and training time.",
            labels=["model", "state", "version", "trained_at"],
        )
        age = GaugeMetricFamily(
            "wisata_model_age_seconds",
            "Seconds since the served model was trained.",
            labels=["model"],
        )
        now = time.time()
        for name, status in self._registry.status().items():
            version = (status.checksum or "")[:12]
            info.add_metric([name, status.state.value, version, status.trained_at or ""], 1.0)
            trained = _timestamp(status.trained_at)
            if trained is not None:
                age.add_metric([name], max(0.0, now - trained))
        storage = GaugeMetricFamily(
            "wisata_storage_reachable",
            "1 when the last call to the artifact store succeeded.",
            value=1.0 if self._reachable() else 0.0,
        )
        trainer = self._trainer()
        running = GaugeMetricFamily(
            "wisata_training_in_progress",
            "1 while a training job is queued or running.",
            value=1.0 if trainer is not None and trainer.current is not None else 0.0,
        )
        return [info, age, storage, running]


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
