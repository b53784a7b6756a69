"""The publish journal: its format, and how readers find what an unfinished publish holds back.

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

The writing side (announce, place, check ownership, clear) is :mod:`service.serving.publisher`;
this module holds the journal's format (pydantic models: one definition parses, checks and
writes it) and :func:`survey`, the read-only look every reader takes: the registry, the reloader,
``wisata-status`` and ``wisata-backup``.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as model

from service.errors import JournalError
from service.ml.recommenders import MODEL_NAMES
from storage import ArtifactStore, NotFound, ObjectInfo

__all__ = [
    "JOURNAL_KEY",
    "SET_METADATA",
    "Journal",
    "Planned",
    "Replaced",
    "Survey",
    "UnfinishedPublish",
    "artifact_key",
    "survey",
]

logger = logging.getLogger(__name__)

JOURNAL_KEY: Final = "publishing.json"
"""Key of the journal, next to the artifacts (relative to the store's prefix)."""

SET_METADATA: Final = "publish-set"
"""User metadata naming the publish (journal set id) an artifact was published in."""

Text = Annotated[str, StringConstraints(min_length=1)]
_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


def artifact_key(name: str) -> str:
    """The store key of a model's artifact (relative to the store's prefix)."""
    return f"{name}.pkl"


@model(config=_STRICT)
class Replaced:
    """The stored version a publish replaces: what readers serve until the publish completes."""

    version_id: Text | None
    """None when the store keeps no versions: the old version cannot be read back."""
    etag: Text
    sha256: Text | None = None


@model(config=_STRICT)
class Planned:
    """One model of a publish: the version it replaces (None: none) and its new checksum."""

    previous: Replaced | None
    sha256: Text


@model(config=ConfigDict(extra="forbid", frozen=True))
class Journal:
    """A publish of several models under way, or interrupted (``publishing.json``)."""

    set_id: Text
    started_at: datetime
    models: dict[str, Planned]
    earlier: tuple[Text, ...] = ()
    """Set ids of unfinished publishes this one took over: their artifacts stay held back too."""
    format: Literal[1] = 1

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
        document = _JOURNAL.dump_python(self, mode="json")
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
            return _JOURNAL.validate_json(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'the document'}: {error['msg']}"
                for error in e.errors(include_url=False)
            )
            raise JournalError(f"{JOURNAL_KEY} is not a publish journal: {problems}") from None

    def describe(self, held: Mapping[str, Planned]) -> UnfinishedPublish:
        """The status of this publish: which one, when, and what it holds back."""
        return UnfinishedPublish(
            set_id=self.set_id,
            started_at=self.started_at,
            models=sorted(self.models),
            held_back=sorted(held),
        )


_JOURNAL: Final = TypeAdapter(Journal)


class UnfinishedPublish(BaseModel):
    """A publish whose artifacts are held back, as the status reports it."""

    model_config = ConfigDict(frozen=True)

    set_id: str
    started_at: datetime
    models: list[str]
    held_back: list[str]


@dataclass(frozen=True)
class Survey:
    """What the store holds: each model's current object, the journal, what it holds back."""

    current: Mapping[str, ObjectInfo | None]
    journal: Journal | None = None
    held: Mapping[str, Planned] = field(default_factory=dict)

    def unfinished(self) -> UnfinishedPublish | None:
        """The unfinished publish holding artifacts back; None when none does."""
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

    def served_version(self, name: str) -> str | None:
        """The version id readers serve for ``name``: the one before a publish holding it back."""
        planned = self.held.get(name)
        if planned is not None and planned.previous is not None:
            return planned.previous.version_id
        return None


async def read_journal(store: ArtifactStore) -> Journal | None:
    """The stored journal; None when there is none or it is unreadable (which is logged).

    Raises
    ------
    storage.StorageError
        If the store cannot be read.
    """
    try:
        data, _ = await store.get(JOURNAL_KEY)
        return Journal.from_bytes(data)
    except NotFound:
        return None
    except JournalError as e:
        logger.error("ignoring the publish journal: %s", e)
        return None


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
    journal = await read_journal(store)
    if journal is None:
        return Survey(current)
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
