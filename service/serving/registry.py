"""The models being served: loaded from the store, verified, swapped whole, reloaded on change.

Each model sits in a slot that is replaced, never mutated, so a request always sees one complete
model. The hybrid holds references to the exact sub-model objects it was attached to: when a
sub-model is replaced the hybrid keeps serving with its own pair (reported ``stale``) until a
hybrid built from the new pair arrives. Nothing here raises for a bad artifact: a model that
cannot be loaded is ``failed`` or ``not_trained`` with the reason, and a model already serving
keeps serving.

Several models are published as one set through the publish journal
(:mod:`service.serving.journal`): while a publish is unfinished, in this process or another, or
was interrupted, the artifacts it already placed are held back and their previous versions
served, so the set loaded is all old or all new.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from service import artifacts
from service.artifacts import ArtifactError, ArtifactHeader
from service.errors import ModelNotTrained, UnknownModel
from service.ml.recommenders import (
    MODEL_NAMES,
    MOVED_MODULES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)
from service.serving import journal as publishing
from service.serving.journal import (
    JOURNAL_KEY,
    SET_METADATA,
    Journal,
    Planned,
    PublishSuperseded,
    artifact_key,
)
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
_T = TypeVar("_T")


class Progress(Protocol):
    """Told the name of each model just before its artifact is published."""

    def __call__(self, name: str, /) -> None: ...


class ModelState(enum.StrEnum):
    """What a model slot holds."""

    LOADED = "loaded"
    NOT_TRAINED = "not_trained"
    FAILED = "failed"
    STALE = "stale"
    NOT_PERSISTED = "trained_not_persisted"


@dataclass(frozen=True)
class ModelStatus:
    """Everything an operator needs to know about one model."""

    name: str
    state: ModelState
    reason: str | None
    trained_at: str | None
    checksum: str | None
    artifact: ObjectInfo | None
    load_seconds: float | None
    last_error: str | None
    components: dict[str, str] = field(default_factory=dict)
    header: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready data."""
        info = self.artifact
        return {
            "name": self.name,
            "state": self.state.value,
            "reason": self.reason,
            "trained_at": self.trained_at,
            "checksum": self.checksum,
            "artifact": None if info is None else object_info_dict(info),
            "load_seconds": self.load_seconds,
            "last_error": self.last_error,
            "components": self.components,
            "header": self.header,
        }


def object_info_dict(info: ObjectInfo) -> dict[str, Any]:
    """An :class:`ObjectInfo` as JSON-ready data."""
    return {
        "key": info.key,
        "size": info.size,
        "etag": info.etag,
        "last_modified": info.last_modified.isoformat(),
        "version_id": info.version_id,
        "metadata": dict(info.metadata),
    }


@dataclass(frozen=True)
class _Slot:
    """One model as served; replaced whole on every change."""

    model: Recommender | None = None
    header: ArtifactHeader | None = None
    artifact: ObjectInfo | None = None
    state: ModelState = ModelState.NOT_TRAINED
    reason: str | None = "no artifact in the store yet"
    load_seconds: float | None = None
    last_error: str | None = None


class Registry:
    """The three served models and the store they come from."""

    def __init__(self, store: ArtifactStore, *, key: bytes | None = None) -> None:
        self.store = store
        self._key = key
        self._slots: dict[str, _Slot] = {name: _Slot() for name in MODEL_NAMES}
        self._lock = asyncio.Lock()
        self.storage_available = True
        self.storage_error: str | None = None
        self.loaded_once = False
        self.unfinished_publish: dict[str, Any] | None = None
        """The publish whose artifacts are held back (:mod:`service.serving.journal`), if any."""

    # --- reading ---------------------------------------------------------------------------------

    def model(self, name: str) -> Recommender:
        """Return the model serving as ``name``."""
        slot = self._slot(name)
        if slot.model is None:
            raise ModelNotTrained(name, slot.reason or slot.state.value)
        return slot.model

    def identity(self, name: str) -> str:
        """What tells two served versions of ``name`` apart: differs whenever answers may.

        The payload checksum; for the hybrid, a digest of its own checksum and its sub-models'
        (retrained on new ratings, its own bytes may stay the same). ``""`` when nothing serves.
        """
        header = self._slot(name).header
        if header is None:
            return ""
        if not header.parents:
            return header.payload_sha256
        parts = [header.payload_sha256, *(f"{n}={c}" for n, c in sorted(header.parents.items()))]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def version(self, name: str) -> str:
        """Short version of the served model, as answers show it: the start of its identity."""
        return self.identity(name)[:12]

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
        """One line per model an operator can read at a glance."""
        lines = []
        for name, status in self.status().items():
            if status.state is ModelState.LOADED:
                detail = f"LOADED (trained {status.trained_at}, {status.load_seconds or 0:.2f} s)"
            elif status.state is ModelState.NOT_TRAINED:
                detail = f"NOT TRAINED: {status.reason}"
            else:
                detail = f"{status.state.value.upper().replace('_', ' ')}: {status.reason}"
            lines.append(f"{name}: {detail}")
        if self.unfinished_publish is not None:
            held = self.unfinished_publish["held_back"]
            lines.append(
                f"publish {self.unfinished_publish['set_id'][:12]} (started "
                f"{self.unfinished_publish['started_at']}) is unfinished: the previous versions "
                f"of {', '.join(held)} are served until a publish completes"
            )
        return lines

    def sub_models(self) -> dict[str, tuple[Recommender, str]]:
        """The served content and collaborative models with their checksums (to build a hybrid)."""
        found = {}
        for name in (ContentBased.name, Collaborative.name):
            slot = self._slots[name]
            if slot.model is not None and slot.header is not None:
                found[name] = (slot.model, slot.header.payload_sha256)
        return found

    # --- loading ---------------------------------------------------------------------------------

    async def load_all(self) -> None:
        """Load every artifact at startup; only an unreachable store raises."""
        async with self._lock:
            _, held = await self._survey()
            for name in MODEL_NAMES:
                planned = held.get(name)
                previous = None if planned is None else planned.previous
                if planned is None or (previous is not None and previous.version_id is None):
                    await self._load(name)  # no versions kept: the new artifact or nothing
                elif previous is not None:
                    await self._load(name, previous.version_id)
                else:
                    reason = "its only artifact is from an unfinished publish; train again"
                    self._set(name, _Slot(reason=reason))
            self.loaded_once = True

    async def refresh(self) -> list[str]:
        """Reload the artifacts that changed since they were loaded; return their names.

        An artifact held back by an unfinished publish is not swapped in until the publish
        completes: the version it replaces keeps serving (or is loaded, when something else is).
        """
        reloaded = []
        async with self._lock:
            current, held = await self._survey()
            for name in MODEL_NAMES:
                slot = self._slots[name]
                info = current[name]
                if info is None:
                    if slot.model is not None and slot.state is not ModelState.NOT_PERSISTED:
                        self._set(name, replace(slot, last_error="artifact missing from the store"))
                    continue
                known = slot.artifact.etag if slot.artifact else None
                wanted, version_id = info.etag, None
                if name in held:
                    previous = held[name].previous
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
            await self._storage_call(self.store.restore(artifact_key(name), version_id))
            if await self._load(name) and name != Hybrid.name:
                await self._retry_hybrid()
        return self._status(name)

    async def versions(self, name: str) -> list[ObjectInfo]:
        """Stored versions of a model's artifact, newest first."""
        self._slot(name)
        try:
            return await self._storage_call(self.store.versions(artifact_key(name)))
        except NotFound:
            return []

    async def install(
        self, built: Mapping[str, bytes], progress: Progress | None = None
    ) -> dict[str, str | None]:
        """Publish freshly trained artifacts and serve them; return each publish error or None.

        Every artifact is verified and loaded before anything is published or replaced. Several
        artifacts are published as one set, through the publish journal. A failed publish keeps
        the new models serving from memory (state ``trained_not_persisted``); other readers of
        the store keep the previous set.
        """
        names = [name for name in MODEL_NAMES if name in built]
        async with self._lock:
            verified = {
                name: await asyncio.to_thread(self._verify, built[name], name) for name in names
            }
            headers = {name: header for name, (_, header) in verified.items()}
            stored, errors = await self._publish(built, headers, progress)
            for name, (model, header) in verified.items():
                await self._serve(
                    name, model, header, stored.get(name), 0.0, persist_error=errors.get(name)
                )
        return {name: errors.get(name) for name in names}

    # --- publishing -------------------------------------------------------------------------------

    async def _publish(
        self,
        built: Mapping[str, bytes],
        headers: Mapping[str, ArtifactHeader],
        progress: Progress | None,
    ) -> tuple[dict[str, ObjectInfo], dict[str, str]]:
        """Publish the artifacts, as one set when there are several; what was stored, errors."""
        stored: dict[str, ObjectInfo] = {}
        journal: Journal | None = None
        try:
            if len(headers) > 1:
                checksums = {name: header.payload_sha256 for name, header in headers.items()}
                journal = await self._storage_call(publishing.announce(self.store, checksums))
            for name, header in headers.items():
                if progress is not None:
                    progress(name)
                metadata = artifacts.to_metadata(header)
                if journal is not None:
                    await self._storage_call(publishing.check_owner(self.store, journal))
                    metadata[SET_METADATA] = journal.set_id
                stored[name] = await self._storage_call(
                    self.store.put(artifact_key(name), built[name], metadata)
                )
            if journal is not None:
                await self._storage_call(publishing.check_owner(self.store, journal))
        except (StorageError, PublishSuperseded) as e:
            reason = str(e)
            if stored:
                reason += (
                    f"; {', '.join(stored)} went in, but the set is unfinished, so readers of the "
                    "store keep the previous versions"
                )
            logger.error("not persisted (%s): %s", ", ".join(headers), reason)
            return {}, {name: reason for name in headers}
        if journal is not None:
            try:
                await self._storage_call(self.store.delete(JOURNAL_KEY))
            except StorageError as e:  # every artifact is in place: readers see the set complete
                logger.warning("publish %s complete; its journal stays: %s", journal.set_id, e)
        self.unfinished_publish = None
        return stored, {}

    async def _survey(self) -> tuple[dict[str, ObjectInfo | None], dict[str, Planned]]:
        """Each model's current object, and those an unfinished publish holds back."""
        found = await self._storage_call(publishing.survey(self.store))
        self.unfinished_publish = found.unfinished()
        return dict(found.current), dict(found.held)

    # --- internals --------------------------------------------------------------------------------

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise UnknownModel(name, MODEL_NAMES) from None

    def _set(self, name: str, slot: _Slot) -> None:
        self._slots[name] = slot  # one assignment: requests see the old slot or the new one

    async def _storage_call(self, call: Awaitable[_T]) -> _T:
        try:
            result = await call
        except NotFound:
            self._storage_ok()
            raise
        except StorageError as e:
            self.storage_available = False
            self.storage_error = str(e)
            raise
        self._storage_ok()
        return result

    def _storage_ok(self) -> None:
        self.storage_available = True
        self.storage_error = None

    def _verify(self, data: bytes, name: str) -> tuple[Recommender, ArtifactHeader]:
        model, header = artifacts.load(data, self._key, expected_model=name, moved=MOVED_MODULES)
        if not isinstance(model, Recommender):
            raise ArtifactError(f"the artifact for {name} holds a {type(model).__name__}")
        return model, header

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
            data, info = await self._storage_call(self.store.get(artifact_key(name), version_id))
        except NotFound:
            if slot.model is None:
                missing = "no artifact in the store yet"
                if version_id is not None:
                    missing = f"version {version_id} of its artifact is no longer stored"
                self._set(name, _Slot(reason=missing))
            return False
        try:
            model, header = await asyncio.to_thread(self._verify, data, name)
        except ArtifactError as e:
            reason = f"{type(e).__name__}: {e}"
            logger.error("%s: refused artifact %s (etag %s): %s", name, info.key, info.etag, e)
            if slot.model is None:
                self._set(name, _Slot(state=ModelState.FAILED, reason=reason, last_error=reason))
            else:
                self._set(name, replace(slot, last_error=reason))
            return False
        return await self._serve(name, model, header, info, time.perf_counter() - start)

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
            problem = await self._attach(model, header)
            if problem is not None:
                slot = self._slots[name]
                if slot.model is None:
                    self._set(name, _Slot(state=ModelState.NOT_TRAINED, reason=problem))
                else:
                    self._set(name, replace(slot, last_error=problem))
                logger.warning("hybrid not swapped in: %s", problem)
                return False
        old = self._slots[name].artifact
        state = ModelState.NOT_PERSISTED if persist_error else ModelState.LOADED
        self._set(
            name,
            _Slot(
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

    async def _attach(self, hybrid: Hybrid, header: ArtifactHeader) -> str | None:
        """Attach the hybrid to the sub-models it was built with; the reason when impossible.

        The served sub-models are used when they are the ones; otherwise the stored version
        with the recorded checksum is read, verified and attached to the hybrid alone (a
        publish interrupted between the sub-models and the hybrid leaves exactly this), so the
        hybrid keeps running with its own pair and shows as stale.
        """
        available = self.sub_models()
        parts: dict[str, Recommender] = {}
        for parent in (ContentBased.name, Collaborative.name):
            wanted = header.parents.get(parent, "")
            if parent in available and available[parent][1] == wanted:
                parts[parent] = available[parent][0]
                continue
            found = await self._stored_version(parent, wanted)
            if found is None:
                served = available[parent][1][:12] if parent in available else "none"
                return (
                    f"it was built with {parent} {wanted[:12]}, which is neither served "
                    f"({served}) nor kept among the stored versions; retrain the hybrid"
                )
            parts[parent] = found
        content, collaborative = parts[ContentBased.name], parts[Collaborative.name]
        assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
        hybrid.attach(content, collaborative)
        return None

    async def _stored_version(self, name: str, checksum: str) -> Recommender | None:
        """The stored version of a sub-model whose payload checksum is ``checksum``, verified."""
        try:
            versions = await self._storage_call(self.store.versions(artifact_key(name)))
        except NotFound:
            return None
        for info in versions:
            if info.metadata.get("sha256") != checksum or info.version_id is None:
                continue
            try:
                data, _ = await self._storage_call(
                    self.store.get(artifact_key(name), info.version_id)
                )
                model, _ = await asyncio.to_thread(self._verify, data, name)
            except (NotFound, ArtifactError) as e:
                logger.warning("%s version %s cannot be used: %s", name, info.version_id, e)
                continue
            logger.info("hybrid: attached %s version %s it was built with", name, info.version_id)
            return model
        return None

    def _status(self, name: str) -> ModelStatus:
        slot = self._slot(name)
        state, reason = slot.state, slot.reason
        if slot.model is not None and state is ModelState.LOADED and isinstance(slot.model, Hybrid):
            reason = self._staleness(slot)
            state = ModelState.STALE if reason else state
        header = slot.header
        return ModelStatus(
            name=name,
            state=state,
            reason=reason,
            trained_at=header.trained_at if header else None,
            checksum=header.payload_sha256 if header else None,
            artifact=slot.artifact,
            load_seconds=slot.load_seconds,
            last_error=slot.last_error,
            components=slot.model.components() if slot.model is not None else {},
            header=header.to_dict() if header else None,
        )

    def _staleness(self, slot: _Slot) -> str | None:
        assert slot.header is not None
        current = self.sub_models()
        changed = [
            parent
            for parent, checksum in slot.header.parents.items()
            if parent in current and current[parent][1] != checksum
        ]
        if not changed:
            return None
        return f"{' and '.join(changed)} retrained since it was built; retrain the hybrid"
