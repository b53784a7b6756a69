"""The artifact store on an S3-compatible bucket (MinIO, AWS S3): the :class:`S3Backend` class.

``put`` uploads to ``<prefix>/.tmp/<uuid>``, checks the stored size and ETag, copies the object
into place server-side and deletes the temporary object, so the final key only ever changes by
one atomic server-side write. Objects larger than ``multipart_threshold`` (5 GiB, S3's limit for
one request) are uploaded and copied in parts (:mod:`storage.s3_parts`). Every botocore and
aiohttp failure is mapped to :mod:`storage.errors` (:mod:`storage.s3_errors`).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager, AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from storage.base import ArtifactStore, ObjectInfo, StoreDescription
from storage.errors import NotFound, StorageError, StorageUnavailable
from storage.keys import (
    TMP_DIR,
    join_key,
    normalize_metadata,
    normalize_prefix,
    validate_key,
    validate_list_prefix,
)
from storage.s3_bucket import bucket_exists, create_bucket, enable_versioning, remove_stale_objects
from storage.s3_errors import CONNECTION_HINT, error_code, mapped_errors
from storage.s3_parts import Multipart
from storage.s3_publish import BucketWriter, head_object, object_info
from storage.settings import DEFAULT_PART_SIZE, MAX_SINGLE_REQUEST, StoreSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CopySourceTypeDef

__all__ = ["DEFAULT_PART_SIZE", "MAX_SINGLE_REQUEST", "S3Backend"]

logger = logging.getLogger(__name__)

_HEAD_CONCURRENCY = 8


class S3Backend(ArtifactStore):
    """Artifact store on an S3 bucket, under an optional key prefix.

    One aioboto3 session and one client, opened by ``async with`` and closed at its end.

    Parameters
    ----------
    bucket : str
        The bucket's name.
    prefix : str
        Prefix of every key in the bucket, e.g. ``"wisata"``; slashes around it are ignored.
    settings : StoreSettings, optional
        Endpoint, region, bucket creation, timeouts, retries and part sizes; the defaults
        (AWS, 5 s connect timeout, 3 attempts) when None.
    session : aioboto3.Session, optional
        Session to create the client from, e.g. one carrying botocore event handlers.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        settings: StoreSettings | None = None,
        *,
        session: aioboto3.Session | None = None,
    ) -> None:
        self._settings = settings if settings is not None else StoreSettings()
        self._bucket = bucket
        self._prefix = normalize_prefix(prefix)
        self._endpoint = self._settings.endpoint
        where = f"bucket {bucket!r} at {self._endpoint or 'the AWS endpoint'}"
        source = self._settings.endpoint_source
        # Named in every error of every call: built once.
        self._where_text = f"{where} (its endpoint is set by {source})" if source else where
        self._config = AioConfig(
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            retries={"max_attempts": self._settings.max_attempts, "mode": "standard"},
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
                    region_name=self._settings.region,
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
        return self._where_text

    def _require_client(self) -> S3Client:
        if self._client is None:
            raise StorageError(
                f"the store on {self._where()} is not open; "
                "use 'async with open_store(...) as store'"
            )
        return self._client

    def _errors(self, action: str, full_key: str | None = None) -> AbstractContextManager[None]:
        """Map the failures of the block to storage errors about ``full_key`` (or the bucket)."""
        target = f"key {full_key!r} in {self._where()}" if full_key else self._where()
        return mapped_errors(action, self._where(), target)

    def _writer(self, client: S3Client) -> BucketWriter:
        return BucketWriter(client, self._bucket, self._settings, self._where())

    # -- readiness -----------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        client = self._require_client()
        timeout = self._settings.connect_timeout
        try:
            # The whole probe, retries included, must fail within the connect timeout so that
            # a service starting without its S3 server says so at once.
            async with asyncio.timeout(timeout):
                exists = await bucket_exists(client, self._bucket, self._where())
        except TimeoutError as e:
            raise StorageUnavailable(
                f"no answer from {self._where()} within {timeout:g} s; {CONNECTION_HINT}"
            ) from e
        if not exists:
            if not self._settings.create_bucket:
                raise NotFound(
                    f"{self._where()} does not exist; create it or open the store with "
                    "create_bucket=True"
                )
            await create_bucket(client, self._bucket, self._where())
        if self._settings.versioning:
            await enable_versioning(client, self._bucket, self._where())

    # -- publishing ----------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        validate_key(key)
        clean = normalize_metadata(metadata)
        client = self._require_client()
        data = bytes(data)
        tmp = self._full(f"{TMP_DIR}/{uuid.uuid4().hex}")
        writer = self._writer(client)
        with self._errors(f"publish {key!r}", self._full(key)):
            expected_etag, tmp_version = await writer.upload(tmp, data, clean)
            try:
                await writer.check_upload(tmp, tmp_version, len(data), expected_etag)
                source: CopySourceTypeDef = {"Bucket": self._bucket, "Key": tmp}
                if tmp_version:
                    source["VersionId"] = tmp_version
                info = await writer.copy_into_place(source, key, self._full(key), len(data), clean)
            finally:
                await writer.discard(tmp, tmp_version)
        logger.info(
            "published %s (%d bytes, etag %s) to %s", key, info.size, info.etag, self._where()
        )
        return info

    # -- reading -------------------------------------------------------------------------------

    async def _head(self, client: S3Client, key: str, version: str | None) -> ObjectInfo:
        return object_info(key, await head_object(client, self._bucket, self._full(key), version))

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
        info = object_info(key, response)
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
                if error_code(e)[1] == 400:
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
            info = await self._writer(client).copy_into_place(
                source, key, full, old["ContentLength"], dict(old.get("Metadata", {}))
            )
        logger.info("restored %s version %s in %s", key, version_id, self._where())
        return info

    # -- housekeeping --------------------------------------------------------------------------

    async def cleanup_temp(self, older_than: timedelta = timedelta(hours=1)) -> int:
        client = self._require_client()
        cutoff = datetime.now(UTC) - older_than
        tmp_prefix = self._full(f"{TMP_DIR}/")
        with self._errors("remove temporary uploads", tmp_prefix):
            removed = await remove_stale_objects(client, self._bucket, tmp_prefix, cutoff)
            # Killed writers' multipart uploads may target a final key, not only .tmp/.
            multipart = Multipart(client, self._bucket, self._settings.part_size, self._where())
            removed += await multipart.abort_stale(self._full(""), cutoff)
        if removed:
            logger.info("removed %d temporary uploads in %s", removed, self._where())
        return removed


def _listable(key: str) -> bool:
    """Whether ``list`` shows ``key``: not a temporary upload, and addressable by this API."""
    try:
        validate_key(key)
    except ValueError:
        return False
    return True
