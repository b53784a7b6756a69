"""The artifact store on a local folder: :class:`LocalBackend`, an async wrapper of the folder.

The folder's layout, atomic publishing and version history are in :mod:`storage.local_folder`;
this module runs its blocking calls in worker threads and maps ``OSError`` to
:mod:`storage.errors`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

from storage.base import ArtifactStore, ObjectInfo, StoreDescription
from storage.errors import AccessDenied, StorageError, StorageUnavailable
from storage.keys import normalize_metadata, validate_key, validate_list_prefix
from storage.local_folder import Folder
from storage.settings import StoreSettings

__all__ = ["LocalBackend"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class LocalBackend(ArtifactStore):
    """Artifact store on a local folder; the folder is created by ``ensure_ready``.

    Every file operation runs in the event loop's default executor so large objects never block
    the loop. Versions are kept per key (the last ``keep_versions``), whatever the other backend
    is configured to do.

    Parameters
    ----------
    root : str or path-like
        The folder holding the store (made absolute).
    settings : StoreSettings, optional
        Only ``keep_versions`` is read: how many versions of each key to keep, the current one
        included (default 5).
    """

    def __init__(self, root: str | os.PathLike[str], settings: StoreSettings | None = None) -> None:
        keep_versions = (settings if settings is not None else StoreSettings()).keep_versions
        self._folder = Folder(Path(root).absolute(), keep_versions)
        self._open = False

    @property
    def root(self) -> Path:
        """The folder holding the store."""
        return self._folder.root

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def describe(self) -> StoreDescription:
        return StoreDescription(
            backend="local", bucket=None, prefix="", endpoint=None, location=self.root.as_uri()
        )

    async def _run(
        self, action: str, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Run ``fn`` in a worker thread and map ``OSError`` to the storage errors.

        ``action`` completes the sentence "cannot ..." in error messages.
        """
        if not self._open:
            raise StorageError(
                f"the store at {self.root} is not open; use 'async with open_store(...) as store'"
            )
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except PermissionError as e:
            raise AccessDenied(
                f"cannot {action} in {self.root}: {e}; check the folder's owner and mode"
            ) from e
        except OSError as e:
            raise StorageUnavailable(
                f"cannot {action} in {self.root}: {e}; check that the folder is "
                "mounted, writable and has free space"
            ) from e

    async def ensure_ready(self) -> None:
        await self._run("prepare the store folder", self._folder.ensure_ready)

    async def put(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        validate_key(key)
        clean = normalize_metadata(metadata)
        info = await self._run(f"publish {key!r}", self._folder.put, key, bytes(data), clean)
        logger.info("published %s (%d bytes, etag %s) in %s", key, info.size, info.etag, self.root)
        return info

    async def get(self, key: str, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        validate_key(key)
        if version_id is not None:
            return await self._run(
                f"read version {version_id!r} of {key!r}", self._folder.get_version, key, version_id
            )
        return await self._run(f"read {key!r}", self._folder.get, key)

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        return await self._run(f"look up {key!r}", self._folder.head, key)

    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        validate_list_prefix(prefix)
        return await self._run(f"list {prefix!r}", self._folder.list, prefix)

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._run(f"delete {key!r}", self._folder.delete, key)
        logger.info("deleted %s in %s", key, self.root)

    async def versions(self, key: str) -> builtins.list[ObjectInfo]:
        validate_key(key)
        return await self._run(f"list the versions of {key!r}", self._folder.versions, key)

    async def restore(self, key: str, version_id: str) -> ObjectInfo:
        validate_key(key)
        info = await self._run(
            f"restore version {version_id!r} of {key!r}", self._folder.restore, key, version_id
        )
        logger.info("restored %s version %s in %s", key, version_id, self.root)
        return info

    async def cleanup_temp(self, older_than: timedelta = timedelta(hours=1)) -> int:
        removed = await self._run("remove temporary files", self._folder.cleanup_temp, older_than)
        if removed:
            logger.info("removed %d temporary files in %s", removed, self.root)
        return removed
