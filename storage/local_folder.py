"""The local folder store's synchronous implementation: :class:`Folder`, its records and versions.

Layout under the store's root folder::

    .tmp/<random>                  files being written; cleanup_temp removes old ones
    objects/<sha256 of key>/       one folder per key (hashing keeps any key a valid file name)
        record.json                the key, its current version id and the kept versions
        <version id>.blob          immutable content of one version
        lock                       flock'ed while record.json is read, changed and replaced

Content is written to ``.tmp/``, fsync'ed, then renamed into the key's folder; the version only
becomes visible when ``record.json`` is replaced (temporary file, fsync, ``os.replace``, fsync of
the folder). That rename is the single commit point, so a process killed at any moment leaves
the previous or the new version current, each complete with the metadata written with it.

:class:`storage.local.LocalBackend` runs these blocking calls in worker threads.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.base import ObjectInfo
from storage.errors import NotFound, StorageError, StorageUnavailable
from storage.keys import TMP_DIR

__all__ = ["Folder"]

_RECORD = "record.json"
_LOCK = "lock"
_BLOB_SUFFIX = ".blob"
_GET_ATTEMPTS = 5


@dataclass(frozen=True)
class _Version:
    version_id: str
    blob: str
    size: int
    etag: str
    last_modified: str
    metadata: dict[str, str]

    def info(self, key: str) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=self.size,
            etag=self.etag,
            last_modified=datetime.fromisoformat(self.last_modified),
            version_id=self.version_id,
            metadata=dict(self.metadata),
        )


@dataclass(frozen=True)
class _Record:
    key: str
    current: str | None
    versions: tuple[_Version, ...]

    def current_version(self) -> _Version | None:
        return next((v for v in self.versions if v.version_id == self.current), None)

    def to_json(self) -> bytes:
        body = {
            "key": self.key,
            "current": self.current,
            "versions": [asdict(v) for v in self.versions],
        }
        return json.dumps(body, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> _Record:
        body: dict[str, Any] = json.loads(raw)
        versions = tuple(_Version(**entry) for entry in body["versions"])
        return cls(key=str(body["key"]), current=body["current"], versions=versions)


def _new_version_id() -> str:
    # Sortable by time, unique across processes writing in the same microsecond.
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def _fsync_dir(path: Path) -> None:
    # A rename is only durable once the directory holding the new entry is flushed.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Folder:
    """The blocking operations of a local store; :class:`storage.local.LocalBackend` threads them.

    Parameters
    ----------
    root : Path
        The folder holding the store, absolute.
    keep_versions : int
        How many versions of each key to keep, the current one included.
    """

    def __init__(self, root: Path, keep_versions: int) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / TMP_DIR
        self.keep_versions = keep_versions

    # -- helpers -----------------------------------------------------------------------------

    def _key_dir(self, key: str) -> Path:
        return self.objects / hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _write_tmp(self, data: bytes) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / secrets.token_hex(16)
        try:
            with path.open("xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self._write_tmp(data)
        try:
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    @contextmanager
    def _locked(self, key_dir: Path) -> Iterator[None]:
        key_dir.mkdir(parents=True, exist_ok=True)
        with (key_dir / _LOCK).open("ab") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield  # closing the file releases the lock, also when the process is killed

    def _read_record(self, key_dir: Path) -> _Record | None:
        path = key_dir / _RECORD
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return _Record.from_json(raw)
        except (ValueError, KeyError, TypeError) as e:
            raise StorageError(
                f"the version record {path} is damaged ({e}); restore it from a backup or "
                "delete the folder to forget that key"
            ) from e

    def _commit(self, key_dir: Path, old: _Record | None, record: _Record) -> None:
        """Replace the record (the commit point), then drop blobs no kept version uses."""
        self._write_atomic(key_dir / _RECORD, record.to_json())
        kept = {v.blob for v in record.versions}
        for version in old.versions if old else ():
            if version.blob not in kept:
                (key_dir / version.blob).unlink(missing_ok=True)

    def _add_version(self, key: str, key_dir: Path, version: _Version) -> None:
        """Make ``version`` current; call with the key's lock held."""
        old = self._read_record(key_dir)
        history = (version, *(old.versions if old else ()))
        record = _Record(key, version.version_id, history[: self.keep_versions])
        self._commit(key_dir, old, record)

    def _existing_key_dir(self, key: str) -> Path:
        # Checked before locking so that a typo does not leave an empty folder behind.
        key_dir = self._key_dir(key)
        if not (key_dir / _RECORD).is_file():
            raise NotFound(f"no object {key!r} in {self.root}; check the key")
        return key_dir

    def _current(self, key: str) -> tuple[Path, _Version]:
        key_dir = self._key_dir(key)
        record = self._read_record(key_dir)
        version = record.current_version() if record else None
        if version is None:
            raise NotFound(f"no object {key!r} in {self.root}; check the key or publish it first")
        return key_dir, version

    # -- operations ----------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        self._write_tmp(b"").unlink()

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> ObjectInfo:
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        # The slow part (writing and flushing the content) runs before taking the key's lock.
        tmp = self._write_tmp(data)
        try:
            key_dir = self._key_dir(key)
            if not key_dir.is_dir():
                key_dir.mkdir(parents=True, exist_ok=True)
                _fsync_dir(self.objects)
            with self._locked(key_dir):
                version_id = _new_version_id()
                blob = version_id + _BLOB_SUFFIX
                # A crash between this rename and the commit leaves an unreferenced blob, which
                # cleanup_temp removes; it is never visible as a version.
                tmp.replace(key_dir / blob)
                _fsync_dir(key_dir)
                version = _Version(
                    version_id=version_id,
                    blob=blob,
                    size=len(data),
                    etag=etag,
                    last_modified=datetime.now(UTC).isoformat(),
                    metadata=metadata,
                )
                self._add_version(key, key_dir, version)
                return version.info(key)
        finally:
            tmp.unlink(missing_ok=True)

    def get_version(self, key: str, version_id: str) -> tuple[bytes, ObjectInfo]:
        key_dir = self._existing_key_dir(key)
        record = self._read_record(key_dir)
        wanted = next(
            (v for v in (record.versions if record else ()) if v.version_id == version_id), None
        )
        missing = NotFound(
            f"no version {version_id!r} of {key!r} in {self.root}; "
            "list the kept ones with versions()"
        )
        if wanted is None:
            raise missing
        try:
            data = (key_dir / wanted.blob).read_bytes()
        except FileNotFoundError:  # pruned by a concurrent put since the record was read
            raise missing from None
        return data, wanted.info(key)

    def get(self, key: str) -> tuple[bytes, ObjectInfo]:
        # A concurrent put may prune the version read from the record before its blob is opened;
        # reading the record again then finds a newer, complete version.
        missing: _Version | None = None
        for _ in range(_GET_ATTEMPTS):
            key_dir, version = self._current(key)
            try:
                data = (key_dir / version.blob).read_bytes()
            except FileNotFoundError:
                if version == missing:
                    raise StorageError(
                        f"object {key!r} in {self.root}: the content file {version.blob} of its "
                        f"current version is missing from {key_dir}; the folder was changed "
                        "outside the store, restore an older version with restore()"
                    ) from None
                missing = version
                continue
            if len(data) != version.size:
                raise StorageError(
                    f"object {key!r} in {self.root}: {key_dir / version.blob} holds {len(data)} "
                    f"bytes, its record says {version.size}; the file was changed outside the "
                    "store, restore an older version"
                )
            return data, version.info(key)
        raise StorageUnavailable(
            f"object {key!r} in {self.root} kept changing while being read; retry later"
        )

    def head(self, key: str) -> ObjectInfo:
        return self._current(key)[1].info(key)

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        if not self.objects.is_dir():
            return found
        for key_dir in self.objects.iterdir():
            record = self._read_record(key_dir)
            version = record.current_version() if record else None
            if record and version and record.key.startswith(prefix):
                found.append(version.info(record.key))
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        key_dir = self._existing_key_dir(key)
        with self._locked(key_dir):
            record = self._read_record(key_dir)
            if record is None or record.current is None:
                raise NotFound(f"no object {key!r} in {self.root} to delete; check the key")
            # Like a delete marker in a versioned bucket: the history stays restorable.
            self._commit(key_dir, record, replace(record, current=None))

    def versions(self, key: str) -> builtins.list[ObjectInfo]:
        record = self._read_record(self._key_dir(key))
        if record is None or not record.versions:
            raise NotFound(f"no version of {key!r} in {self.root}; check the key")
        return [v.info(key) for v in record.versions]

    def restore(self, key: str, version_id: str) -> ObjectInfo:
        key_dir = self._existing_key_dir(key)
        with self._locked(key_dir):
            record = self._read_record(key_dir)
            versions = record.versions if record else ()
            wanted = next((v for v in versions if v.version_id == version_id), None)
            if wanted is None:
                raise NotFound(
                    f"no version {version_id!r} of {key!r} in {self.root}; "
                    "list the kept ones with versions()"
                )
            # The new version shares the old one's immutable blob: no copy needed.
            version = replace(
                wanted,
                version_id=_new_version_id(),
                last_modified=datetime.now(UTC).isoformat(),
            )
            self._add_version(key, key_dir, version)
        return version.info(key)

    def cleanup_temp(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        if self.tmp.is_dir():
            for path in self.tmp.iterdir():
                if _older(path, cutoff):
                    path.unlink(missing_ok=True)
                    removed += 1
        if self.objects.is_dir():
            for key_dir in self.objects.iterdir():
                removed += self._remove_orphan_blobs(key_dir, cutoff)
        return removed

    def _remove_orphan_blobs(self, key_dir: Path, cutoff: float) -> int:
        """Remove blobs a killed put moved into place but never committed."""
        removed = 0
        with self._locked(key_dir):
            record = self._read_record(key_dir)
            kept = {v.blob for v in record.versions} if record else set()
            for blob in key_dir.glob("*" + _BLOB_SUFFIX):
                if blob.name not in kept and _older(blob, cutoff):
                    blob.unlink(missing_ok=True)
                    removed += 1
        return removed


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False
