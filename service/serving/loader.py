"""Reading artifacts for the registry: fetch from the store, verify, unpickle; track the store.

Every store call of the serving side goes through :meth:`ArtifactLoader.call`, which keeps
whether the store answered last time (what ``/readyz``, the status and the metrics report).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar

from service import artifacts
from service.artifacts import ArtifactError, ArtifactHeader
from service.ml.recommenders import MOVED_MODULES, Collaborative, ContentBased, Hybrid, Recommender
from service.serving.journal import artifact_key
from service.serving.sharing import share_arrays
from storage import ArtifactStore, NotFound, ObjectInfo, StorageError

__all__ = ["ArtifactLoader"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class ArtifactLoader:
    """Fetches and verifies the artifacts of one store, signed with ``key`` when given.

    With ``shared``, a worker group's folder, each verified model's large arrays are mapped
    from files there, one copy for every worker (:mod:`service.serving.sharing`).
    """

    def __init__(
        self, store: ArtifactStore, key: bytes | None = None, shared: Path | None = None
    ) -> None:
        self.store = store
        self._key = key
        self._shared = shared
        self.storage_available = True
        self.storage_error: str | None = None

    async def call(self, call: Awaitable[_T]) -> _T:
        """Await a store call, noting whether the store answered (a NotFound is an answer)."""
        try:
            result = await call
        except NotFound:
            self.succeeded()
            raise
        except StorageError as e:
            self.failed(e)
            raise
        self.succeeded()
        return result

    def succeeded(self) -> None:
        """The store answered."""
        self.storage_available = True
        self.storage_error = None

    def failed(self, error: StorageError) -> None:
        """The store failed with ``error``."""
        self.storage_available = False
        self.storage_error = str(error)

    async def fetch(self, name: str, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        """The bytes and object of a model's artifact (its current version by default)."""
        return await self.call(self.store.get(artifact_key(name), version_id))

    async def stored(self, name: str, info: ObjectInfo, checksum: str) -> bytes | None:
        """The bytes of the stored version ``info`` of ``name`` if its checksum is ``checksum``."""
        try:
            data, _ = await self.fetch(name, info.version_id)
        except NotFound:
            return None
        return data if artifacts.read_header(data).payload_sha256 == checksum else None

    def verify(self, data: bytes, name: str) -> tuple[Recommender, ArtifactHeader]:
        """Check and unpickle an artifact of model ``name`` (blocking: run it in a thread)."""
        model, header = artifacts.load(data, self._key, expected_model=name, moved=MOVED_MODULES)
        if not isinstance(model, Recommender):
            raise ArtifactError(f"the artifact for {name} holds a {type(model).__name__}")
        if self._shared is not None:
            share_arrays(model, self._shared, name, header.payload_sha256)
        return model, header

    async def stored_version(self, name: str, checksum: str) -> Recommender | None:
        """The stored version of model ``name`` whose payload checksum is ``checksum``, verified.

        None when no kept version has it (or none that verifies).
        """
        try:
            versions = await self.call(self.store.versions(artifact_key(name)))
        except NotFound:
            return None
        for info in versions:
            if info.metadata.get("sha256") != checksum or info.version_id is None:
                continue
            try:
                data, _ = await self.fetch(name, info.version_id)
                model, _ = await asyncio.to_thread(self.verify, data, name)
            except (NotFound, ArtifactError) as e:
                logger.warning("%s version %s cannot be used: %s", name, info.version_id, e)
                continue
            logger.info("hybrid: attached %s version %s it was built with", name, info.version_id)
            return model
        return None

    async def attach(
        self,
        hybrid: Hybrid,
        header: ArtifactHeader,
        served: Mapping[str, tuple[Recommender, str]],
    ) -> str | None:
        """Attach the hybrid to the sub-models it was built with; the reason when impossible.

        The served sub-models are used when they are the ones; otherwise the stored version
        with the recorded checksum is read, verified and attached to the hybrid alone (a
        publish interrupted between the sub-models and the hybrid leaves exactly this), so the
        hybrid keeps running with its own pair and shows as stale.
        """
        parts: dict[str, Recommender] = {}
        for parent in (ContentBased.name, Collaborative.name):
            wanted = header.parents.get(parent, "")
            if parent in served and served[parent][1] == wanted:
                parts[parent] = served[parent][0]
                continue
            found = await self.stored_version(parent, wanted)
            if found is None:
                serving = served[parent][1][:12] if parent in served else "none"
                return (
                    f"it was built with {parent} {wanted[:12]}, which is neither served "
                    f"({serving}) nor kept among the stored versions; retrain the hybrid"
                )
            parts[parent] = found
        content, collaborative = parts[ContentBased.name], parts[Collaborative.name]
        assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
        # On a thread: attaching hashes both sub-models' learned arrays (tens of MB at scale).
        await asyncio.to_thread(hybrid.attach, content, collaborative)
        return None
