"""A publish of several models is one set: every reader loads all old or all new.

Run against a local folder and a versioned bucket on a moto S3 server. An interruption is made
by a writer that stops where a killed process would (the journal and part of the artifacts in
place), or by a store whose n-th write fails, under the registry's own publish.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from service import artifacts
from service.ml.datasets import Dataset, load_dataset
from service.ml.model_set import ModelSet
from service.ml.recommenders import MODEL_NAMES, Collaborative, ContentBased, Hybrid
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.journal import JOURNAL_KEY, SET_METADATA, Journal
from service.serving.registry import ModelState, Registry, artifact_key
from service.serving.trainer import BuildResult, build_artifacts
from storage import (
    ArtifactStore,
    NotFound,
    ObjectInfo,
    StorageUnavailable,
    StoreSettings,
    open_store,
)
from tests.interrupted import interrupt_publish, place

KEY = b"publish-sets-test-key"
SUB_MODELS = ("content_based", "collaborative")


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(SAMPLE_DATA_DIR)


def first(demo: Dataset, share: float) -> Dataset:
    """The first ``share`` of the demo's ratings."""
    return demo.with_interactions(demo.interactions.iloc[: int(demo.n_interactions * share)])


def part(demo: Dataset, share: float) -> BuildResult:
    return build_artifacts(first(demo, share), key=KEY, hybrid_weight=0.6)


def unranked_hybrid_part(demo: Dataset, share: float) -> BuildResult:
    """As ``part``, with a hybrid that ranks no shortlists: its payload is its parameters."""
    data = first(demo, share)
    content, collaborative = ContentBased().fit(data), Collaborative().fit(data)
    hybrid = Hybrid(content=content, collaborative=collaborative, content_weight=0.6, shortlist=0)
    models = {model.name: model for model in (content, collaborative, hybrid.fit(data))}
    fitted = ModelSet(models, dict.fromkeys(models, 0.0))
    return build_artifacts(data, key=KEY, hybrid_weight=0.6, fitted=fitted)


@pytest.fixture(scope="module")
def old(demo: Dataset) -> BuildResult:
    return part(demo, 1.0)


@pytest.fixture(scope="module")
def new(demo: Dataset) -> BuildResult:
    return part(demo, 0.9)


@pytest.fixture(scope="module")
def newer(demo: Dataset) -> BuildResult:
    return part(demo, 0.8)


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, aws_credentials: dict[str, str]
) -> AsyncIterator[ArtifactStore]:
    if request.param == "local":
        opened = open_store(str(tmp_path / "models"))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        url = f"s3://sets-{uuid.uuid4().hex[:12]}/models"
        opened = open_store(
            url, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True)
        )
    async with opened:
        await opened.ensure_ready()
        yield opened


def checksums(result: BuildResult) -> dict[str, str]:
    return {n: artifacts.read_header(d).payload_sha256 for n, d in result.artifacts.items()}


def served(registry: Registry) -> dict[str, str | None]:
    return {name: status.checksum for name, status in registry.status().items()}


async def restarted(store: ArtifactStore) -> Registry:
    """A registry loading the store as a restarted service does."""
    registry = Registry(store, key=KEY)
    await registry.load_all()
    return registry


async def install(store: ArtifactStore, result: BuildResult) -> None:
    errors = await Registry(store, key=KEY).install(result.artifacts)
    assert errors == dict.fromkeys(MODEL_NAMES)


async def test_a_publish_puts_the_set_in_and_leaves_no_journal(
    store: ArtifactStore, old: BuildResult
) -> None:
    await install(store, old)

    with pytest.raises(NotFound):
        await store.head(JOURNAL_KEY)
    marks = {(await store.head(artifact_key(n))).metadata[SET_METADATA] for n in MODEL_NAMES}
    assert len(marks) == 1  # the three carry the same set id
    registry = await restarted(store)
    assert served(registry) == checksums(old)
    assert registry.missing() == {} and registry.unfinished_publish is None


@pytest.mark.parametrize("placed", [(), SUB_MODELS[:1], SUB_MODELS])
async def test_a_restart_after_an_interrupted_publish_loads_the_old_set(
    store: ArtifactStore, old: BuildResult, new: BuildResult, placed: tuple[str, ...]
) -> None:
    await install(store, old)
    journal = await interrupt_publish(store, new.artifacts, *placed)

    registry = await restarted(store)

    assert served(registry) == checksums(old)
    assert registry.missing() == {}  # the hybrid with its own sub-models: loaded, not stale
    for name in placed:  # the bucket's current object is the new one; the old one is served
        current = await store.head(artifact_key(name))
        assert current.metadata["sha256"] == checksums(new)[name]
        assert registry.status()[name].artifact.version_id != current.version_id  # type: ignore[union-attr]
    if placed:
        assert registry.unfinished_publish is not None
        assert registry.unfinished_publish["set_id"] == journal.set_id
        assert registry.unfinished_publish["held_back"] == sorted(placed)
        assert any("unfinished" in line for line in registry.summary_lines())
    else:
        assert registry.unfinished_publish is None
    for user in ("u001", "u150", "someone-new"):
        assert registry.model("hybrid").recommend(user).items


async def test_a_complete_set_whose_journal_stayed_is_served_whole(
    store: ArtifactStore, old: BuildResult, new: BuildResult
) -> None:
    await install(store, old)
    # Killed after placing the whole set, before deleting the journal.
    await interrupt_publish(store, new.artifacts, *MODEL_NAMES)

    registry = await restarted(store)

    assert served(registry) == checksums(new)
    assert registry.missing() == {} and registry.unfinished_publish is None


async def test_a_running_service_swaps_a_set_only_once_it_is_complete(
    store: ArtifactStore, old: BuildResult, new: BuildResult
) -> None:
    await install(store, old)
    registry = await restarted(store)

    journal = await interrupt_publish(store, new.artifacts, *SUB_MODELS)  # another writer, half-way
    assert await registry.refresh() == []
    assert served(registry) == checksums(old)

    await place(store, journal, "hybrid", new.artifacts["hybrid"])
    assert await registry.refresh() == list(MODEL_NAMES)
    assert served(registry) == checksums(new)
    assert registry.missing() == {}


async def test_an_operator_restore_of_a_held_back_model_is_served(
    store: ArtifactStore, old: BuildResult, new: BuildResult, newer: BuildResult
) -> None:
    await install(store, old)
    await install(store, newer)
    await interrupt_publish(store, new.artifacts, "content_based")
    versions = await store.versions(artifact_key("content_based"))
    wanted = next(v for v in versions if v.metadata["sha256"] == checksums(old)["content_based"])

    await store.restore(artifact_key("content_based"), str(wanted.version_id))  # the console
    registry = await restarted(store)

    assert served(registry)["content_based"] == checksums(old)["content_based"]
    assert served(registry)["collaborative"] == checksums(newer)["collaborative"]
    assert registry.unfinished_publish is None


def fail_on_put(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Make the ``number``-th write to the store (the journal is the first) fail."""
    real: Callable[..., Awaitable[ObjectInfo]] = store.put
    count = 0

    async def put(key: str, data: bytes, metadata: Any) -> ObjectInfo:
        nonlocal count
        count += 1
        if count == number:
            raise StorageUnavailable(f"test: write {number} to {key} refused")
        return await real(key, data, metadata)

    monkeypatch.setattr(store, "put", put)


@pytest.mark.parametrize("failing", [1, 2, 3, 4])
async def test_a_publish_that_fails_part_way_serves_the_new_set_from_memory_only(
    store: ArtifactStore,
    old: BuildResult,
    new: BuildResult,
    monkeypatch: pytest.MonkeyPatch,
    failing: int,
) -> None:
    await install(store, old)
    publisher = await restarted(store)
    fail_on_put(store, monkeypatch, failing)

    errors = await publisher.install(new.artifacts)

    assert all(f"write {failing}" in (errors[name] or "") for name in MODEL_NAMES), errors
    assert served(publisher) == checksums(new)
    states = {status.state for status in publisher.status().values()}
    assert states == {ModelState.NOT_PERSISTED}
    monkeypatch.undo()
    assert served(await restarted(store)) == checksums(old)


async def test_a_publish_after_an_interrupted_one_records_the_versions_really_served(
    store: ArtifactStore,
    old: BuildResult,
    new: BuildResult,
    newer: BuildResult,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await install(store, old)
    await interrupt_publish(store, new.artifacts, *SUB_MODELS)
    publisher = await restarted(store)
    fail_on_put(store, monkeypatch, 3)  # journal, content_based, then collaborative fails

    await publisher.install(newer.artifacts)
    monkeypatch.undo()

    raw, _ = await store.get(JOURNAL_KEY)
    recorded = json.loads(raw)["models"]
    for name in MODEL_NAMES:  # the old set's versions, not the interrupted publish's
        assert recorded[name]["previous"]["sha256"] == checksums(old)[name]
    assert served(await restarted(store)) == checksums(old)
    await install(store, newer)
    assert served(await restarted(store)) == checksums(newer)


async def test_the_first_publish_interrupted_leaves_nothing_served(
    store: ArtifactStore, new: BuildResult
) -> None:
    await interrupt_publish(store, new.artifacts, "content_based")

    registry = await restarted(store)

    content = registry.status()["content_based"]
    assert content.state is ModelState.NOT_TRAINED
    assert "unfinished publish" in (content.reason or "")
    assert registry.status()["collaborative"].state is ModelState.NOT_TRAINED


async def test_an_unreadable_journal_is_ignored(store: ArtifactStore, old: BuildResult) -> None:
    await install(store, old)
    await store.put(JOURNAL_KEY, b"{not json", {})

    registry = await restarted(store)

    assert served(registry) == checksums(old) and registry.unfinished_publish is None


async def test_the_hybrid_version_changes_with_its_sub_models(
    store: ArtifactStore, demo: Dataset
) -> None:
    old, new = unranked_hybrid_part(demo, 1.0), unranked_hybrid_part(demo, 0.9)
    # With a fixed weight the hybrid pickles the same payload whatever it was trained on.
    assert checksums(old)["hybrid"] == checksums(new)["hybrid"]
    await install(store, old)
    before = (await restarted(store)).version("hybrid")
    await install(store, new)

    after = (await restarted(store)).version("hybrid")

    assert len(before) == len(after) == 12 and before != after


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "under way"])
async def test_a_publish_taken_over_by_another_stops_and_the_later_set_is_served(
    store: ArtifactStore,
    old: BuildResult,
    new: BuildResult,
    newer: BuildResult,
    monkeypatch: pytest.MonkeyPatch,
    finished: bool,
) -> None:
    await install(store, old)
    first = await restarted(store)
    real = store.put
    count = 0
    later: Journal | None = None

    async def put(key: str, data: bytes, metadata: Any) -> ObjectInfo:
        # Right after the first publisher placed its content model, a second one (another
        # process: the retrain job) publishes its own set, whole or only its journal.
        nonlocal count, later
        placed = await real(key, data, metadata)
        count += 1
        if count == 2:
            monkeypatch.setattr(store, "put", real)
            if finished:
                await install(store, newer)
            else:
                later = await interrupt_publish(store, newer.artifacts)
        return placed

    monkeypatch.setattr(store, "put", put)
    errors = await first.install(new.artifacts)

    assert all("was taken over by" in (errors[n] or "") for n in MODEL_NAMES), errors
    if finished:
        assert served(await restarted(store)) == checksums(newer)
    else:  # the later publish holds the first one's content back until its own set is in
        assert later is not None
        raw, _ = await store.get(JOURNAL_KEY)
        assert json.loads(raw)["set_id"] == later.set_id  # not deleted by the first publisher
        reader = await restarted(store)
        assert served(reader) == checksums(old)
        assert reader.unfinished_publish is not None
        assert reader.unfinished_publish["held_back"] == ["content_based"]
