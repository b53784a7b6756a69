"""The steps of an S3 publish (upload, check, copy into place, discard) and S3 answers as info.

:meth:`storage.s3.S3Backend.put` runs the steps in order, inside its error mapping: upload to
``<prefix>/.tmp/<uuid>``, check the stored size and ETag, copy server-side to the final key,
delete the temporary object. ``restore`` reuses the copy. Objects over ``multipart_threshold``
go through :mod:`storage.s3_parts`. :func:`object_info` turns a HEAD or GET answer into
:class:`~storage.base.ObjectInfo`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from storage.base import ObjectInfo
from storage.errors import StorageError
from storage.s3_errors import QUIET_ERRORS
from storage.s3_parts import Multipart, content_md5, md5_digest
from storage.settings import StoreSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CopySourceTypeDef

__all__ = ["BucketWriter", "object_info", "plain_etag", "version_id"]

logger = logging.getLogger(__name__)


def plain_etag(etag: str) -> str:
    """Return an ETag without the quotes S3 puts around it."""
    return etag.strip('"')


def version_id(raw: str | None) -> str | None:
    """Return S3's version id, or None when the bucket keeps no versions."""
    # An unversioned bucket reports its objects' version as the string "null".
    return None if raw in (None, "", "null") else raw


def object_info(key: str, response: Any) -> ObjectInfo:
    """Return the :class:`ObjectInfo` of ``key`` from a HeadObject or GetObject answer."""
    return ObjectInfo(
        key=key,
        size=int(response["ContentLength"]),
        etag=plain_etag(response["ETag"]),
        last_modified=response["LastModified"].astimezone(UTC),
        version_id=version_id(response.get("VersionId")),
        metadata=dict(response.get("Metadata", {})),
    )


async def head_object(client: S3Client, bucket: str, full_key: str, version: str | None) -> Any:
    """HEAD ``full_key`` in ``bucket``: its current object, or ``version`` of it."""
    if version:
        return await client.head_object(Bucket=bucket, Key=full_key, VersionId=version)
    return await client.head_object(Bucket=bucket, Key=full_key)


@dataclass(frozen=True)
class BucketWriter:
    """The writes of a publish into one bucket, through an open client.

    Keys given to these methods are full object keys (prefix included).

    Parameters
    ----------
    client : S3Client
        The store's open client.
    bucket : str
        The bucket's name.
    settings : StoreSettings
        The store's settings (``multipart_threshold`` and ``part_size`` are read).
    where : str
        The bucket and its endpoint, for messages and log lines.
    """

    client: S3Client
    bucket: str
    settings: StoreSettings
    where: str

    def _multipart(self) -> Multipart:
        return Multipart(self.client, self.bucket, self.settings.part_size, self.where)

    async def upload(
        self, tmp: str, data: bytes, metadata: dict[str, str]
    ) -> tuple[str, str | None]:
        """Upload ``data`` to ``tmp``; return the ETag it must have and its version id."""
        if len(data) > self.settings.multipart_threshold:
            return await self._multipart().upload(tmp, data, metadata)
        digest = await asyncio.to_thread(md5_digest, data)
        response = await self.client.put_object(
            Bucket=self.bucket,
            Key=tmp,
            Body=data,
            Metadata=metadata,
            ContentMD5=content_md5(digest),
        )
        return digest.hex(), response.get("VersionId")

    async def check_upload(self, tmp: str, version: str | None, size: int, etag: str) -> None:
        """Raise :class:`StorageError` unless ``tmp`` holds ``size`` bytes with ETag ``etag``."""
        stored = await head_object(self.client, self.bucket, tmp, version)
        stored_etag = plain_etag(stored["ETag"])
        if stored["ContentLength"] != size or stored_etag != etag:
            raise StorageError(
                f"the temporary upload {tmp!r} in {self.where} holds "
                f"{stored['ContentLength']} bytes with ETag {stored_etag}, expected {size} bytes "
                f"with ETag {etag} (MD5); the final key was not changed, retry the publish "
                "(a bucket encrypting with SSE-KMS/SSE-C does not return MD5 ETags)"
            )

    async def copy_into_place(
        self,
        source: CopySourceTypeDef,
        key: str,
        final: str,
        size: int,
        metadata: dict[str, str],
    ) -> ObjectInfo:
        """Copy ``source`` to ``final`` server-side, keeping its metadata; one atomic write.

        ``key`` is ``final`` relative to the store's prefix, as the returned info names it.
        """
        if size > self.settings.multipart_threshold:
            raw = await self._multipart().copy(source, final, size, metadata)
            return object_info(
                key, await head_object(self.client, self.bucket, final, version_id(raw))
            )
        response = await self.client.copy_object(
            CopySource=source, Bucket=self.bucket, Key=final, MetadataDirective="COPY"
        )
        result = response["CopyObjectResult"]
        new_version = version_id(response.get("VersionId"))
        if "ETag" not in result or "LastModified" not in result:
            return object_info(key, await head_object(self.client, self.bucket, final, new_version))
        return ObjectInfo(
            key=key,
            size=size,
            etag=plain_etag(result["ETag"]),
            last_modified=result["LastModified"].astimezone(UTC),
            version_id=new_version,
            metadata=dict(metadata),
        )

    async def discard(self, tmp: str, version: str | None) -> None:
        """Delete the temporary object (that exact version, so no history is left behind)."""
        try:
            if version:
                await self.client.delete_object(Bucket=self.bucket, Key=tmp, VersionId=version)
            else:
                await self.client.delete_object(Bucket=self.bucket, Key=tmp)
        except QUIET_ERRORS as e:
            logger.warning(
                "could not delete the temporary object %s in %s (%s); cleanup_temp removes it "
                "later",
                tmp,
                self.where,
                e,
            )
