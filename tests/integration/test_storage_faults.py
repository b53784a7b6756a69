"""What the artifact store does when things break: killed writers, dying or absent S3 servers.

The promise under test: the final key always holds a complete object (the previous one or the
new one, never a partial one), and every failure surfaces as a storage error that names where
it happened and never shows credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aioboto3
import pytest

from storage import (
    AccessDenied,
    ArtifactStore,
    NotFound,
    StorageUnavailable,
    StoreSettings,
    open_store,
)
from storage.s3 import S3Backend
from tests.integration.storage_writer import payload, payload_metadata
from tests.s3server import CuttableProxy, S3ServerProcess, free_port, raw_keys, repo_root

PREFIX = "wisata"
KEY = "hybrid.pkl"
MiB = 1024 * 1024


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


# -- writers killed with SIGKILL -------------------------------------------------------------

KILLS = 20
WRITER_PAYLOAD = 2 * MiB
# Time between "go" and SIGKILL is drawn from [0, KILL_WINDOW): several puts' worth, so kills
# land in every phase of put (upload, check, copy, clean-up; write, fsync, rename, commit).
KILL_WINDOW = 0.3


@dataclass(frozen=True)
class Target:
    url: str
    endpoint: str | None


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        return Target((tmp_path / "store").as_uri(), None)
    endpoint: str = request.getfixturevalue("s3_endpoint")
    return Target(f"s3://{new_bucket()}/{PREFIX}", endpoint)


async def start_writer(target: Target, seed: int) -> asyncio.subprocess.Process:
    command = [sys.executable, "-m", "tests.integration.storage_writer"]
    command += [target.url, KEY, str(seed), str(WRITER_PAYLOAD)]
    if target.endpoint:
        command += ["--endpoint", target.endpoint]
    return await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=repo_root(),
        env={**os.environ, "PYTHONPATH": str(repo_root())},
    )


async def kill_at_random_point(writer: asyncio.subprocess.Process, rng: random.Random) -> None:
    assert writer.stdin is not None and writer.stdout is not None
    line = await asyncio.wait_for(writer.stdout.readline(), timeout=60)
    if line.strip() != b"ready":
        _, stderr = await writer.communicate()
        pytest.fail(f"the writer did not start: {line!r}\n{stderr.decode(errors='replace')}")
    writer.stdin.write(b"go\n")
    await writer.stdin.drain()
    await asyncio.sleep(rng.uniform(0, KILL_WINDOW))
    writer.send_signal(signal.SIGKILL)
    await writer.communicate()
    assert writer.returncode == -signal.SIGKILL, "the writer stopped before it was killed"


async def stop_all(writers: list[asyncio.subprocess.Process]) -> None:
    """Kill the writers still running (when the test fails half-way) and reap them all."""
    for writer in writers:
        if writer.returncode is None:
            writer.kill()
            await writer.communicate()


async def assert_holds_one_complete_write(store: ArtifactStore) -> int:
    """Check the key holds exactly one of the writes, whole; return which writer made it."""
    data, info = await store.get(KEY)
    seed, number = int(info.metadata["seed"]), int(info.metadata["number"])
    assert info.metadata == payload_metadata(seed, number, data)
    assert data == payload(seed, number, WRITER_PAYLOAD)
    return seed


@pytest.mark.slow
async def test_writers_killed_at_random_points_never_leave_a_partial_object(
    target: Target,
) -> None:
    rng = random.Random()
    async with open_store(
        target.url, StoreSettings(endpoint=target.endpoint, create_bucket=True)
    ) as store:
        await store.ensure_ready()
        first = payload(0, 0, WRITER_PAYLOAD)
        await store.put(KEY, first, payload_metadata(0, 0, first))
        seen: set[int] = set()

        writers: list[asyncio.subprocess.Process] = []
        try:
            # Each writer starts (and pays its imports) while the previous one is being killed.
            writers.append(await start_writer(target, seed=1))
            for seed in range(1, KILLS + 1):
                if seed < KILLS:
                    writers.append(await start_writer(target, seed=seed + 1))
                await kill_at_random_point(writers[seed - 1], rng)
                seen.add(await assert_holds_one_complete_write(store))
        finally:
            await stop_all(writers)

        listed = [info.key for info in await store.list()]
        await store.cleanup_temp(older_than=timedelta(0))
        kept_versions = len(await store.versions(KEY))

    assert seen - {0}, "no writer ever published before being killed: the test proved nothing"
    assert listed == [KEY]
    assert await leftovers(target) == [], "cleanup_temp left debris of killed writers"
    if target.endpoint is None:
        blobs = count_blobs(Path(target.url.removeprefix("file://")))
        assert blobs == kept_versions, "killed writers left content files behind"


def count_blobs(root: Path) -> int:
    """Content files the local backend keeps on disk."""
    return len(list(root.glob("objects/*/*.blob")))


async def leftovers(target: Target) -> list[str]:
    """Temporary files or objects (every version of them) still in the store."""
    if target.endpoint is None:
        tmp = Path(target.url.removeprefix("file://")) / ".tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    bucket = target.url.removeprefix("s3://").split("/")[0]
    return await raw_keys(target.endpoint, bucket, f"{PREFIX}/.tmp/")


# -- the S3 server going away during a put -----------------------------------------------------


@pytest.fixture
def server_process(aws_credentials: dict[str, str]) -> Iterator[S3ServerProcess]:
    with S3ServerProcess() as server:
        yield server


async def test_put_fails_cleanly_when_the_server_process_dies_before_the_copy(
    server_process: S3ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = new_bucket()
    session = aioboto3.Session()
    # botocore emits this event just before sending CopyObject: the upload is done, the final
    # key not yet touched.
    session.events.register("before-call.s3.CopyObject", lambda **_: server_process.kill())
    store = S3Backend(
        bucket,
        PREFIX,
        StoreSettings(
            endpoint=server_process.endpoint,
            create_bucket=True,
            connect_timeout=1.0,
            max_attempts=2,
        ),
        session=session,
    )
    async with store:
        await store.ensure_ready()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as raised:
            await store.put(KEY, os.urandom(MiB), {"model": "hybrid"})
        elapsed = time.monotonic() - started

    message = str(raised.value)
    assert server_process.endpoint in message
    assert bucket in message
    assert f"{PREFIX}/{KEY}" in message
    assert "cleanup_temp" in caplog.text  # the leftover temporary object is reported
    assert elapsed < 30, "a dead server must fail the put, not hang it"


@pytest.fixture
async def direct_store(s3_endpoint: str) -> AsyncIterator[S3Backend]:
    """A store talking straight to the shared server, to see what a failed put left."""
    store = S3Backend(new_bucket(), PREFIX, StoreSettings(endpoint=s3_endpoint, create_bucket=True))
    async with store:
        await store.ensure_ready()
        yield store


@pytest.mark.parametrize("cut_point", ["mid-upload", "before-copy"])
async def test_connection_lost_during_a_put_leaves_the_final_key_unchanged(
    direct_store: S3Backend, s3_endpoint: str, cut_point: str
) -> None:
    bucket = direct_store.describe().bucket
    assert bucket is not None
    old = await direct_store.put(KEY, b"the model being served", {"n": "1"})
    cut_after = MiB if cut_point == "mid-upload" else None
    async with CuttableProxy(s3_endpoint, cut_after_bytes=cut_after) as proxy:
        session = aioboto3.Session()
        if cut_point == "before-copy":
            session.events.register("before-call.s3.CopyObject", lambda **_: proxy.cut())
        via_proxy = S3Backend(
            bucket,
            PREFIX,
            StoreSettings(endpoint=proxy.endpoint, connect_timeout=1.0, max_attempts=2),
            session=session,
        )
        async with via_proxy:
            with pytest.raises(StorageUnavailable, match=proxy.endpoint):
                await via_proxy.put(KEY, os.urandom(4 * MiB), {"n": "2"})

    assert proxy.was_cut
    assert await direct_store.get(KEY) == (b"the model being served", old)
    await direct_store.cleanup_temp(older_than=timedelta(0))
    assert await raw_keys(s3_endpoint, bucket, f"{PREFIX}/.tmp/") == []


# -- no server, a hung server, missing bucket, credentials -----------------------------------


async def test_ensure_ready_without_a_server_fails_within_the_connect_timeout(
    aws_credentials: dict[str, str],
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    # With the default 5 s connect timeout; the endpoint named as the service's config names it.
    settings = StoreSettings(endpoint=endpoint, endpoint_source="WISATA_S3_ENDPOINT")
    store = open_store("s3://models/wisata", settings)

    async with store:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as raised:
            await store.ensure_ready()
        elapsed = time.monotonic() - started

    assert elapsed < 5.0 + 0.5
    assert endpoint in str(raised.value)
    assert "'models'" in str(raised.value)
    assert "WISATA_S3_ENDPOINT" in str(raised.value)
    assert "check the endpoint URL" in str(raised.value)


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A port that accepts TCP connections and never answers, like a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_ensure_ready_against_a_hung_server_gives_up_within_the_connect_timeout(
    aws_credentials: dict[str, str],
) -> None:
    with silent_listener() as endpoint:
        store = open_store(
            "s3://models/wisata", StoreSettings(endpoint=endpoint, connect_timeout=1.0)
        )
        async with store:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="within 1 s"):
                await store.ensure_ready()
            elapsed = time.monotonic() - started

    assert elapsed < 1.0 + 0.5


async def test_the_same_store_works_again_once_a_frozen_server_resumes(
    server_process: S3ServerProcess,
) -> None:
    store = open_store(
        f"s3://{new_bucket()}/{PREFIX}",
        StoreSettings(endpoint=server_process.endpoint, create_bucket=True, connect_timeout=1.0),
    )
    async with store:
        await store.ensure_ready()
        await store.put(KEY, b"model", {})

        server_process.freeze()
        try:
            with pytest.raises(StorageUnavailable):
                await store.ensure_ready()
        finally:
            server_process.thaw()

        await store.ensure_ready()
        assert (await store.get(KEY))[0] == b"model"


async def test_a_missing_bucket_is_reported_with_what_to_do(s3_endpoint: str) -> None:
    bucket = new_bucket()
    async with open_store(f"s3://{bucket}/{PREFIX}", StoreSettings(endpoint=s3_endpoint)) as store:
        with pytest.raises(NotFound) as raised:
            await store.ensure_ready()
        with pytest.raises(NotFound):
            await store.get(KEY)

    assert bucket in str(raised.value)
    assert "create_bucket" in str(raised.value)


async def test_missing_credentials_raise_access_denied_saying_which_variables(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)

    async with open_store(
        f"s3://{new_bucket()}/{PREFIX}", StoreSettings(endpoint=s3_endpoint)
    ) as store:
        with pytest.raises(AccessDenied, match="AWS_ACCESS_KEY_ID"):
            await store.ensure_ready()


async def test_error_messages_and_logs_never_show_the_secret_key(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wisata-TopSecret-" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG, logger="storage")
    failures: list[BaseException] = []

    for endpoint in (s3_endpoint, f"http://127.0.0.1:{free_port()}"):
        async with open_store(
            f"s3://{new_bucket()}/{PREFIX}", StoreSettings(endpoint=endpoint, max_attempts=1)
        ) as store:
            attempts = (
                store.ensure_ready,
                lambda: store.get(KEY),
                lambda: store.put(KEY, b"x", {}),
            )
            for attempt in attempts:
                with pytest.raises((NotFound, StorageUnavailable)) as raised:
                    await attempt()
                failures.append(raised.value)

    assert len(failures) == 6
    for failure in failures:
        assert secret not in str(failure)
        assert secret not in repr(failure.__cause__)
    assert secret not in caplog.text
