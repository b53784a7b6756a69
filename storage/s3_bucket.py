"""Bucket-level S3 calls: does the bucket exist, create it, turn on versioning, drop stale uploads.

:meth:`storage.s3.S3Backend.ensure_ready` and ``cleanup_temp`` are built from these; each maps
its failures to :mod:`storage.errors` through :func:`storage.s3_errors.mapped_errors`.
"""

from __future__ import annotations

import builtins
import logging
from datetime import datetime
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from storage.s3_errors import error_code, mapped_errors

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.literals import BucketLocationConstraintType

__all__ = ["bucket_exists", "create_bucket", "enable_versioning", "remove_stale_objects"]

logger = logging.getLogger(__name__)


async def bucket_exists(client: S3Client, bucket: str, where: str) -> bool:
    """Return whether ``bucket`` exists; ``where`` names it and its endpoint in messages."""
    with mapped_errors("check the bucket", where, where):
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as e:
            code, status = error_code(e)
            if status == 404 or code in ("NoSuchBucket", "NotFound", "404"):
                return False
            raise
    return True


async def create_bucket(client: S3Client, bucket: str, where: str) -> None:
    """Create ``bucket`` in the client's region; one that exists already is fine."""
    region = client.meta.region_name
    with mapped_errors("create the bucket", where, where):
        try:
            if region and region != "us-east-1":
                location = cast("BucketLocationConstraintType", region)
                await client.create_bucket(
                    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": location}
                )
            else:
                await client.create_bucket(Bucket=bucket)
        except ClientError as e:
            # Another replica starting at the same time may have created it first.
            if error_code(e)[0] != "BucketAlreadyOwnedByYou":
                raise
    logger.info("created %s", where)


async def enable_versioning(client: S3Client, bucket: str, where: str) -> None:
    """Turn on the versioning of ``bucket`` unless it is on already."""
    with mapped_errors("turn on bucket versioning", where, where):
        state = await client.get_bucket_versioning(Bucket=bucket)
        if state.get("Status") != "Enabled":
            await client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            logger.info("turned on versioning of %s", where)


async def remove_stale_objects(client: S3Client, bucket: str, prefix: str, cutoff: datetime) -> int:
    """Delete every version and delete marker under ``prefix`` written by ``cutoff``.

    Returns
    -------
    int
        How many object versions were deleted (delete markers are not counted).
    """
    stale: builtins.list[tuple[str, str, bool]] = []
    pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    async for page in pages:
        # Every version goes, so a versioned bucket keeps no copy of a temporary upload.
        for entry in page.get("Versions", []):
            if entry.get("LastModified", cutoff) <= cutoff:
                stale.append((entry.get("Key", ""), entry.get("VersionId", "null"), True))
        for marker in page.get("DeleteMarkers", []):
            if marker.get("LastModified", cutoff) <= cutoff:
                stale.append((marker.get("Key", ""), marker.get("VersionId", "null"), False))
    removed = 0
    for key, version, is_object in stale:
        await client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        removed += 1 if is_object else 0
    return removed
