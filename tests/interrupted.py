"""What a publisher killed half-way leaves in a store, for the tests of the publish journal."""

from __future__ import annotations

from collections.abc import Mapping

from service import artifacts
from service.serving.journal import SET_METADATA, Journal, artifact_key
from service.serving.publisher import Publisher
from storage import ArtifactStore, ObjectInfo

__all__ = ["interrupt_publish", "place"]


async def place(store: ArtifactStore, journal: Journal, name: str, data: bytes) -> ObjectInfo:
    """Put one artifact of ``journal``'s set at its key, as the publisher does."""
    metadata = artifacts.to_metadata(artifacts.read_header(data))
    return await store.put(artifact_key(name), data, {**metadata, SET_METADATA: journal.set_id})


async def interrupt_publish(
    store: ArtifactStore, built: Mapping[str, bytes], *placed: str
) -> Journal:
    """Announce a publish of ``built``, place the artifacts named ``placed``, and stop there."""
    checksums = {name: artifacts.read_header(data).payload_sha256 for name, data in built.items()}
    journal = await Publisher(store).announce(checksums)
    for name in placed:
        await place(store, journal, name, built[name])
    return journal
