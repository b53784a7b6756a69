"""The artifact store contract, run against a local folder and a real S3 server (moto).

Every test that takes the ``store`` fixture runs once per backend; the S3 store lives under the
``wisata`` prefix of a fresh bucket, so key mapping under a prefix is exercised throughout.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioboto3
import pytest

from service.config import Config
from storage import (
    ArtifactStore,
    NotFound,
    StorageError,
    StoreSettings,
    open_store,
    validate_key,
)
from storage.local import LocalBackend
from storage.s3 import S3Backend
from tests.s3server import free_port, raw_keys

PREFIX = "wisata"
KEY = "content_based.pkl"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Location:
    """Where a test's store lives."""

    kind: str  # "local", "s3" or "s3-versioned"
    url: str
    endpoint: str | None = None
    bucket: str | None = None
    root: Path | None = None


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    kind: str = request.param
    if kind == "local":
        root = tmp_path / "store"
        return Location(kind, root.as_uri(), root=root)
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    return Location(kind, f"s3://{bucket}/{PREFIX}", endpoint=endpoint, bucket=bucket)


StoreMaker = Callable[[], Awaitable[ArtifactStore]]


@pytest.fixture
async def open_stores(location: Location) -> AsyncIterator[StoreMaker]:
    """Open as many stores on ``location`` as a test needs; all are closed at its end."""
    async with AsyncExitStack() as stack:

        async def make() -> ArtifactStore:
            store = open_store(
                location.url,
                StoreSettings(
                    endpoint=location.endpoint,
                    create_bucket=True,
                    versioning=location.kind == "s3-versioned",
                ),
            )
            await stack.enter_async_context(store)
            await store.ensure_ready()
            return store

        yield make


@pytest.fixture
async def store(open_stores: StoreMaker) -> ArtifactStore:
    return await open_stores()


versioned = pytest.mark.parametrize("location", ["local", "s3-versioned"], indirect=True)
every_kind = pytest.mark.parametrize("location", ["local", "s3", "s3-versioned"], indirect=True)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def plant_leftover(location: Location, name: str) -> None:
    """Leave a temporary upload behind, as a writer killed mid-``put`` would."""
    if location.root is not None:
        tmp = location.root / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(b"partial")
        return
    async with aioboto3.Session().client("s3", endpoint_url=location.endpoint) as client:
        await client.put_object(Bucket=location.bucket, Key=f"{PREFIX}/.tmp/{name}", Body=b"part")


async def leftovers(location: Location) -> list[str]:
    """Temporary uploads (and, on S3, versions of them) present in the store."""
    if location.root is not None:
        tmp = location.root / ".tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    assert location.endpoint is not None and location.bucket is not None
    return await raw_keys(location.endpoint, location.bucket, f"{PREFIX}/.tmp/")


# -- round trip ------------------------------------------------------------------------------


async def test_put_then_get_returns_the_content_and_metadata(store: ArtifactStore) -> None:
    data = os.urandom(200_000)
    before = datetime.now(UTC)

    put = await store.put(KEY, data, {"Model": "content", "sha256": sha256(data)})
    got, info = await store.get(KEY)
    head = await store.head(KEY)

    assert got == data
    assert put.key == info.key == head.key == KEY
    assert put.size == info.size == head.size == len(data)
    assert put.etag == info.etag == head.etag == md5(data)
    # Names come back lower-cased, as S3 returns its user metadata headers.
    assert info.metadata == head.metadata == {"model": "content", "sha256": sha256(data)}
    assert put.version_id == info.version_id == head.version_id
    assert info.last_modified.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= info.last_modified <= datetime.now(UTC)


async def test_put_replaces_content_and_metadata(store: ArtifactStore) -> None:
    await store.put(KEY, b"first model", {"n": "1", "only-in-first": "x"})
    second = await store.put(KEY, b"second model", {"n": "2"})

    data, info = await store.get(KEY)

    assert data == b"second model"
    assert info.metadata == {"n": "2"}
    assert info.etag == second.etag == md5(b"second model")


async def test_empty_object_round_trips(store: ArtifactStore) -> None:
    await store.put(KEY, b"", {})

    data, info = await store.get(KEY)

    assert data == b""
    assert info.size == 0
    assert info.etag == md5(b"")


@pytest.mark.slow
async def test_50_mb_object_round_trips(store: ArtifactStore) -> None:
    data = os.urandom(50 * MiB)

    put = await store.put(KEY, data, {"sha256": sha256(data)})
    got, info = await store.get(KEY)

    assert sha256(got) == sha256(data)
    assert put.size == info.size == 50 * MiB
    assert info.etag == md5(data)


# -- missing keys, list, delete --------------------------------------------------------------


async def test_missing_key_raises_not_found_naming_it(store: ArtifactStore) -> None:
    for call in (store.get, store.head, store.delete, store.versions):
        with pytest.raises(NotFound, match=r"missing\.pkl"):
            await call("missing.pkl")


async def test_list_returns_current_objects_under_a_prefix_sorted(
    store: ArtifactStore, location: Location
) -> None:
    await store.put("b.pkl", b"b", {"model": "b"})
    await store.put("a.pkl", b"aa", {"model": "a"})
    await store.put("reports/ndcg.json", b"{}", {})
    await plant_leftover(location, "interrupted-upload")

    everything = await store.list()
    reports = await store.list("reports/")

    assert [i.key for i in everything] == ["a.pkl", "b.pkl", "reports/ndcg.json"]
    assert [(i.size, i.metadata) for i in everything[:2]] == [
        (2, {"model": "a"}),
        (1, {"model": "b"}),
    ]
    assert [i.key for i in reports] == ["reports/ndcg.json"]
    assert await store.list("nothing-here/") == []


async def test_delete_removes_the_object(store: ArtifactStore) -> None:
    await store.put(KEY, b"model", {})
    await store.put("other.pkl", b"other", {})

    await store.delete(KEY)

    with pytest.raises(NotFound):
        await store.get(KEY)
    with pytest.raises(NotFound):
        await store.head(KEY)
    assert [i.key for i in await store.list()] == ["other.pkl"]


# -- versions --------------------------------------------------------------------------------


@versioned
async def test_versions_are_newest_first_and_restore_brings_one_back(store: ArtifactStore) -> None:
    payloads = [os.urandom(1000 + n) for n in range(3)]
    published = [await store.put(KEY, p, {"n": str(n)}) for n, p in enumerate(payloads)]

    history = await store.versions(KEY)

    assert [v.version_id for v in history] == [p.version_id for p in reversed(published)]
    assert [v.metadata for v in history] == [{"n": "2"}, {"n": "1"}, {"n": "0"}]
    assert [v.etag for v in history] == [md5(p) for p in reversed(payloads)]
    assert None not in {v.version_id for v in history}

    oldest = published[0].version_id
    assert oldest is not None
    restored = await store.restore(KEY, oldest)
    data, info = await store.get(KEY)

    assert data == payloads[0]
    assert info.metadata == {"n": "0"}
    assert info.version_id == restored.version_id
    assert restored.version_id not in {p.version_id for p in published}
    assert (await store.versions(KEY))[0].version_id == restored.version_id


@versioned
async def test_an_older_version_can_be_read_without_restoring_it(store: ArtifactStore) -> None:
    first = await store.put(KEY, b"first payload", {"n": "1"})
    await store.put(KEY, b"second payload", {"n": "2"})
    assert first.version_id is not None

    data, info = await store.get(KEY, first.version_id)

    assert (data, info.metadata, info.version_id) == (
        b"first payload",
        {"n": "1"},
        first.version_id,
    )
    assert (await store.get(KEY))[0] == b"second payload"
    with pytest.raises(NotFound):
        await store.get(KEY, "no-such-version")


@versioned
async def test_a_deleted_key_can_be_restored(store: ArtifactStore) -> None:
    first = await store.put(KEY, b"keep me", {"n": "1"})
    await store.delete(KEY)
    assert first.version_id is not None

    history = await store.versions(KEY)
    await store.restore(KEY, first.version_id)

    assert first.version_id in {v.version_id for v in history}
    assert await store.get(KEY) == (b"keep me", await store.head(KEY))


@versioned
async def test_restoring_an_unknown_version_raises_not_found(store: ArtifactStore) -> None:
    await store.put(KEY, b"model", {})

    with pytest.raises(NotFound, match=KEY):
        await store.restore(KEY, "no-such-version")
    with pytest.raises(NotFound):
        await store.restore("never-written.pkl", "no-such-version")


@pytest.mark.parametrize("location", ["s3"], indirect=True)
async def test_unversioned_bucket_lists_the_current_object_as_its_only_version(
    store: ArtifactStore,
) -> None:
    await store.put(KEY, b"old", {"n": "1"})
    await store.put(KEY, b"new", {"n": "2"})

    history = await store.versions(KEY)

    assert [(v.version_id, v.metadata, v.etag) for v in history] == [
        (None, {"n": "2"}, md5(b"new"))
    ]


async def test_local_folder_keeps_the_last_versions_and_frees_older_ones(tmp_path: Path) -> None:
    async with LocalBackend(tmp_path, StoreSettings(keep_versions=3)) as store:
        published = [await store.put(KEY, f"model {n}".encode(), {"n": str(n)}) for n in range(5)]

        history = await store.versions(KEY)
        dropped = published[0].version_id
        assert dropped is not None
        with pytest.raises(NotFound):
            await store.restore(KEY, dropped)

    assert [v.metadata["n"] for v in history] == ["4", "3", "2"]
    assert count_blobs(tmp_path) == 3


def count_blobs(root: Path) -> int:
    """Content files the local backend keeps on disk."""
    return len(list(root.glob("objects/*/*.blob")))


# -- publishing guarantees -------------------------------------------------------------------


async def test_two_writers_racing_on_one_key_leave_one_complete_payload(
    open_stores: StoreMaker,
) -> None:
    first, second = await open_stores(), await open_stores()
    for _ in range(3):
        payloads = [os.urandom(2 * MiB), os.urandom(2 * MiB)]

        await asyncio.gather(
            *(
                writer.put(KEY, data, {"sha256": sha256(data)})
                for writer, data in zip((first, second), payloads, strict=True)
            )
        )
        data, info = await first.get(KEY)

        assert data in payloads
        assert info.metadata["sha256"] == sha256(data)


@every_kind
async def test_publishing_leaves_no_temporary_object_behind(
    store: ArtifactStore, location: Location
) -> None:
    for n in range(3):
        await store.put(KEY, os.urandom(10_000), {"n": str(n)})

    assert await leftovers(location) == []


async def test_cleanup_temp_removes_only_old_leftovers(
    store: ArtifactStore, location: Location
) -> None:
    await store.put(KEY, b"model", {})
    await plant_leftover(location, "interrupted-upload")

    assert await store.cleanup_temp() == 0
    assert await leftovers(location) != []

    assert await store.cleanup_temp(older_than=timedelta(0)) == 1
    assert await leftovers(location) == []
    assert await store.get(KEY) == (b"model", await store.head(KEY))


async def test_cleanup_temp_default_keeps_files_younger_than_an_hour(tmp_path: Path) -> None:
    async with LocalBackend(tmp_path) as store:
        await store.ensure_ready()
        (tmp_path / ".tmp" / "old").write_bytes(b"x")
        (tmp_path / ".tmp" / "young").write_bytes(b"x")
        two_hours_ago = time.time() - 7200
        os.utime(tmp_path / ".tmp" / "old", (two_hours_ago, two_hours_ago))

        removed = await store.cleanup_temp()

    assert removed == 1
    assert [p.name for p in (tmp_path / ".tmp").iterdir()] == ["young"]


async def test_s3_objects_over_the_threshold_go_in_parts(s3_endpoint: str) -> None:
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    data = os.urandom(11 * MiB + 1)
    store = S3Backend(
        bucket,
        PREFIX,
        StoreSettings(
            endpoint=s3_endpoint,
            create_bucket=True,
            versioning=True,
            multipart_threshold=5 * MiB,
            part_size=5 * MiB,
        ),
    )
    async with store:
        await store.ensure_ready()
        first = await store.put(KEY, data, {"sha256": sha256(data)})
        await store.put(KEY, b"small", {})
        assert first.version_id is not None
        await store.restore(KEY, first.version_id)
        got, info = await store.get(KEY)

    assert got == data
    assert info.metadata == {"sha256": sha256(data)}
    assert first.etag.endswith("-3")
    assert await raw_keys(s3_endpoint, bucket, f"{PREFIX}/.tmp/") == []


# -- keys, metadata, misuse ------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside.pkl",
    "models/../../outside.pkl",
    "a/./b",
    "a//b",
    "models/",
    "line\nbreak",
    "nul\x00byte",
    "x" * 1025,
    "é" * 513,
    ".tmp/sneaky",
]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=range(len(BAD_KEYS)))
def test_validate_key_rejects_unsafe_keys_naming_them(bad: str) -> None:
    with pytest.raises(ValueError) as raised:
        validate_key(bad)

    assert repr(bad) in str(raised.value)


@pytest.mark.parametrize("good", ["content_based.pkl", "2024/hybrid v2.pkl", "é" * 512, ".hidden"])
def test_validate_key_accepts_ordinary_keys(good: str) -> None:
    assert validate_key(good) == good


async def test_bad_keys_are_refused_before_any_io(tmp_path: Path, aws_credentials: object) -> None:
    local_root = tmp_path / "never-created"
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with (
        open_store(local_root.as_uri()) as local,
        open_store("s3://no-server/models", StoreSettings(endpoint=nowhere)) as s3,
    ):
        for store in (local, s3):
            for bad in ("../escape.pkl", "/abs.pkl", "a\x7fb"):
                with pytest.raises(ValueError, match="invalid storage key"):
                    await store.put(bad, b"data", {})
                with pytest.raises(ValueError, match="invalid storage key"):
                    await store.get(bad)
                with pytest.raises(ValueError, match="invalid storage key"):
                    await store.restore(bad, "v1")

    assert not local_root.exists()


@pytest.mark.parametrize(
    "metadata",
    [{"city": "Yogyakarta ✓"}, {"note": "x" * 2100}, {"Model": "a", "model": "b"}, {"a b": "c"}],
    ids=["non-ascii", "over-2kb", "repeated-name", "space-in-name"],
)
async def test_metadata_s3_could_not_store_is_refused_by_both_backends(
    store: ArtifactStore, metadata: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="metadata"):
        await store.put(KEY, b"model", metadata)
    with pytest.raises(NotFound):
        await store.head(KEY)


async def test_using_a_store_that_is_not_open_says_so(location: Location) -> None:
    store = open_store(location.url, StoreSettings(endpoint=location.endpoint))

    with pytest.raises(StorageError, match="not open"):
        await store.get(KEY)


async def test_describe_says_where_objects_live(store: ArtifactStore, location: Location) -> None:
    description = store.describe()

    if location.root is not None:
        assert (description.backend, description.bucket) == ("local", None)
        assert description.location == location.root.as_uri()
    else:
        assert (description.backend, description.bucket) == ("s3", location.bucket)
        assert (description.prefix, description.endpoint) == (PREFIX, location.endpoint)
        assert description.location == f"s3://{location.bucket}/{PREFIX} at {location.endpoint}"


# -- open_store ------------------------------------------------------------------------------


def test_s3_url_takes_its_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WISATA_S3_ENDPOINT", "http://minio:9000")

    from_env = open_store("s3://models/wisata/prod/", Config.from_env().store_settings()).describe()
    explicit = open_store(
        "s3://models", StoreSettings(endpoint="https://s3.example.com")
    ).describe()

    assert (from_env.bucket, from_env.prefix, from_env.endpoint) == (
        "models",
        "wisata/prod",
        "http://minio:9000",
    )
    assert (explicit.prefix, explicit.endpoint) == ("", "https://s3.example.com")
    assert explicit.location == "s3://models at https://s3.example.com"


def test_paths_and_file_urls_open_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    relative = open_store("data/models").describe()
    absolute = open_store(str(tmp_path / "abs")).describe()
    file_url = open_store((tmp_path / "url").as_uri()).describe()

    assert relative.backend == "local"
    assert relative.location == (tmp_path / "data" / "models").as_uri()
    assert absolute.location == (tmp_path / "abs").as_uri()
    assert file_url.location == (tmp_path / "url").as_uri()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("", "empty"),
        ("http://example.com/models", "unsupported scheme"),
        ("s3://", "bucket name"),
        ("s3://Bad_Bucket/models", "bucket name"),
        ("s3://models/../escape", "'..'"),
        ("file://server/share/models", "no host"),
        ("file:relative/models", "absolute path"),
    ],
)
def test_bad_store_urls_raise_value_error_saying_what_to_use(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_store(url)


def test_credentials_in_a_store_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as raised:
        open_store("s3://AKIAEXAMPLE:hunter2secret@models/wisata")

    assert "hunter2secret" not in str(raised.value)
    assert "AWS_ACCESS_KEY_ID" in str(raised.value)


def test_a_bad_endpoint_names_the_variable() -> None:
    with pytest.raises(ValueError, match="WISATA_S3_ENDPOINT"):
        Config.from_env(
            {"WISATA_STORAGE": "s3://models/wisata", "WISATA_S3_ENDPOINT": "minio:9000"}
        )
