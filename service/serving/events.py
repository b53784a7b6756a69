"""What the registry and the trainer report as it happens: loads, failures, jobs, publishes.

Serving code emits plain event objects on an :class:`Events` bus; observers (the Prometheus
metrics of the web layer, a test) subscribe to them. Emitting never fails the emitter: an
observer that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Event",
    "Events",
    "JobFinished",
    "JobStarted",
    "LoadFailed",
    "ModelLoaded",
    "ModelReloaded",
    "Published",
    "ReloadChecked",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLoaded:
    """An artifact was fetched, verified and is now served (startup, reload or rollback)."""

    model: str
    seconds: float


@dataclass(frozen=True)
class LoadFailed:
    """An artifact was fetched but refused (damaged, unsigned, not attachable); not served."""

    model: str
    reason: str


@dataclass(frozen=True)
class ModelReloaded:
    """A model was swapped for a new stored version without a restart."""

    model: str


@dataclass(frozen=True)
class ReloadChecked:
    """One check of the store for new versions ended; ``ok`` False when the store failed."""

    ok: bool
    seconds: float


@dataclass(frozen=True)
class JobStarted:
    """A training job began to run."""

    job_id: str


@dataclass(frozen=True)
class JobFinished:
    """A training job ended, ``state`` ``succeeded`` or ``failed``, with each model's fit time."""

    job_id: str
    state: str
    seconds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """A set of artifacts was published to the store (``error`` None) or failed to be."""

    models: tuple[str, ...]
    set_id: str | None
    error: str | None = None


Event = (
    ModelLoaded | LoadFailed | ModelReloaded | ReloadChecked | JobStarted | JobFinished | Published
)
Observer = Callable[[Event], None]


class Events:
    """A synchronous event bus: :meth:`emit` calls every subscriber in turn."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        """Call ``observer`` with every event emitted from now on."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        """Tell every subscriber; one that raises is logged, never propagated to the emitter."""
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception("an observer of %s failed", type(event).__name__)
