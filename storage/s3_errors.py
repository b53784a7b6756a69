"""The mapping of botocore and aiohttp failures to :mod:`storage.errors`, for the S3 backend.

Every S3 call runs inside :func:`mapped_errors`, so nothing above ``storage/`` ever sees (or
needs to import) botocore. The messages name the bucket, the endpoint and the key, and say
what to check; they never show credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from storage.errors import AccessDenied, NotFound, StorageError, StorageUnavailable

__all__ = [
    "CONNECTION_ERRORS",
    "CONNECTION_HINT",
    "QUIET_ERRORS",
    "client_error",
    "error_code",
    "mapped_errors",
]

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "403",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "ServerBusy"}
)
CONNECTION_ERRORS = (BotoConnectionError, HTTPClientError, aiohttp.ClientError, OSError)
"""What a request raises when the server cannot be reached or the connection drops."""
QUIET_ERRORS = (ClientError, BotoCoreError, *CONNECTION_ERRORS, TimeoutError)
"""Every failure of a best-effort clean-up call, which is logged rather than raised."""
CONNECTION_HINT = (
    "check the endpoint URL, that the server is running and that the network reaches it"
)


def error_code(error: Any) -> tuple[str, int]:
    """Return the S3 error code and HTTP status of a botocore error (``""``/0 when absent)."""
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


@contextmanager
def mapped_errors(action: str, where: str, target: str) -> Iterator[None]:
    """Map every botocore/aiohttp failure inside the block to a storage error.

    Parameters
    ----------
    action : str
        Completes the sentence "cannot ..." in the message, e.g. ``"read 'hybrid.pkl'"``.
    where : str
        The bucket and its endpoint, e.g. ``"bucket 'models' at http://minio:9000"``.
    target : str
        What the action was on: ``where`` itself or a key in it.
    """
    try:
        yield
    except StorageError:
        raise
    except ClientError as e:
        raise client_error(e, action, where, target) from e
    except (NoCredentialsError, PartialCredentialsError) as e:
        raise AccessDenied(
            f"cannot {action} ({target}): no usable AWS credentials ({e}); "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role"
        ) from e
    except (*CONNECTION_ERRORS, TimeoutError) as e:
        raise StorageUnavailable(
            f"cannot {action} ({target}): no answer from the server "
            f"({type(e).__name__}: {e}); {CONNECTION_HINT}"
        ) from e
    except BotoCoreError as e:
        raise StorageError(f"cannot {action} ({target}): {e}") from e


def client_error(error: Any, action: str, where: str, target: str) -> StorageError:
    """Return the storage error for an S3 error answer (a botocore ``ClientError``)."""
    code, status = error_code(error)
    if code == "NoSuchBucket":
        return NotFound(
            f"cannot {action}: {where} does not exist; create it or open the store with "
            "create_bucket=True"
        )
    if code in _NOT_FOUND_CODES or status == 404:
        return NotFound(f"cannot {action}: no {target}; check the key and the prefix")
    if code in _DENIED_CODES or status == 403:
        return AccessDenied(
            f"cannot {action}: access to {target} denied ({code}); check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
        )
    if status >= 500 or code in _UNAVAILABLE_CODES:
        return StorageUnavailable(
            f"cannot {action}: the server failed on {target} ({code}, HTTP {status}) "
            "on every attempt; check the S3 server's health and logs"
        )
    message = getattr(error, "response", {}).get("Error", {}).get("Message", "")
    return StorageError(f"cannot {action}: {target} was refused ({code}: {message})")
