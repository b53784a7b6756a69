"""Artifact store on an S3-compatible bucket (MinIO, AWS S3) through aioboto3.

``put`` uploads to ``<prefix>/.tmp/<uuid>``, checks the stored size and ETag, copies the object
into place server-side and deletes the temporary object, so the final key only ever changes by
one atomic server-side write. Objects larger than ``multipart_threshold`` (5 GiB, S3's limit for
one request) are uploaded and copied in parts.

Every botocore and aiohttp failure is mapped here to :mod:`storage.errors`; nothing else in the
project needs to import botocore.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import logging
import math
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from storage.base import ENDPOINT_ENV, ArtifactStore, ObjectInfo, StoreDescription
from storage.errors import AccessDenied, NotFound, StorageError, StorageUnavailable
from storage.keys import (
    TMP_DIR,
    join_key,
    normalize_metadata,
    normalize_prefix,
    validate_key,
    validate_list_prefix,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

__all__ = ["DEFAULT_PART_SIZE", "MAX_SINGLE_REQUEST", "S3Backend"]

logger = logging.getLogger(__name__)

MiB = 1024**2
MAX_SINGLE_REQUEST = 5 * 1024 * MiB
"""S3's limit for one PutObject or CopyObject; larger objects go in parts."""
DEFAULT_PART_SIZE = 64 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
_HEAD_CONCURRENCY = 8

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
_CONNECTION_ERRORS = (BotoConnectionError, HTTPClientError, aiohttp.ClientError, OSError)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _content_md5(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _plain_etag(etag: str) -> str:
    return etag.strip('"')


def _version_id(raw: str | None) -> str | None:
    # An unversioned bucket reports its objects' version as the string "null".
    return None if raw in (None, "", "null") else raw


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _error_code(error: Any) -> tuple[str, int]:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Backend(ArtifactStore):
    """Artifact store on an S3 bucket, under an optional key prefix.

    One aioboto3 session and one client, opened by ``async with`` and closed at its end.

    Parameters
    ----------
    bucket : str
        The bucket's name.
    prefix : str
        Prefix of every key in the bucket, e.g. ``"wisata"``; slashes around it are ignored.
    endpoint : str, optional
        Endpoint URL (``http://minio:9000``); None for AWS.
    region : str, optional
        Region name; None lets the AWS chain decide.
    create_bucket, versioning : bool
        Whether ``ensure_ready`` may create a missing bucket / turn on bucket versioning.
    connect_timeout, read_timeout : float
        Seconds to wait for a connection and for each read.
    max_attempts : int
        Attempts per request, the first one included (botocore "standard" retry mode).
    multipart_threshold : int
        Objects larger than this many bytes are uploaded and copied in parts.
    part_size : int
        Size of each part (at least 5 MiB; grown when an object would need over 10000 parts).
    session : aioboto3.Session, optional
        Session to create the client from, e.g. one carrying botocore event handlers.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        create_bucket: bool = False,
        versioning: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        multipart_threshold: int = MAX_SINGLE_REQUEST,
        part_size: int = DEFAULT_PART_SIZE,
        session: aioboto3.Session | None = None,
    ) -> None:
        _check_positive(connect_timeout=connect_timeout, read_timeout=read_timeout)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if not MIN_PART_SIZE <= part_size <= MAX_SINGLE_REQUEST:
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB, got {part_size}")
        if not 0 < multipart_threshold <= MAX_SINGLE_REQUEST:
            raise ValueError(
                f"multipart_threshold must be between 1 and 5 GiB, got {multipart_threshold}"
            )
        self._bucket = bucket
        self._prefix = normalize_prefix(prefix)
        self._endpoint = _check_endpoint(endpoint)
        self._region = region
        self._create_bucket = create_bucket
        self._versioning = versioning
        self._connect_timeout = connect_timeout
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            # Content-MD5 is sent on every upload; the newer default checksums are not
            # understood by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._session = session if session is not None else aioboto3.Session()
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                self._session.client(
                    "s3",
                    endpoint_url=self._endpoint,
                    region_name=self._region,
                    config=self._config,
                )
            )
        except BotoCoreError as e:
            await stack.aclose()
            raise StorageError(f"cannot open an S3 client for {self._where()}: {e}") from e
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def describe(self) -> StoreDescription:
        url = f"s3://{self._bucket}/{self._prefix}".rstrip("/")
        at = f" at {self._endpoint}" if self._endpoint else " on AWS"
        return StoreDescription(
            backend="s3",
            bucket=self._bucket,
            prefix=self._prefix,
            endpoint=self._endpoint,
            location=url + at,
        )

    # -- naming and errors ---------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return join_key(self._prefix, key)

    def _relative(self, full_key: str) -> str | None:
        if not self._prefix:
            return full_key
        head = self._prefix + "/"
        return full_key[len(head) :] if full_key.startswith(head) else None

    def _where(self) -> str:
        return f"bucket {self._bucket!r} at {self._endpoint or 'the AWS endpoint'}"

    def _require_client(self) -> S3Client:
        if self._client is None:
            raise StorageError(
                f"the store on {self._where()} is not open; "
                "use 'async with open_store(...) as store'"
            )
        return self._client

    @contextmanager
    def _errors(self, action: str, full_key: str | None = None) -> Iterator[None]:
        """Map every botocore/aiohttp failure inside the block to a storage error.

        ``action`` completes the sentence "cannot ..." in the message.
        """
        try:
            yield
        except StorageError:
            raise
        except ClientError as e:
            raise self._client_error(e, action, self._target(full_key)) from e
        except (NoCredentialsError, PartialCredentialsError) as e:
            raise AccessDenied(
                f"cannot {action} ({self._target(full_key)}): no usable AWS credentials ({e}); "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role"
            ) from e
        except (*_CONNECTION_ERRORS, TimeoutError) as e:
            raise StorageUnavailable(
                f"cannot {action} ({self._target(full_key)}): no answer from the server "
                f"({type(e).__name__}: {e}); check {ENDPOINT_ENV}, that the server is "
                "running and that the network reaches it"
            ) from e
        except BotoCoreError as e:
            raise StorageError(f"cannot {action} ({self._target(full_key)}): {e}") from e

    def _target(self, full_key: str | None) -> str:
        return f"key {full_key!r} in {self._where()}" if full_key else self._where()

    def _client_error(self, error: Any, action: str, target: str) -> StorageError:
        code, status = _error_code(error)
        if code == "NoSuchBucket":
            return NotFound(
                f"cannot {action}: {self._where()} does not exist; create it or open the "
                "store with create_bucket=True"
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

    # -- readiness -----------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        client = self._require_client()
        try:
            # The whole probe, retries included, must fail within the connect timeout so that
            # a service starting without its S3 server says so at once.
            async with asyncio.timeout(self._connect_timeout):
                exists = await self._bucket_exists(client)
        except TimeoutError as e:
            raise StorageUnavailable(
                f"no answer from {self._where()} within {self._connect_timeout:g} s; check "
                f"{ENDPOINT_ENV}, that the server is running and that the network reaches it"
            ) from e
        if not exists:
            if not self._create_bucket:
                raise NotFound(
                    f"{self._where()} does not exist; create it or open the store with "
                    "create_bucket=True"
                )
            await self._make_bucket(client)
        if self._versioning:
            await self._enable_versioning(client)

    async def _bucket_exists(self, client: S3Client) -> bool:
        with self._errors("check the bucket"):
            try:
                await client.head_bucket(Bucket=self._bucket)
            except ClientError as e:
                code, status = _error_code(e)
                if status == 404 or code in ("NoSuchBucket", "NotFound", "404"):
                    return False
                raise
        return True

    async def _make_bucket(self, client: S3Client) -> None:
        region = client.meta.region_name
        with self._errors("create the bucket"):
            try:
                if region and region != "us-east-1":
                    location = cast("BucketLocationConstraintType", region)
                    await client.create_bucket(
                        Bucket=self._bucket,
                        CreateBucketConfiguration={"LocationConstraint": location},
                    )
                else:
                    await client.create_bucket(Bucket=self._bucket)
            except ClientError as e:
                # Another replica starting at the same time may have created it first.
                if _error_code(e)[0] != "BucketAlreadyOwnedByYou":
                    raise
        logger.info("created %s", self._where())

    async def _enable_versioning(self, client: S3Client) -> None:
        with self._errors("turn on bucket versioning"):
            state = await client.get_bucket_versioning(Bucket=self._bucket)
            if state.get("Status") != "Enabled":
                await client.put_bucket_versioning(
                    Bucket=self._bucket, VersioningConfiguration={"Status": "Enabled"}
                )
                logger.info("turned on versioning of %s", self._where())

    # -- publishing ----------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        validate_key(key)
        clean = normalize_metadata(metadata)
        client = self._require_client()
        data = bytes(data)
        tmp = self._full(f"{TMP_DIR}/{uuid.uuid4().hex}")
        with self._errors(f"publish {key!r}", self._full(key)):
            expected_etag, tmp_version = await self._upload(client, tmp, data, clean)
            try:
                await self._check_upload(client, tmp, tmp_version, len(data), expected_etag)
                source: CopySourceTypeDef = {"Bucket": self._bucket, "Key": tmp}
                if tmp_version:
                    source["VersionId"] = tmp_version
                info = await self._copy_into_place(client, source, key, len(data), clean)
            finally:
                await self._discard(client, tmp, tmp_version)
        logger.info(
            "published %s (%d bytes, etag %s) to %s", key, info.size, info.etag, self._where()
        )
        return info

    def _part_size_for(self, size: int) -> int:
        return max(self._part_size, math.ceil(size / MAX_PARTS))

    async def _upload(
        self, client: S3Client, tmp: str, data: bytes, metadata: dict[str, str]
    ) -> tuple[str, str | None]:
        """Upload ``data`` to ``tmp``; return the ETag it must have and its version id."""
        if len(data) > self._multipart_threshold:
            return await self._upload_parts(client, tmp, data, metadata)
        digest = await asyncio.to_thread(_md5, data)
        response = await client.put_object(
            Bucket=self._bucket,
            Key=tmp,
            Body=data,
            Metadata=metadata,
            ContentMD5=_content_md5(digest),
        )
        return digest.hex(), response.get("VersionId")

    async def _upload_parts(
        self, client: S3Client, tmp: str, data: bytes, metadata: dict[str, str]
    ) -> tuple[str, str | None]:
        part_size = self._part_size_for(len(data))
        created = await client.create_multipart_upload(
            Bucket=self._bucket, Key=tmp, Metadata=metadata
        )
        upload_id = created["UploadId"]
        parts: builtins.list[CompletedPartTypeDef] = []
        digests: builtins.list[bytes] = []
        try:
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                chunk = data[start : start + part_size]
                digest = await asyncio.to_thread(_md5, chunk)
                response = await client.upload_part(
                    Bucket=self._bucket,
                    Key=tmp,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=_content_md5(digest),
                )
                parts.append({"ETag": response["ETag"], "PartNumber": number})
                digests.append(digest)
            done = await client.complete_multipart_upload(
                Bucket=self._bucket, Key=tmp, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await self._abort(client, tmp, upload_id)
            raise
        # S3's multipart ETag: the MD5 of the concatenated part MD5s, then the part count.
        etag = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(parts)}"
        return etag, done.get("VersionId")

    async def _check_upload(
        self, client: S3Client, tmp: str, version: str | None, size: int, etag: str
    ) -> None:
        stored = await self._head_raw(client, tmp, version)
        stored_etag = _plain_etag(stored["ETag"])
        if stored["ContentLength"] != size or stored_etag != etag:
            raise StorageError(
                f"the temporary upload {tmp!r} in {self._where()} holds "
                f"{stored['ContentLength']} bytes with ETag {stored_etag}, expected {size} bytes "
                f"with ETag {etag} (MD5); the final key was not changed, retry the publish "
                "(a bucket encrypting with SSE-KMS/SSE-C does not return MD5 ETags)"
            )

    async def _copy_into_place(
        self,
        client: S3Client,
        source: CopySourceTypeDef,
        key: str,
        size: int,
        metadata: dict[str, str],
    ) -> ObjectInfo:
        """Copy ``source`` to ``key`` server-side, keeping its metadata; one atomic write."""
        final = self._full(key)
        if size > self._multipart_threshold:
            version = await self._copy_parts(client, source, final, size, metadata)
            return await self._head(client, key, version)
        response = await client.copy_object(
            CopySource=source, Bucket=self._bucket, Key=final, MetadataDirective="COPY"
        )
        result = response["CopyObjectResult"]
        if "ETag" not in result or "LastModified" not in result:
            return await self._head(client, key, _version_id(response.get("VersionId")))
        return ObjectInfo(
            key=key,
            size=size,
            etag=_plain_etag(result["ETag"]),
            last_modified=_utc(result["LastModified"]),
            version_id=_version_id(response.get("VersionId")),
            metadata=dict(metadata),
        )

    async def _copy_parts(
        self,
        client: S3Client,
        source: CopySourceTypeDef,
        final: str,
        size: int,
        metadata: dict[str, str],
    ) -> str | None:
        # A multipart copy does not carry the source's metadata over: it is set on creation.
        part_size = self._part_size_for(size)
        created = await client.create_multipart_upload(
            Bucket=self._bucket, Key=final, Metadata=metadata
        )
        upload_id = created["UploadId"]
        parts: builtins.list[CompletedPartTypeDef] = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                response = await client.upload_part_copy(
                    Bucket=self._bucket,
                    Key=final,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": response["CopyPartResult"]["ETag"], "PartNumber": number})
            done = await client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=final,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(client, final, upload_id)
            raise
        return _version_id(done.get("VersionId"))

    async def _abort(self, client: S3Client, key: str, upload_id: str) -> None:
        try:
            await client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError, *_CONNECTION_ERRORS, TimeoutError) as e:
            logger.warning(
                "could not abort the multipart upload of %s in %s (%s); cleanup_temp aborts it "
                "later",
                key,
                self._where(),
                e,
            )

    async def _discard(self, client: S3Client, tmp: str, version: str | None) -> None:
        """Delete the temporary object (that exact version, so no history is left behind)."""
        try:
            if version:
                await client.delete_object(Bucket=self._bucket, Key=tmp, VersionId=version)
            else:
                await client.delete_object(Bucket=self._bucket, Key=tmp)
        except (ClientError, BotoCoreError, *_CONNECTION_ERRORS, TimeoutError) as e:
            logger.warning(
                "could not delete the temporary object %s in %s (%s); cleanup_temp removes it "
                "later",
                tmp,
                self._where(),
                e,
            )

    # -- reading -------------------------------------------------------------------------------

    async def _head_raw(self, client: S3Client, full_key: str, version: str | None) -> Any:
        if version:
            return await client.head_object(Bucket=self._bucket, Key=full_key, VersionId=version)
        return await client.head_object(Bucket=self._bucket, Key=full_key)

    async def _head(self, client: S3Client, key: str, version: str | None) -> ObjectInfo:
        response = await self._head_raw(client, self._full(key), version)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=_plain_etag(response["ETag"]),
            last_modified=_utc(response["LastModified"]),
            version_id=_version_id(response.get("VersionId")),
            metadata=dict(response.get("Metadata", {})),
        )

    async def get(self, key: str, version_id: str | None = None) -> tuple[bytes, ObjectInfo]:
        validate_key(key)
        client = self._require_client()
        full = self._full(key)
        with self._errors(f"read {key!r}", full):
            if version_id:
                response = await client.get_object(
                    Bucket=self._bucket, Key=full, VersionId=version_id
                )
            else:
                response = await client.get_object(Bucket=self._bucket, Key=full)
            async with response["Body"] as body:
                data: bytes = await body.read()
        info = ObjectInfo(
            key=key,
            size=response["ContentLength"],
            etag=_plain_etag(response["ETag"]),
            last_modified=_utc(response["LastModified"]),
            version_id=_version_id(response.get("VersionId")),
            metadata=dict(response.get("Metadata", {})),
        )
        if len(data) != info.size:
            raise StorageUnavailable(
                f"cannot read {key!r}: {self._where()} sent {len(data)} of {info.size} bytes; "
                "retry, and check the network if it happens again"
            )
        return data, info

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        client = self._require_client()
        with self._errors(f"look up {key!r}", self._full(key)):
            return await self._head(client, key, None)

    async def _heads(
        self, client: S3Client, wanted: builtins.list[tuple[str, str | None]]
    ) -> builtins.list[ObjectInfo]:
        """HEAD several objects (for their metadata), a few at a time, keeping the order.

        One that disappeared meanwhile is left out.
        """
        limit = asyncio.Semaphore(_HEAD_CONCURRENCY)

        async def one(key: str, version: str | None) -> ObjectInfo | None:
            async with limit:
                try:
                    with self._errors(f"look up {key!r}", self._full(key)):
                        return await self._head(client, key, version)
                except NotFound:
                    return None

        results = await asyncio.gather(*(one(k, v) for k, v in wanted), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, ObjectInfo)]

    async def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        validate_list_prefix(prefix)
        client = self._require_client()
        keys: builtins.list[tuple[str, str | None]] = []
        with self._errors(f"list {prefix!r}", self._full(prefix)):
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._full(prefix)
            )
            async for page in pages:
                for entry in page.get("Contents", []):
                    key = self._relative(entry.get("Key", ""))
                    if key and _listable(key):
                        keys.append((key, None))
            infos = await self._heads(client, keys)
        return sorted(infos, key=lambda info: info.key)

    async def delete(self, key: str) -> None:
        validate_key(key)
        client = self._require_client()
        full = self._full(key)
        with self._errors(f"delete {key!r}", full):
            # DeleteObject succeeds on a missing key; look first so a typo is reported.
            await client.head_object(Bucket=self._bucket, Key=full)
            await client.delete_object(Bucket=self._bucket, Key=full)
        logger.info("deleted %s in %s", key, self._where())

    # -- versions ------------------------------------------------------------------------------

    async def versions(self, key: str) -> builtins.list[ObjectInfo]:
        validate_key(key)
        client = self._require_client()
        full = self._full(key)
        wanted: builtins.list[tuple[str, str | None]] = []
        with self._errors(f"list the versions of {key!r}", full):
            pages = client.get_paginator("list_object_versions").paginate(
                Bucket=self._bucket, Prefix=full
            )
            async for page in pages:
                # S3 lists the versions of a key newest first.
                for entry in page.get("Versions", []):
                    if entry.get("Key") != full:
                        continue
                    version = entry.get("VersionId")
                    # The current object of an unversioned bucket has version "null", which
                    # not every server accepts back as a versionId.
                    if version == "null" and entry.get("IsLatest"):
                        version = None
                    wanted.append((key, version))
            infos = await self._heads(client, wanted)
        if not infos:
            raise NotFound(f"no version of key {full!r} in {self._where()}; check the key")
        return infos

    async def restore(self, key: str, version_id: str) -> ObjectInfo:
        validate_key(key)
        if not isinstance(version_id, str) or not version_id:
            raise ValueError(f"version id {version_id!r} of {key!r} must be a non-empty str")
        client = self._require_client()
        full = self._full(key)
        with self._errors(f"restore version {version_id!r} of {key!r}", full):
            try:
                old = await client.head_object(Bucket=self._bucket, Key=full, VersionId=version_id)
            except ClientError as e:
                # S3 answers a malformed version id with 400 rather than 404.
                if _error_code(e)[1] == 400:
                    raise NotFound(
                        f"no version {version_id!r} of key {full!r} in {self._where()}; "
                        "list the kept ones with versions()"
                    ) from e
                raise
            source: CopySourceTypeDef = {
                "Bucket": self._bucket,
                "Key": full,
                "VersionId": version_id,
            }
            info = await self._copy_into_place(
                client, source, key, old["ContentLength"], dict(old.get("Metadata", {}))
            )
        logger.info("restored %s version %s in %s", key, version_id, self._where())
        return info

    # -- housekeeping --------------------------------------------------------------------------

    async def cleanup_temp(self, older_than: timedelta = timedelta(hours=1)) -> int:
        client = self._require_client()
        cutoff = datetime.now(UTC) - older_than
        tmp_prefix = self._full(f"{TMP_DIR}/")
        removed = 0
        with self._errors("remove temporary uploads", tmp_prefix):
            stale: builtins.list[tuple[str, str, bool]] = []
            pages = client.get_paginator("list_object_versions").paginate(
                Bucket=self._bucket, Prefix=tmp_prefix
            )
            async for page in pages:
                # Every version goes, so a versioned bucket keeps no copy of a temporary upload.
                for entry in page.get("Versions", []):
                    if entry.get("LastModified", cutoff) <= cutoff:
                        stale.append((entry.get("Key", ""), entry.get("VersionId", "null"), True))
                for marker in page.get("DeleteMarkers", []):
                    if marker.get("LastModified", cutoff) <= cutoff:
                        stale.append(
                            (marker.get("Key", ""), marker.get("VersionId", "null"), False)
                        )
            for tmp, version, is_object in stale:
                await client.delete_object(Bucket=self._bucket, Key=tmp, VersionId=version)
                removed += 1 if is_object else 0
            removed += await self._abort_stale_uploads(client, cutoff)
        if removed:
            logger.info("removed %d temporary uploads in %s", removed, self._where())
        return removed

    async def _abort_stale_uploads(self, client: S3Client, cutoff: datetime) -> int:
        """Abort multipart uploads (to ``.tmp/`` or to a final key) left by killed writers."""
        aborted = 0
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._bucket, Prefix=self._full("")
        )
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Initiated", cutoff) <= cutoff:
                    await client.abort_multipart_upload(
                        Bucket=self._bucket,
                        Key=upload.get("Key", ""),
                        UploadId=upload.get("UploadId", ""),
                    )
                    aborted += 1
        return aborted


def _listable(key: str) -> bool:
    """Whether ``list`` shows ``key``: not a temporary upload, and addressable by this API."""
    try:
        validate_key(key)
    except ValueError:
        return False
    return True


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _check_endpoint(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"S3 endpoint {endpoint!r} is not an http(s) URL; set {ENDPOINT_ENV} to e.g. "
            "http://minio:9000"
        )
    if parts.username or parts.password:
        raise ValueError(
            f"the S3 endpoint must not hold credentials; set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY instead of putting them in {ENDPOINT_ENV}"
        )
    return endpoint.rstrip("/")
