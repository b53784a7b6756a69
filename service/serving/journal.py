"""The publish journal: how a set of artifacts is replaced as one.

S3 cannot replace three objects in one call, so a publish of several models goes in three steps:

1. write the journal, ``publishing.json``, naming for each model the version it replaces and the
   checksum of the artifact replacing it;
2. publish the artifacts (each one atomically: temporary key, then a copy into place);
3. delete the journal.

A reader that finds a journal serves, for each model whose current object is the one the journal
announces, the version it replaced; until every announced artifact is in place, when the set is
complete and served whole. A publisher killed at any point therefore leaves either the old set or
the new one to every reader, never a mixture, and a running service never swaps in the first half
of a publish still under way in another process.

An artifact is recognised as the journal's by the set id in its user metadata (``publish-set``),
not by its checksum: a hybrid with fixed weights pickles the same payload whatever it was trained
on. A model whose current object is not the journal's (restored by an operator in the MinIO
console, retrained alone) is served as it is: the journal only holds back what it announced.

A publisher checks, before each artifact and before deleting the journal, that the journal is
still its own. When another publisher has replaced it (two trainings at once: the retrain job and
the API), it stops and leaves the set to the later one, which took its placed artifacts over.

Limits: the versions replaced can be read back only from a store that keeps versions (a
versioned bucket, or the local folder's history); on an unversioned bucket a reader serves the
new artifact where the old one is gone. The ownership check and the write after it are not one
atomic step: a whole other publish landing inside one artifact upload of this one can still
leave a set mixed (the hybrid then runs, stale, with its own stored sub-models).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from service.errors import JournalError, PublishSuperseded
from service.ml.recommenders import MODEL_NAMES
from storage import ArtifactStore, NotFound, ObjectInfo

__all__ = [
    "JOURNAL_KEY",
    "SET_METADATA",
    "Journal",
    "JournalError",
    "Planned",
    "PublishSuperseded",
    "Replaced",
    "Survey",
    "announce",
    "artifact_key",
    "check_owner",
    "survey",
]

logger = logging.getLogger(__name__)

JOURNAL_KEY: Final = "publishing.json"
"""Key of the journal, next to the artifacts (relative to the store's prefix)."""

SET_METADATA: Final = "publish-set"
"""User metadata naming the publish (journal set id) an artifact was published in."""

FORMAT: Final = 1


@dataclass(frozen=True)
class Replaced:
    """The stored version a publish replaces: what readers serve until the publish completes."""

    version_id: str | None
    """None when the store keeps no versions: the old version cannot be read back."""
    etag: str
    sha256: str | None


@dataclass(frozen=True)
class Planned:
    """One model of a publish: the version it replaces (None: none) and its new checksum."""

    previous: Replaced | None
    sha256: str


@dataclass(frozen=True)
class Journal:
    """A publish of several models under way, or interrupted."""

    set_id: str
    started_at: datetime
    models: Mapping[str, Planned]
    earlier: tuple[str, ...] = ()
    """Set ids of unfinished publishes this one took over: their artifacts stay held back too."""

    @classmethod
    def start(cls, models: Mapping[str, Planned], earlier: tuple[str, ...] = ()) -> Journal:
        """A journal for a new publish of ``models``, started now."""
        return cls(uuid.uuid4().hex, datetime.now(UTC), dict(models), earlier)

    def held_back(self, current: Mapping[str, str | None]) -> dict[str, Planned]:
        """The models whose announced artifact must not be served yet.

        Parameters
        ----------
        current : mapping of str to str or None
            The set id (``publish-set`` metadata) of each model's current object; None when
            nothing is stored or the object was not published in a set.

        Returns
        -------
        dict of str to Planned
            Empty when every announced artifact is in place (the publish completed); otherwise
            the models whose current object is the announced one (or one of an earlier
            unfinished publish it took over), to be served at their previous version.
        """
        if all(current.get(name) == self.set_id for name in self.models):
            return {}
        held = {self.set_id, *self.earlier}
        return {name: p for name, p in self.models.items() if current.get(name) in held}

    def to_bytes(self) -> bytes:
        """The journal as the UTF-8 JSON stored at :data:`JOURNAL_KEY`."""
        document = {
            "format": FORMAT,
            "set_id": self.set_id,
            "started_at": self.started_at.isoformat(),
            "earlier": list(self.earlier),
            "models": {
                name: {
                    "sha256": planned.sha256,
                    "previous": None
                    if planned.previous is None
                    else {
                        "version_id": planned.previous.version_id,
                        "etag": planned.previous.etag,
                        "sha256": planned.previous.sha256,
                    },
                }
                for name, planned in self.models.items()
            },
        }
        return json.dumps(document, indent=2, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Journal:
        """Parse a stored journal.

        Raises
        ------
        JournalError
            If the bytes are not a journal this version writes; the message says what is wrong.
        """
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise JournalError(f"format {document.get('format')!r}, expected {FORMAT}")
            models = {
                str(name): Planned(_replaced(entry["previous"]), _text(entry["sha256"]))
                for name, entry in document["models"].items()
            }
            started = datetime.fromisoformat(document["started_at"])
            earlier = tuple(_text(set_id) for set_id in document.get("earlier", []))
            return cls(_text(document["set_id"]), started, models, earlier)
        except JournalError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise JournalError(f"{JOURNAL_KEY} is not a publish journal: {e!r}") from None

    def describe(self, held: Mapping[str, Planned]) -> dict[str, Any]:
        """JSON-ready summary for the status: which publish, when, and what is held back."""
        return {
            "set_id": self.set_id,
            "started_at": self.started_at.isoformat(),
            "models": sorted(self.models),
            "held_back": sorted(held),
        }


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _replaced(entry: object) -> Replaced | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise TypeError(f"expected an object or null, got {entry!r}")
    return Replaced(
        _optional_text(entry.get("version_id")),
        _text(entry["etag"]),
        _optional_text(entry.get("sha256")),
    )


def artifact_key(name: str) -> str:
    """The store key of a model's artifact (relative to the store's prefix)."""
    return f"{name}.pkl"


@dataclass(frozen=True)
class Survey:
    """What the store holds: each model's current object, the journal, what it holds back."""

    current: Mapping[str, ObjectInfo | None]
    journal: Journal | None
    held: Mapping[str, Planned]

    def unfinished(self) -> dict[str, Any] | None:
        """The status of the unfinished publish holding artifacts back; None when none does."""
        if self.journal is None or not self.held:
            return None
        return self.journal.describe(self.held)

    def plan(self, checksums: Mapping[str, str]) -> Journal:
        """The journal of a new publish of the models in ``checksums``.

        Each model is recorded at the version readers serve now: for one held back by an
        unfinished publish, the version that publish replaced, and that publish is taken over
        (its artifacts stay held back until the new one completes).
        """
        planned = {}
        for name, checksum in checksums.items():
            if name in self.held:
                previous = self.held[name].previous
            elif (info := self.current.get(name)) is not None:
                previous = Replaced(info.version_id, info.etag, info.metadata.get("sha256"))
            else:
                previous = None
            planned[name] = Planned(previous, checksum)
        earlier: tuple[str, ...] = ()
        if self.journal is not None and self.held:
            earlier = (*self.journal.earlier, self.journal.set_id)
        return Journal.start(planned, earlier)


async def survey(store: ArtifactStore) -> Survey:
    """Read each model's current object and the journal; an unreadable journal is ignored.

    Raises
    ------
    storage.StorageError
        If the store cannot be read.
    """
    current: dict[str, ObjectInfo | None] = {}
    for name in MODEL_NAMES:
        try:
            current[name] = await store.head(artifact_key(name))
        except NotFound:
            current[name] = None
    try:
        data, _ = await store.get(JOURNAL_KEY)
        journal = Journal.from_bytes(data)
    except NotFound:
        return Survey(current, None, {})
    except JournalError as e:
        logger.error("ignoring the publish journal: %s", e)
        return Survey(current, None, {})
    held = journal.held_back(
        {name: info.metadata.get(SET_METADATA) if info else None for name, info in current.items()}
    )
    if held:
        logger.warning(
            "publish %s (started %s) is unfinished: holding back %s",
            journal.set_id,
            journal.started_at.isoformat(),
            ", ".join(held),
        )
    return Survey(current, journal, held)


async def announce(store: ArtifactStore, checksums: Mapping[str, str]) -> Journal:
    """Write the journal of a publish of the models in ``checksums`` (step 1 of a publish).

    Raises
    ------
    storage.StorageError
        If the store cannot be read or written; nothing was changed then.
    """
    journal = (await survey(store)).plan(checksums)
    await store.put(JOURNAL_KEY, journal.to_bytes(), {"content": "publish-journal"})
    logger.info("publish %s of %s announced", journal.set_id, ", ".join(checksums))
    return journal


async def check_owner(store: ArtifactStore, journal: Journal) -> None:
    """Make sure the stored journal is still ``journal`` (steps 2 and 3 of a publish).

    Raises
    ------
    PublishSuperseded
        If another publish's journal replaced it, or another publisher finished and removed it.
    storage.StorageError
        If the store cannot be read.
    """
    try:
        data, _ = await store.get(JOURNAL_KEY)
        found: str | None = Journal.from_bytes(data).set_id
    except NotFound:
        found = None
    except JournalError:
        found = "(unreadable journal)"
    if found != journal.set_id:
        raise PublishSuperseded(journal.set_id, found)
