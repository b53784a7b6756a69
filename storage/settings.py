"""The settings of an artifact store: one frozen, validated :class:`StoreSettings`.

The caller (the service's configuration layer, a job, a test) builds it from wherever its
values come from; nothing in ``storage/`` looks them up itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PART_SIZE", "MAX_SINGLE_REQUEST", "MIN_PART_SIZE", "MiB", "StoreSettings"]

MiB = 1024**2
MAX_SINGLE_REQUEST = 5 * 1024 * MiB
"""S3's limit for one PutObject or CopyObject; larger objects go in parts."""
DEFAULT_PART_SIZE = 64 * MiB
MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (all but the last) of a multipart upload."""


@dataclass(frozen=True)
class StoreSettings:
    """How to reach and run a store; every field has a working default.

    Parameters
    ----------
    endpoint : str, optional
        S3 endpoint URL, e.g. ``http://minio:9000``; None for AWS's own endpoint. Credentials
        never go here: they come from the standard AWS variables and chain. A trailing slash
        is removed.
    endpoint_source : str, optional
        Where the caller's operator sets the endpoint (a variable or option name); errors
        that name the endpoint name it too, so that they say what to fix.
    region : str, optional
        S3 region; None lets the AWS chain decide (``AWS_DEFAULT_REGION`` ...).
    create_bucket, versioning : bool
        Let ``ensure_ready`` create a missing bucket / turn on bucket versioning (S3 only).
    connect_timeout, read_timeout : float
        Seconds to wait for a connection and for each read (S3 only).
    max_attempts : int
        Attempts per S3 request, the first one included (botocore "standard" retry mode).
    multipart_threshold : int
        Objects larger than this many bytes are uploaded and copied in parts (S3 only; at
        most 5 GiB, S3's limit for one request).
    part_size : int
        Size of each part, 5 MiB to 5 GiB; grown when an object would need over 10000 parts.
    keep_versions : int
        How many versions of each key the local folder keeps, the current one included.

    Raises
    ------
    ValueError
        If a value is out of range; the message names the setting and what to use.
    """

    endpoint: str | None = None
    endpoint_source: str | None = None
    region: str | None = None
    create_bucket: bool = False
    versioning: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    multipart_threshold: int = MAX_SINGLE_REQUEST
    part_size: int = DEFAULT_PART_SIZE
    keep_versions: int = 5

    def __post_init__(self) -> None:
        # Frozen: the normalized endpoint has to be set through object.__setattr__.
        object.__setattr__(self, "endpoint", _check_endpoint(self.endpoint))
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.name.endswith("_timeout") and not value > 0:
                raise ValueError(
                    f"{setting.name} must be a positive number of seconds, got {value!r}; "
                    f"e.g. {setting.default}"
                )
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be at least 1 (the first attempt), got {self.max_attempts}"
            )
        if not MIN_PART_SIZE <= self.part_size <= MAX_SINGLE_REQUEST:
            raise ValueError(
                f"part_size must be between 5 MiB and 5 GiB, got {self.part_size}; "
                f"e.g. {DEFAULT_PART_SIZE} (64 MiB)"
            )
        if not 0 < self.multipart_threshold <= MAX_SINGLE_REQUEST:
            raise ValueError(
                f"multipart_threshold must be between 1 and 5 GiB, got "
                f"{self.multipart_threshold}; e.g. {MAX_SINGLE_REQUEST} (5 GiB)"
            )
        if self.keep_versions < 1:
            raise ValueError(
                f"keep_versions must be at least 1 (the current version), got {self.keep_versions}"
            )


def _check_endpoint(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"endpoint {endpoint!r} is not an http(s) URL; use the S3 server's URL, "
            "e.g. http://minio:9000"
        )
    if parts.username or parts.password:
        raise ValueError(
            "the S3 endpoint must not hold credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead of putting them in the endpoint"
        )
    return endpoint.rstrip("/")
