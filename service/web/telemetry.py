"""Prometheus metrics of the service: requests, model versions and ages, loads, reloads, training.

Each application owns one :class:`Metrics` with its own ``CollectorRegistry``, so two apps in
one process (tests, benchmarks) never share counters. Loads, reloads, jobs and publishes are
counted from the serving layer's events (:mod:`service.serving.events`), which :meth:`Metrics.
observe` subscribes to; model and storage gauges are read from the registry at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service.ml.recommenders import MODEL_NAMES
from service.serving.events import (
    Event,
    JobFinished,
    JobStarted,
    LoadFailed,
    ModelLoaded,
    ModelReloaded,
    Published,
    ReloadChecked,
)
from service.serving.registry import Registry

__all__ = ["CONTENT_TYPE", "Metrics"]

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
        self.publishes = Counter(
            "wisata_model_publishes",
            "Artifacts published to the store by this process, by outcome (ok or failed).",
            ["model", "outcome"],
            registry=r,
        )
        self._cache_hit, self._cache_miss = self.cache.labels("hit"), self.cache.labels("miss")
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._running: set[str] = set()
        for model in MODEL_NAMES:
            self.loads.labels(model, "loaded")
            self.loads.labels(model, "failed")
        for state in ("succeeded", "failed"):
            self.training_jobs.labels(state)

    def watch(self, registry: Registry, reachable: Callable[[], bool]) -> None:
        """Report the model gauges of ``registry`` and whether storage is ``reachable``."""
        self.registry.register(_ServingCollector(registry, reachable, lambda: bool(self._running)))

    def observe(self, event: Event) -> None:
        """Count one event of the serving layer (subscribe this to the registry's events)."""
        if isinstance(event, ModelLoaded):
            self.loads.labels(event.model, "loaded").inc()
            self.load_seconds.labels(event.model).observe(event.seconds)
        elif isinstance(event, LoadFailed):
            self.loads.labels(event.model, "failed").inc()
        elif isinstance(event, ModelReloaded):
            self.reloads.labels(event.model).inc()
        elif isinstance(event, ReloadChecked):
            self.reload_checks.labels("ok" if event.ok else "error").inc()
            self.reload_check_seconds.observe(event.seconds)
        elif isinstance(event, JobStarted):
            self._running.add(event.job_id)
        elif isinstance(event, JobFinished):
            self._running.discard(event.job_id)
            self.training_jobs.labels(event.state).inc()
            for name, seconds in event.seconds.items():
                self.training_seconds.labels(name).observe(seconds)
        elif isinstance(event, Published):
            for name in event.models:
                self.publishes.labels(name, "ok" if event.error is None else "failed").inc()

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

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _ServingCollector(Collector):
    """Model, storage and training gauges read from the live objects at scrape time."""

    def __init__(
        self,
        registry: Registry,
        reachable: Callable[[], bool],
        training: Callable[[], bool],
    ) -> None:
        self._registry = registry
        self._reachable = reachable
        self._training = training

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
        running = GaugeMetricFamily(
            "wisata_training_in_progress",
            "1 while a training job is running.",
            value=1.0 if self._training() else 0.0,
        )
        return [info, age, storage, running]


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
