"""The one exception hierarchy every artifact store raises.

Callers catch these and nothing else: each backend maps its own failures (botocore and aiohttp
errors for S3, ``OSError`` for the local folder) to one of them at the storage boundary, so no
code above ``storage/`` needs to import botocore.
"""

from __future__ import annotations

__all__ = ["AccessDenied", "NotFound", "StorageError", "StorageUnavailable"]


class StorageError(Exception):
    """An artifact store operation failed."""


class NotFound(StorageError):
    """The bucket, key or version asked for does not exist."""


class StorageUnavailable(StorageError):
    """The store could not be reached: connection refused, timeout, DNS failure or server error."""


class AccessDenied(StorageError):
    """The store refused the credentials, or the credentials do not allow the operation."""
