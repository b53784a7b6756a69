"""``open_store``, the one way to get a store from a URL: it picks and builds the backend.

The backends are imported inside :func:`open_store`, so a process using only a local folder
never loads aioboto3, and the interface (:mod:`storage.base`) never imports its implementations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from storage.keys import normalize_prefix
from storage.settings import StoreSettings

if TYPE_CHECKING:
    from storage.base import ArtifactStore

__all__ = ["open_store"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def open_store(url: str, settings: StoreSettings | None = None) -> ArtifactStore:
    """Return the (not yet opened) store named by ``url``.

    Parameters
    ----------
    url : str
        ``s3://bucket/prefix`` for an S3 bucket, ``file:///abs/path`` or a plain path for a
        local folder (a relative path is resolved against the current directory).
    settings : StoreSettings, optional
        Endpoint, region, timeouts and the rest; the defaults when None (AWS's endpoint,
        credentials and region from the standard AWS variables and chain). A local folder
        only reads ``keep_versions``.

    Returns
    -------
    ArtifactStore
        Use it as ``async with open_store(url) as store``.

    Raises
    ------
    ValueError
        If the URL is not valid; the message says what is expected.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(
            f"store URL {url!r} is empty; use s3://bucket/prefix, file:///abs/path or a path"
        )
    if settings is None:
        settings = StoreSettings()
    if urlsplit(url).scheme == "s3":
        bucket, prefix = _parse_s3_url(url)
        from storage.s3 import S3Backend

        return S3Backend(bucket, prefix, settings)
    from storage.local import LocalBackend

    return LocalBackend(_parse_local_url(url), settings)


def _parse_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError(
            "the s3:// store URL must not hold credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {url!r}: remove the '?' or '#' part; use s3://bucket/prefix")
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"store URL {url!r}: {bucket!r} is not a valid bucket name (3-63 lower-case "
            "letters, digits, '.' or '-'); use s3://bucket/prefix"
        )
    try:
        prefix = normalize_prefix(unquote(parts.path))
    except ValueError as e:
        raise ValueError(f"store URL {url!r}: {e}") from e
    return bucket, prefix


def _parse_local_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file" and "://" not in url:
        return Path(url).expanduser().resolve()
    if parts.scheme != "file":
        raise ValueError(
            f"store URL {url!r}: unsupported scheme {parts.scheme!r}; use s3://bucket/prefix, "
            "file:///abs/path or a plain path"
        )
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"store URL {url!r}: a file URL needs an absolute path and no host, "
            "e.g. file:///var/lib/wisata/models"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"store URL {url!r}: use an absolute path, e.g. file:///srv/models")
    return Path(path).resolve()
