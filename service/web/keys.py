"""Every typed key the application and its requests store values under."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.config import Config
from service.serving.registry import Registry
from service.serving.trainer import Trainer
from service.web.cache import ResponseCache
from service.web.telemetry import Metrics
from storage import ArtifactStore

__all__ = [
    "CACHE",
    "CONFIG",
    "EXECUTOR",
    "METRICS",
    "OPENAPI",
    "REGISTRY",
    "ROUTE_LABEL",
    "STORAGE",
    "STORE",
    "TRAINER",
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


CACHE = web.AppKey("cache", ResponseCache)
CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
OPENAPI = web.AppKey("openapi", dict[str, Any])
STORE = web.AppKey("store", ArtifactStore)
STORAGE = web.AppKey("storage", StorageState)
EXECUTOR = web.AppKey("executor", Executor)
REGISTRY = web.AppKey("registry", Registry)
TRAINER = web.AppKey("trainer", Trainer)

#: The route's canonical path, for requests the router could not match (CORS preflights).
ROUTE_LABEL = web.RequestKey("route_label", str)
