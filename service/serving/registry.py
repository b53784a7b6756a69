"""The models being served: loaded from the store, verified, swapped whole, reloaded on change.

Each model sits in a slot that is replaced, never mutated, so a request always sees one complete
model. The hybrid holds references to the exact sub-model objects it was attached to: when a
sub-model is replaced the hybrid keeps serving with its own pair (reported ``stale``) until a
hybrid built from the new pair arrives. Nothing here raises for a bad artifact: a model that
cannot be loaded is ``failed`` or ``not_trained`` with the reason, and a model already serving
keeps serving.

Readers follow the publish journal (:mod:`service.serving.journal`): while a publish is
unfinished, in this process or another, or was interrupted, the artifacts it already placed are
held back and their previous versions served, so the set loaded is all old or all new. Writing
goes through the :class:`~service.serving.publisher.Publisher`; :meth:`Registry.install` only
verifies, hands the artifacts to it and serves what it published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.artifacts import ArtifactError, ArtifactHeader
from service.errors import ModelNotTrained, UnknownModel
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)
from service.serving.events import Events, LoadFailed, ModelLoaded, ModelReloaded, ReloadChecked
from service.serving.journal import Survey, UnfinishedPublish, artifact_key, survey
from service.serving.loader import ArtifactLoader
from service.serving.publisher import Progress, Publisher
from service.serving.slot import Slot
from service.serving.status import ModelState, ModelStatus, staleness, summary_lines
from storage import ArtifactStore, NotFound, ObjectInfo, StorageError

__all__ = [
    "ModelNotTrained",
    "ModelState",
    "ModelStatus",
    "Registry",
    "UnknownModel",
    "artifact_key",
]

logger = logging.getLogger(__name__)
_SUB_MODELS = (ContentBased.name, Collaborative.name)


class Registry:
    """The three served models and the store they come from.

    Parameters
    ----------
    store : ArtifactStore
        An opened store.
    key : bytes, optional
        HMAC key every artifact must be signed with.
    events : Events, optional
        Where loads, failures and reloads are reported (shared with the publisher).
    shared_arrays : Path, optional
        A worker group's folder where the loaded models' arrays are kept for every worker.
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        key: bytes | None = None,
        events: Events | None = None,
        shared_arrays: Path | None = None,
    ) -> None:
        self.store = store
        self.events = events if events is not None else Events()
        self.publisher = Publisher(store, self.events)
        self._loader = ArtifactLoader(store, key, shared_arrays)
        self._slots: dict[str, Slot] = {name: Slot() for name in MODEL_NAMES}
        self._lock = asyncio.Lock()
        self.loaded_once = False
        self._unfinished: UnfinishedPublish | None = None

    # --- reading ---------------------------------------------------------------------------------

    @property
    def unfinished(self) -> UnfinishedPublish | None:
        """The publish whose artifacts are held back, as the status reports it; None if none."""
        return self._unfinished

    @property
    def unfinished_publish(self) -> dict[str, Any] | None:
        """The publish whose artifacts are held back, as the status shows it; None if none."""
        return None if self._unfinished is None else self._unfinished.model_dump(mode="json")

    @property
    def storage_available(self) -> bool:
        """Whether the store answered the last call."""
        return self._loader.storage_available

    @property
    def storage_error(self) -> str | None:
        """Why the last call to the store failed, if it did."""
        return self._loader.storage_error

    def model(self, name: str) -> Recommender:
        """Return the model serving as ``name``."""
        slot = self._slot(name)
        if slot.model is None:
            raise ModelNotTrained(name, slot.reason or slot.state.value)
        return slot.model

    def served(self, name: str) -> Slot:
        """What serves as ``name`` now (its model may be None, with the reason)."""
        return self._slot(name)

    def identity(self, name: str) -> str:
        """What tells two served versions of ``name`` apart (see :meth:`Slot.identity`)."""
        return self._slot(name).identity()

    def version(self, name: str) -> str:
        """Short version of the served model, as answers show it: the start of its identity."""
        return self.identity(name)[:12]

    def rating_scale(self) -> tuple[float, float] | None:
        """The scale of the served models' data (None while nothing serves)."""
        return next(
            (scale for name in MODEL_NAMES if (scale := self._slot(name).rating_scale())), None
        )

    def header(self, name: str) -> ArtifactHeader | None:
        """The artifact header of the model serving as ``name``, if any."""
        return self._slot(name).header

    def status(self) -> dict[str, ModelStatus]:
        """Status of every model, in training order."""
        return {name: self._status(name) for name in MODEL_NAMES}

    def missing(self) -> dict[str, str]:
        """Models not fully ready, with the reason (for readiness checks)."""
        return {
            name: f"{status.state.value}: {status.reason}"
            for name, status in self.status().items()
            if status.state is not ModelState.LOADED
        }

    def summary_lines(self) -> list[str]:
        """One line per model an operator can read at a glance (and the unfinished publish)."""
        return summary_lines(self.status(), self._unfinished)

    def sub_models(self) -> dict[str, tuple[Recommender, str]]:
        """The served content and collaborative models with their checksums."""
        found = {}
        for name in _SUB_MODELS:
            slot = self._slots[name]
            if slot.model is not None and slot.header is not None:
                found[name] = (slot.model, slot.header.payload_sha256)
        return found

    async def sub_model_artifacts(self) -> dict[str, bytes]:
        """The stored artifacts of the served content and collaborative models.

        What a worker builds a hybrid alone from: the very versions being served, read back
        from the store (never the live objects), each checked to be the served one.
        """
        found: dict[str, bytes] = {}
        for name in _SUB_MODELS:
            slot = self._slots[name]
            # Not persisted: what serves is not in the store, so no hybrid could name it.
            if slot.header and slot.artifact and slot.state is not ModelState.NOT_PERSISTED:
                data = await self._loader.stored(name, slot.artifact, slot.header.payload_sha256)
                if data is not None:
                    found[name] = data
        return found

    # --- loading ---------------------------------------------------------------------------------

    async def load_all(self) -> None:
        """Load every artifact at startup; only an unreachable store raises."""
        async with self._lock:
            found = await self._survey()
            for name in MODEL_NAMES:
                planned = found.held.get(name)
                previous = None if planned is None else planned.previous
                if planned is None or (previous is not None and previous.version_id is None):
                    await self._load(name)  # no versions kept: the new artifact or nothing
                elif previous is not None:
                    await self._load(name, previous.version_id)
                else:
                    reason = "its only artifact is from an unfinished publish; train again"
                    self._set(name, Slot(reason=reason))
            self.loaded_once = True

    async def refresh(self) -> list[str]:
        """Reload the artifacts that changed since they were loaded; return their names.

        An artifact held back by an unfinished publish is not swapped in until the publish
        completes: the version it replaces keeps serving (or is loaded, when something else is).
        """
        start = time.perf_counter()
        ok = False
        try:
            async with self._lock:
                reloaded = await self._refresh(await self._survey())
            ok = True
        finally:
            self.events.emit(ReloadChecked(ok, time.perf_counter() - start))
        for name in reloaded:
            self.events.emit(ModelReloaded(name))
        return reloaded

    async def _refresh(self, found: Survey) -> list[str]:
        reloaded = []
        for name in MODEL_NAMES:
            slot = self._slots[name]
            info = found.current[name]
            if info is None:
                if slot.model is not None and slot.state is not ModelState.NOT_PERSISTED:
                    self._set(name, replace(slot, last_error="artifact missing from the store"))
                continue
            known = slot.artifact.etag if slot.artifact else None
            wanted, version_id = info.etag, None
            if name in found.held:
                previous = found.held[name].previous
                if previous is None or previous.version_id is None:
                    continue  # nothing older can be read: keep what is served, if anything
                wanted, version_id = previous.etag, previous.version_id
            if wanted != known and await self._load(name, version_id):
                reloaded.append(name)
        if reloaded and Hybrid.name not in reloaded and await self._retry_hybrid():
            reloaded.append(Hybrid.name)
        return reloaded

    async def rollback(self, name: str, version_id: str) -> ModelStatus:
        """Make an older stored version current again and serve it."""
        self._slot(name)
        async with self._lock:
            await self._loader.call(self.store.restore(artifact_key(name), version_id))
            if await self._load(name) and name != Hybrid.name:
                await self._retry_hybrid()
        return self._status(name)

    async def versions(self, name: str) -> list[ObjectInfo]:
        """Stored versions of a model's artifact, newest first."""
        self._slot(name)
        try:
            return await self._loader.call(self.store.versions(artifact_key(name)))
        except NotFound:
            return []

    async def install(
        self, built: Mapping[str, bytes], progress: Progress | None = None
    ) -> dict[str, str | None]:
        """Publish freshly trained artifacts and serve them; return each publish error or None.

        Every artifact is verified and loaded before anything is published or replaced; the
        publisher puts several in as one set. A failed publish keeps the new models serving from
        memory (state ``trained_not_persisted``); other readers of the store keep the previous
        set.
        """
        names = [name for name in MODEL_NAMES if name in built]
        async with self._lock:
            verified = {
                name: await asyncio.to_thread(self._loader.verify, built[name], name)
                for name in names
            }
            result = await self.publisher.publish({name: built[name] for name in names}, progress)
            if isinstance(result.failure, StorageError):
                self._loader.failed(result.failure)
            elif result.failure is None:
                self._loader.succeeded()
                self._unfinished = None
            for name, (model, header) in verified.items():
                info = result.stored.get(name)
                await self._serve(name, model, header, info, 0.0, persist_error=result.error)
        return dict.fromkeys(names, result.error)

    # --- internals --------------------------------------------------------------------------------

    async def _survey(self) -> Survey:
        """Each model's current object, and those an unfinished publish holds back."""
        found = await self._loader.call(survey(self.store))
        self._unfinished = found.unfinished()
        return found

    def _slot(self, name: str) -> Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise UnknownModel(name, MODEL_NAMES) from None

    def _set(self, name: str, slot: Slot) -> None:
        self._slots[name] = slot  # one assignment: requests see the old slot or the new one

    async def _retry_hybrid(self) -> bool:
        """After a sub-model changed, try the stored hybrid again if it could not be served."""
        if self._status(Hybrid.name).state is not ModelState.NOT_TRAINED:
            return False  # a stale hybrid already serves with its own sub-models
        return await self._load(Hybrid.name)

    async def _load(self, name: str, version_id: str | None = None) -> bool:
        """Fetch, verify and serve one artifact (its current version by default).

        Returns False, the reason recorded, on failure.
        """
        slot = self._slots[name]
        start = time.perf_counter()
        try:
            data, info = await self._loader.fetch(name, version_id)
        except NotFound:
            if slot.model is None:
                missing = "no artifact in the store yet"
                if version_id is not None:
                    missing = f"version {version_id} of its artifact is no longer stored"
                self._set(name, Slot(reason=missing))
            return False
        try:
            model, header = await asyncio.to_thread(self._loader.verify, data, name)
        except ArtifactError as e:
            reason = f"{type(e).__name__}: {e}"
            logger.error("%s: refused artifact %s (etag %s): %s", name, info.key, info.etag, e)
            if slot.model is None:
                self._set(name, Slot(state=ModelState.FAILED, reason=reason, last_error=reason))
            else:
                self._set(name, replace(slot, last_error=reason))
            self.events.emit(LoadFailed(name, reason))
            return False
        seconds = time.perf_counter() - start
        if not await self._serve(name, model, header, info, seconds):
            return False
        self.events.emit(ModelLoaded(name, seconds))
        return True

    async def _serve(
        self,
        name: str,
        model: Recommender,
        header: ArtifactHeader,
        info: ObjectInfo | None,
        seconds: float,
        persist_error: str | None = None,
    ) -> bool:
        if isinstance(model, Hybrid):
            problem = await self._loader.attach(model, header, self.sub_models())
            if problem is not None:
                slot = self._slots[name]
                if slot.model is None:
                    self._set(name, Slot(state=ModelState.NOT_TRAINED, reason=problem))
                else:
                    self._set(name, replace(slot, last_error=problem))
                logger.warning("hybrid not swapped in: %s", problem)
                self.events.emit(LoadFailed(name, problem))
                return False
        old = self._slots[name].artifact
        state = ModelState.NOT_PERSISTED if persist_error else ModelState.LOADED
        self._set(
            name,
            Slot(
                model=model,
                header=header,
                artifact=info if info is not None else old,
                state=state,
                reason=f"trained, not persisted: {persist_error}" if persist_error else None,
                load_seconds=seconds,
            ),
        )
        logger.info(
            "%s: serving version %s (trained %s)", name, self.version(name), header.trained_at
        )
        return True

    def _status(self, name: str) -> ModelStatus:
        slot = self._slot(name)
        state, reason = slot.state, slot.reason
        if slot.model is not None and state is ModelState.LOADED and isinstance(slot.model, Hybrid):
            reason = self._staleness(slot)
            state = ModelState.STALE if reason else state
        return ModelStatus.of(
            name,
            state,
            reason,
            model=slot.model,
            header=slot.header,
            info=slot.artifact,
            load_seconds=slot.load_seconds,
            last_error=slot.last_error,
        )

    def _staleness(self, slot: Slot) -> str | None:
        assert slot.header is not None
        served = {name: checksum for name, (_, checksum) in self.sub_models().items()}
        return staleness(slot.header.parents, served)
