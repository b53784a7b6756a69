"""A read-only look at a store: would each model load, verify and belong with the others?

What ``wisata-status`` reports. It reads what the service would serve (the versions before an
unfinished publish included), checks and unpickles each artifact the way the registry does, and
attaches the hybrid to the sub-models it was built with, but it serves nothing, reloads nothing
and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from service.artifacts import ArtifactError
from service.ml.recommenders import MODEL_NAMES, Hybrid, Recommender
from service.serving.journal import Survey, UnfinishedPublish, survey
from service.serving.loader import ArtifactLoader
from service.serving.status import ModelState, ModelStatus, staleness
from storage import ArtifactStore, NotFound, ObjectInfo

__all__ = ["Inspection", "inspect"]


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found: each model's current object and its status."""

    current: Mapping[str, ObjectInfo | None]
    models: dict[str, ModelStatus]
    unfinished_publish: UnfinishedPublish | None

    def missing(self) -> dict[str, str]:
        """Models that would not be ready, with the reason."""
        return {
            name: f"{status.state.value}: {status.reason}"
            for name, status in self.models.items()
            if status.state is not ModelState.LOADED
        }


async def inspect(store: ArtifactStore, key: bytes | None = None) -> Inspection:
    """Load every model of ``store`` as the service would at startup, and report on each.

    Raises
    ------
    storage.StorageError
        If the store cannot be read.
    """
    loader = ArtifactLoader(store, key)
    found = await loader.call(survey(store))
    served: dict[str, tuple[Recommender, str]] = {}
    statuses: dict[str, ModelStatus] = {}
    for name in MODEL_NAMES:
        statuses[name] = await _model(loader, found, name, served)
    return Inspection(found.current, statuses, found.unfinished())


async def _model(
    loader: ArtifactLoader,
    found: Survey,
    name: str,
    served: dict[str, tuple[Recommender, str]],
) -> ModelStatus:
    planned = found.held.get(name)
    if planned is not None and planned.previous is None:
        return _empty(name, "its only artifact is from an unfinished publish; train again")
    try:
        data, info = await loader.fetch(name, found.served_version(name))
    except NotFound:
        return _empty(name, "no artifact in the store yet")
    try:
        model, header = await asyncio.to_thread(loader.verify, data, name)
    except ArtifactError as e:
        refused = f"{type(e).__name__}: {e}"
        return ModelStatus.of(name, ModelState.FAILED, refused, info=info, last_error=refused)
    state: ModelState = ModelState.LOADED
    reason: str | None = None
    if isinstance(model, Hybrid):
        problem = await loader.attach(model, header, served)
        if problem is not None:
            return ModelStatus.of(name, ModelState.NOT_TRAINED, problem, info=info)
        reason = staleness(header.parents, {n: c for n, (_, c) in served.items()})
        state = ModelState.STALE if reason else state
    else:
        served[name] = (model, header.payload_sha256)
    return ModelStatus.of(name, state, reason, model=model, header=header, info=info)


def _empty(name: str, reason: str) -> ModelStatus:
    return ModelStatus.of(name, ModelState.NOT_TRAINED, reason)
