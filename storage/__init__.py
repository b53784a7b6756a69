"""Where trained models live: an async artifact store on S3 or on a local folder.

Open one with :func:`open_store` and use it as an async context manager::

    async with open_store("s3://models/wisata", StoreSettings(endpoint=url)) as store:
        await store.ensure_ready()
        info = await store.put("content_based.pkl", data, {"model": "content"})

Only this package talks to botocore; callers see :class:`ArtifactStore`, :class:`ObjectInfo`
and the :class:`StorageError` hierarchy, and hand it plain :class:`StoreSettings`: where their
values come from is the caller's business. The backends themselves are ``storage.s3.S3Backend``
and ``storage.local.LocalBackend``; they are not imported here so that a process using only a
local folder never loads aioboto3.
"""

from storage.base import ArtifactStore, ObjectInfo, StoreDescription
from storage.errors import AccessDenied, NotFound, StorageError, StorageUnavailable
from storage.factory import open_store
from storage.keys import validate_key
from storage.settings import StoreSettings

__all__ = [
    "AccessDenied",
    "ArtifactStore",
    "NotFound",
    "ObjectInfo",
    "StorageError",
    "StorageUnavailable",
    "StoreDescription",
    "StoreSettings",
    "open_store",
    "validate_key",
]
