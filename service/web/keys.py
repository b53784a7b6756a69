"""Every typed key the application and its requests store values under."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from service.config import Config
from service.serving.feedback import Feedback
from service.serving.registry import Registry
from service.serving.trainer import Trainer
from service.serving.workers import WorkerGroup
from service.web.cache import ResponseCache
from service.web.telemetry import Metrics
from storage import ArtifactStore

__all__ = [
    "CACHE",
    "CONFIG",
    "EXECUTOR",
    "FEEDBACK",
    "GROUP",
    "METRICS",
    "OPENAPI",
    "REGISTRY",
    "ROUTES",
    "ROUTE_LABEL",
    "STORAGE",
    "STORE",
    "TRAINER",
    "DocumentFor",
    "StorageState",
]


@dataclass
class StorageState:
    """Whether the service has reached its store since it started.

    ``connected`` turns true once the store answered, the bucket exists and the startup load
    ran; until then ``error`` says why not (the registry's own flag covers later failures).
    """

    connected: bool = False
    error: str | None = "not contacted yet"


class DocumentFor(Protocol):
    """Gives the OpenAPI document whose ratings' bounds are ``scale``."""

    def __call__(self, scale: tuple[float, float] | None, /) -> dict[str, Any]: ...


CACHE = web.AppKey("cache", ResponseCache)
CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
OPENAPI = web.AppKey("openapi", DocumentFor)
"""The OpenAPI document for a rating scale (None: no model served), built once per scale."""
STORE = web.AppKey("store", ArtifactStore)
STORAGE = web.AppKey("storage", StorageState)
EXECUTOR = web.AppKey("executor", Executor)
REGISTRY = web.AppKey("registry", Registry)
TRAINER = web.AppKey("trainer", Trainer)
FEEDBACK = web.AppKey("feedback", Feedback)
GROUP = web.AppKey("group", WorkerGroup)
"""The ratings store and the recent ratings; present only when WISATA_DATA is a database."""
ROUTES = web.AppKey("routes", tuple[Any, ...])
"""The routes this service serves (the feedback routes only with a database)."""

#: The route's canonical path, for requests the router could not match (CORS preflights).
ROUTE_LABEL = web.RequestKey("route_label", str)
