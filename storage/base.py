"""The artifact store interface: :class:`ArtifactStore` and the records it returns.

Everything outside ``storage/`` codes against :class:`ArtifactStore` and :class:`ObjectInfo`;
which backend sits behind them is decided by the URL alone, in :mod:`storage.factory`. This
module imports no backend.
"""

from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ArtifactStore", "ObjectInfo", "StoreDescription"]


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one stored object (or one version of it).

    Attributes
    ----------
    key : str
        The key relative to the store's prefix.
    size : int
        Size of the content in bytes.
    etag : str
        Entity tag without quotes: the MD5 hex digest of the content for a single-part object.
    last_modified : datetime
        When this version was written, timezone-aware UTC.
    version_id : str or None
        The version's id; None when the store keeps no versions.
    metadata : dict of str to str
        User metadata, names lower-cased.
    """

    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreDescription:
    """Where a store keeps its objects, for status pages and log lines (no credentials).

    Attributes
    ----------
    backend : {"s3", "local"}
        Which backend serves the store.
    bucket : str or None
        The S3 bucket; None for a local folder.
    prefix : str
        Prefix of every key in the bucket, without slashes; ``""`` for the local folder.
    endpoint : str or None
        The S3 endpoint URL; None for AWS's default endpoint or a local folder.
    location : str
        Human-readable location, e.g. ``"s3://models/wisata at http://minio:9000"`` or
        ``"file:///var/lib/wisata/models"``.
    """

    backend: Literal["s3", "local"]
    bucket: str | None
    prefix: str
    endpoint: str | None
    location: str


class ArtifactStore(abc.ABC):
    """An async store of immutable, versioned objects, used as an async context manager.

    Keys are relative to the store's prefix. ``put`` publishes through a temporary object, so
    a reader sees either the previous or the new complete object, never a partial one. Every
    method validates its key before any I/O and raises only :class:`ValueError` (bad key or
    metadata) or a :class:`storage.StorageError` subclass.
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the client; ``async with store`` calls this."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the client and release its connections; ``async with store`` calls this."""

    @abc.abstractmethod
    def describe(self) -> StoreDescription:
        """Return where this store keeps its objects."""

    @abc.abstractmethod
    async def ensure_ready(self) -> None:
        """Check that the store is reachable, the credentials work and the bucket exists.

        Creates the bucket and turns on versioning only when the store's
        :class:`~storage.settings.StoreSettings` say so (``create_bucket`` / ``versioning``).

        Raises
        ------
        StorageUnavailable
            If the store does not answer within the connect timeout.
        AccessDenied
            If the credentials are missing or refused.
        NotFound
            If the bucket does not exist and the store may not create it.
        """

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        """Publish ``data`` at ``key`` with user ``metadata``, replacing any current object.

        Parameters
        ----------
        key : str
            Key relative to the store's prefix.
        data : bytes
            The complete content.
        metadata : mapping of str to str
            Printable-ASCII user metadata, at most 2 KB in total; names are lower-cased.

        Returns
        -------
        ObjectInfo
            The object as now stored at ``key``.
        """

    @abc.abstractmethod
    async def get(self, key: str, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        """Return the content of ``key`` and the information of that same version.

        Parameters
        ----------
        key : str
            Key relative to the store's prefix.
        version_id : str or None
            A kept version (from :meth:`versions`) instead of the current object.

        Raises
        ------
        NotFound
            If there is no object at ``key``, or no such version of it.
        """

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo:
        """Return the information of the current object at ``key`` without its content.

        Raises
        ------
        NotFound
            If there is no object at ``key``.
        """

    @abc.abstractmethod
    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Return the current objects whose key starts with ``prefix``, sorted by key.

        Temporary uploads and the local backend's bookkeeping files are never listed.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object at ``key``; a store that keeps versions keeps the older ones.

        Raises
        ------
        NotFound
            If there is no object at ``key``.
        """

    @abc.abstractmethod
    async def versions(self, key: str) -> builtins.list[ObjectInfo]:
        """Return the stored versions of ``key``, newest first.

        A store that keeps no versions returns the single current object (``version_id``
        None). After ``delete`` a versioned store still lists the older versions.

        Raises
        ------
        NotFound
            If the store holds no version of ``key``.
        """

    @abc.abstractmethod
    async def restore(self, key: str, version_id: str) -> ObjectInfo:
        """Make version ``version_id`` of ``key`` current again, as a new version.

        Raises
        ------
        NotFound
            If the store holds no such version.
        """

    @abc.abstractmethod
    async def cleanup_temp(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove temporary uploads left by interrupted ``put`` calls.

        Parameters
        ----------
        older_than : timedelta
            Only remove those at least this old, so that a ``put`` in progress in another
            process keeps its temporary object.

        Returns
        -------
        int
            How many temporary objects were removed.
        """
