"""The publish protocol: announce a set in the journal, place each artifact, check, clear.

Used by everything that writes artifacts: the trainer (through the registry, which then serves
what it published), ``wisata-retrain`` and ``wisata-backup --restore``. The journal's format and
the readers' side are :mod:`service.serving.journal`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from service import artifacts
from service.errors import JournalError, PublishSuperseded
from service.ml.recommenders import MODEL_NAMES
from service.serving.events import Events, Published
from service.serving.journal import (
    JOURNAL_KEY,
    SET_METADATA,
    Journal,
    artifact_key,
    survey,
)
from storage import ArtifactStore, NotFound, ObjectInfo, StorageError

__all__ = ["Progress", "PublishResult", "Publisher"]

logger = logging.getLogger(__name__)


Progress = Callable[[str], object]
"""Told the name of each model just before its artifact is published."""


@dataclass(frozen=True)
class PublishResult:
    """What a publish placed, and why it failed (None: every artifact is in place)."""

    stored: dict[str, ObjectInfo] = field(default_factory=dict)
    error: str | None = None
    failure: Exception | None = None
    """The exception that stopped it: a storage error, or :class:`PublishSuperseded`."""


class Publisher:
    """Publishes artifacts to ``store``, several at once as one set through the journal.

    Parameters
    ----------
    store : ArtifactStore
        An opened store.
    events : Events, optional
        Where :class:`~service.serving.events.Published` is reported.
    """

    def __init__(self, store: ArtifactStore, events: Events | None = None) -> None:
        self.store = store
        self.events = events if events is not None else Events()

    async def publish(
        self, built: Mapping[str, bytes], progress: Progress | None = None
    ) -> PublishResult:
        """Publish the artifacts in ``built`` (name to bytes), in training order.

        One artifact goes in alone; several go in as one set: the journal first, then each
        artifact tagged with the set's id, then the journal is deleted. A storage failure, or
        another publisher taking the set over, stops it: the result names what went in, and
        readers of the store keep serving the previous set.
        """
        names = [name for name in MODEL_NAMES if name in built]
        stored: dict[str, ObjectInfo] = {}
        journal: Journal | None = None
        try:
            if len(names) > 1:
                journal = await self.announce(
                    {name: artifacts.read_header(built[name]).payload_sha256 for name in names}
                )
            for name in names:
                if progress is not None:
                    progress(name)
                stored[name] = await self.place(name, built[name], journal)
            if journal is not None:
                await self.check_owner(journal)
        except (StorageError, PublishSuperseded) as e:
            reason = str(e)
            if stored:
                reason += (
                    f"; {', '.join(stored)} went in, but the set is unfinished, so readers of the "
                    "store keep the previous versions"
                )
            logger.error("not persisted (%s): %s", ", ".join(names), reason)
            self.events.emit(Published(tuple(names), journal.set_id if journal else None, reason))
            return PublishResult({}, reason, e)
        if journal is not None:
            await self.clear(journal)
        self.events.emit(Published(tuple(names), journal.set_id if journal else None))
        return PublishResult(stored)

    async def announce(self, checksums: Mapping[str, str]) -> Journal:
        """Write the journal of a publish of ``checksums`` (step 1); return it.

        It records the versions readers serve now, and takes over an unfinished publish.
        """
        journal = (await survey(self.store)).plan(checksums)
        await self.store.put(JOURNAL_KEY, journal.to_bytes(), {"content": "publish-journal"})
        logger.info("publish %s of %s announced", journal.set_id, ", ".join(checksums))
        return journal

    async def place(self, name: str, data: bytes, journal: Journal | None) -> ObjectInfo:
        """Put one artifact at its key (step 2), tagged with ``journal``'s set id if any."""
        metadata = artifacts.to_metadata(artifacts.read_header(data))
        if journal is not None:
            await self.check_owner(journal)
            metadata[SET_METADATA] = journal.set_id
        return await self.store.put(artifact_key(name), data, metadata)

    async def check_owner(self, journal: Journal) -> None:
        """Make sure the stored journal is still ``journal``.

        Raises
        ------
        PublishSuperseded
            If another publish's journal replaced it, or another publisher finished and
            removed it.
        """
        try:
            data, _ = await self.store.get(JOURNAL_KEY)
            found: str | None = Journal.from_bytes(data).set_id
        except NotFound:
            found = None
        except JournalError:
            found = "(unreadable journal)"
        if found != journal.set_id:
            raise PublishSuperseded(journal.set_id, found)

    async def clear(self, journal: Journal) -> None:
        """Delete the journal (step 3); every artifact is in place, so readers see it whole."""
        try:
            await self.store.delete(JOURNAL_KEY)
        except StorageError as e:
            logger.warning("publish %s complete; its journal stays: %s", journal.set_id, e)
