"""Multipart upload and multipart copy, for objects over S3's 5 GiB single-request limit.

Also the MD5 digests S3 checks (``Content-MD5``) and its multipart ETag, which the backend
compares after an upload. A failed multipart upload is aborted at once; one a killed writer
left behind is aborted by :meth:`Multipart.abort_stale` (``cleanup_temp``).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from storage.s3_errors import QUIET_ERRORS

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

__all__ = ["MAX_PARTS", "Multipart", "content_md5", "md5_digest"]

logger = logging.getLogger(__name__)

MAX_PARTS = 10_000
"""S3's limit on the parts of one multipart upload."""


def md5_digest(data: bytes) -> bytes:
    """Return the raw MD5 digest of ``data`` (an integrity check S3 understands, not security)."""
    return hashlib.md5(data, usedforsecurity=False).digest()


def content_md5(digest: bytes) -> str:
    """Return ``digest`` as the value of a ``Content-MD5`` header."""
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Multipart:
    """Multipart uploads and copies into one bucket, through an open client.

    Parameters
    ----------
    client : S3Client
        The store's open client.
    bucket : str
        The bucket's name.
    part_size : int
        Size of each part; grown when an object would need more than 10000 parts.
    where : str
        The bucket and its endpoint, for log lines.
    """

    client: S3Client
    bucket: str
    part_size: int
    where: str

    def part_size_for(self, size: int) -> int:
        """Return the part size for an object of ``size`` bytes."""
        return max(self.part_size, math.ceil(size / MAX_PARTS))

    async def upload(
        self, key: str, data: bytes, metadata: dict[str, str]
    ) -> tuple[str, str | None]:
        """Upload ``data`` to ``key`` in parts; return the ETag S3 must report and the version."""
        part_size = self.part_size_for(len(data))
        created = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, Metadata=metadata
        )
        upload_id = created["UploadId"]
        parts: builtins.list[CompletedPartTypeDef] = []
        digests: builtins.list[bytes] = []
        try:
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                chunk = data[start : start + part_size]
                digest = await asyncio.to_thread(md5_digest, chunk)
                response = await self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=content_md5(digest),
                )
                parts.append({"ETag": response["ETag"], "PartNumber": number})
                digests.append(digest)
            done = await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await self.abort(key, upload_id)
            raise
        # S3's multipart ETag: the MD5 of the concatenated part MD5s, then the part count.
        etag = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(parts)}"
        return etag, done.get("VersionId")

    async def copy(
        self, source: CopySourceTypeDef, key: str, size: int, metadata: dict[str, str]
    ) -> str | None:
        """Copy ``source`` (``size`` bytes) to ``key`` server-side; return S3's version id."""
        # A multipart copy does not carry the source's metadata over: it is set on creation.
        part_size = self.part_size_for(size)
        created = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, Metadata=metadata
        )
        upload_id = created["UploadId"]
        parts: builtins.list[CompletedPartTypeDef] = []
        try:
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                response = await self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": response["CopyPartResult"]["ETag"], "PartNumber": number})
            done = await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self.abort(key, upload_id)
            raise
        return done.get("VersionId")

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort an upload, logging (not raising) a failure: ``cleanup_temp`` retries it."""
        try:
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except QUIET_ERRORS as e:
            logger.warning(
                "could not abort the multipart upload of %s in %s (%s); cleanup_temp aborts it "
                "later",
                key,
                self.where,
                e,
            )

    async def abort_stale(self, prefix: str, cutoff: datetime) -> int:
        """Abort the uploads under ``prefix`` started by ``cutoff``; return how many.

        They are what killed writers left, to ``.tmp/`` or to a final key.
        """
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Initiated", cutoff) <= cutoff:
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket,
                        Key=upload.get("Key", ""),
                        UploadId=upload.get("UploadId", ""),
                    )
                    aborted += 1
        return aborted
