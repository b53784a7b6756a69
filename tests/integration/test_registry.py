"""The model registry and trainer against real stores: a local folder and a moto S3 server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from service import artifacts
from service.ml.datasets import Dataset, load_dataset
from service.ml.recommenders import MODEL_NAMES, Collaborative, Hybrid
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import (
    ModelNotTrained,
    ModelState,
    Registry,
    UnknownModel,
    artifact_key,
)
from service.serving.trainer import (
    BuildResult,
    JobState,
    Trainer,
    TrainingInProgress,
    build_artifacts,
)
from storage import ArtifactStore, StoreSettings, open_store
from tests.s3server import CuttableProxy

KEY = b"registry-test-key"


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return load_dataset(SAMPLE_DATA_DIR)


@pytest.fixture(scope="module")
def built(demo: Dataset) -> BuildResult:
    return build_artifacts(demo, key=KEY)


@pytest.fixture(scope="module")
def rebuilt(demo: Dataset) -> BuildResult:
    """A second, different training: the same data less a tenth of the ratings."""
    part = demo.with_interactions(demo.interactions.iloc[: int(demo.n_interactions * 0.9)])
    return build_artifacts(part, key=KEY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    async with open_store(str(tmp_path / "models")) as opened:
        await opened.ensure_ready()
        yield opened


async def publish(store: ArtifactStore, result: BuildResult, *names: str) -> None:
    for name in names or MODEL_NAMES:
        header = artifacts.read_header(result.artifacts[name])
        await store.put(artifact_key(name), result.artifacts[name], artifacts.to_metadata(header))


def checksum(result: BuildResult, name: str) -> str:
    return artifacts.read_header(result.artifacts[name]).payload_sha256


async def test_an_empty_store_serves_nothing_and_says_how_to_train(store: ArtifactStore) -> None:
    registry = Registry(store, key=KEY)
    await registry.load_all()

    assert set(registry.missing()) == set(MODEL_NAMES)
    with pytest.raises(ModelNotTrained, match="POST /api/ml/train-all"):
        registry.model("hybrid")
    with pytest.raises(UnknownModel):
        registry.model("deep_learning")
    assert all("NOT TRAINED" in line for line in registry.summary_lines())


async def test_a_restarted_registry_serves_the_same_models(
    store: ArtifactStore, built: BuildResult
) -> None:
    first = Registry(store, key=KEY)
    await first.load_all()
    await first.install(built.artifacts)

    second = Registry(store, key=KEY)
    await second.load_all()

    assert second.missing() == {}
    for name in MODEL_NAMES:
        assert second.status()[name].checksum == first.status()[name].checksum
        assert second.model(name).recommend("u010") == first.model(name).recommend("u010")
    assert all(line.split(": ")[1].startswith("LOADED") for line in second.summary_lines())


async def test_a_corrupt_artifact_fails_alone(store: ArtifactStore, built: BuildResult) -> None:
    await publish(store, built)
    damaged = bytearray(built.artifacts["collaborative"])
    damaged[-10] ^= 0xFF
    await store.put(artifact_key("collaborative"), bytes(damaged), {})

    registry = Registry(store, key=KEY)
    await registry.load_all()

    status = registry.status()
    assert status["content_based"].state is ModelState.LOADED
    assert status["collaborative"].state is ModelState.FAILED
    assert "ChecksumMismatch" in (status["collaborative"].reason or "")
    registry.model("content_based").recommend("u001")
    # The hybrid runs with the stored version of collaborative it was built with.
    assert status["hybrid"].checksum == checksum(built, "hybrid")
    assert registry.model("hybrid").recommend("u001").items


async def test_an_unsigned_or_foreign_artifact_is_refused(
    store: ArtifactStore, demo: Dataset
) -> None:
    unsigned = build_artifacts(demo, ["content_based"])
    await publish(store, unsigned, "content_based")

    registry = Registry(store, key=KEY)
    await registry.load_all()

    status = registry.status()["content_based"]
    assert status.state is ModelState.FAILED
    assert "Signature" in (status.reason or "")


async def test_an_interrupted_publish_leaves_the_hybrid_serving_its_own_sub_models(
    store: ArtifactStore, built: BuildResult, rebuilt: BuildResult
) -> None:
    await publish(store, built)
    before = Registry(store, key=KEY)
    await before.load_all()
    # A training killed after publishing its sub-models but before its hybrid.
    await publish(store, rebuilt, "content_based", "collaborative")

    registry = Registry(store, key=KEY)
    await registry.load_all()

    status = registry.status()
    assert status["collaborative"].checksum == checksum(rebuilt, "collaborative")
    assert status["hybrid"].state is ModelState.STALE
    hybrid = registry.model("hybrid")
    assert isinstance(hybrid, Hybrid) and hybrid.collaborative_ is not registry.model(
        "collaborative"
    )
    for user in ("u001", "u005", "u150"):
        assert hybrid.recommend(user) == before.model("hybrid").recommend(user)


async def test_a_hybrid_whose_sub_models_are_gone_is_not_served(
    tmp_path: Path, built: BuildResult, rebuilt: BuildResult
) -> None:
    async with open_store(str(tmp_path / "short"), StoreSettings(keep_versions=1)) as store:
        await publish(store, built)
        await publish(store, rebuilt, "collaborative")

        registry = Registry(store, key=KEY)
        await registry.load_all()

    hybrid = registry.status()["hybrid"]
    assert hybrid.state is ModelState.NOT_TRAINED
    assert "built with collaborative" in (hybrid.reason or "")
    assert "nor kept among the stored versions" in (hybrid.reason or "")
    assert registry.status()["collaborative"].state is ModelState.LOADED


async def test_hot_reload_swaps_a_replaced_artifact_and_keeps_the_hybrid_consistent(
    store: ArtifactStore, built: BuildResult, rebuilt: BuildResult
) -> None:
    await publish(store, built)
    registry = Registry(store, key=KEY)
    await registry.load_all()
    hybrid = registry.model("hybrid")
    before = hybrid.recommend("u005")

    await publish(store, rebuilt, "collaborative")  # another writer
    assert await registry.refresh() == ["collaborative"]

    assert registry.status()["collaborative"].checksum == checksum(rebuilt, "collaborative")
    assert registry.status()["hybrid"].state is ModelState.STALE
    assert isinstance(hybrid, Hybrid) and hybrid.collaborative_ is not None
    assert registry.model("hybrid") is hybrid
    assert hybrid.recommend("u005") == before  # still its own sub-models

    await publish(store, rebuilt, "content_based", "hybrid")
    assert sorted(await registry.refresh()) == ["content_based", "hybrid"]
    assert registry.missing() == {}
    assert registry.status()["hybrid"].checksum == checksum(rebuilt, "hybrid")
    assert await registry.refresh() == []


async def test_a_bad_replacement_keeps_the_old_model_serving(
    store: ArtifactStore, built: BuildResult
) -> None:
    await publish(store, built)
    registry = Registry(store, key=KEY)
    await registry.load_all()

    await store.put(artifact_key("content_based"), built.artifacts["content_based"][:500], {})
    assert await registry.refresh() == []

    status = registry.status()["content_based"]
    assert status.state is ModelState.LOADED
    assert status.checksum == checksum(built, "content_based")
    assert "TruncatedArtifact" in (status.last_error or "")
    registry.model("content_based").recommend("u001")


async def test_rollback_restores_and_serves_an_older_version(
    store: ArtifactStore, built: BuildResult, rebuilt: BuildResult
) -> None:
    await publish(store, built)
    await publish(store, rebuilt, "content_based")
    registry = Registry(store, key=KEY)
    await registry.load_all()
    versions = await registry.versions("content_based")
    assert len(versions) == 2

    status = await registry.rollback("content_based", str(versions[1].version_id))

    assert status.checksum == checksum(built, "content_based")
    assert registry.status()["hybrid"].state is ModelState.LOADED


async def test_a_failed_publish_keeps_the_new_model_serving_from_memory(
    s3_endpoint: str, built: BuildResult
) -> None:
    proxy = CuttableProxy(s3_endpoint)
    endpoint = await proxy.start()
    url = f"s3://registry-{uuid.uuid4().hex[:12]}/models"
    try:
        async with open_store(
            url,
            StoreSettings(endpoint=endpoint, create_bucket=True, connect_timeout=1, max_attempts=1),
        ) as store:
            await store.ensure_ready()
            registry = Registry(store, key=KEY)
            await registry.load_all()
            proxy.cut()

            errors = await registry.install(built.artifacts)

            assert all(errors[name] for name in MODEL_NAMES)
            status = registry.status()["collaborative"]
            assert status.state is ModelState.NOT_PERSISTED
            assert (status.reason or "").startswith("trained, not persisted: ")
            assert not registry.storage_available
            assert registry.model("hybrid").recommend("u001").items
    finally:
        await proxy.close()


# --- the trainer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executor() -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=1)
    yield pool  # type: ignore[misc]
    pool.shutdown()


async def wait_for(trainer: Trainer, job_id: str) -> None:
    async with asyncio.timeout(60):
        await trainer.wait(job_id)


async def test_training_runs_off_the_loop_one_job_at_a_time(
    store: ArtifactStore, executor: ProcessPoolExecutor
) -> None:
    registry = Registry(store, key=KEY)
    await registry.load_all()
    trainer = Trainer(registry, executor, data_dir=SAMPLE_DATA_DIR, key=KEY)
    job = trainer.submit(["hybrid", "content_based", "collaborative"])
    assert job.models == MODEL_NAMES
    with pytest.raises(TrainingInProgress) as busy:
        trainer.submit(["content_based"])
    assert busy.value.job_id == job.id

    ticks = 0
    while trainer.job(job.id).active:  # the loop keeps running while the worker fits
        ticks += 1
        await asyncio.sleep(0.01)
    await trainer.close()

    assert ticks > 5
    assert job.state is JobState.SUCCEEDED, job.error
    assert set(job.seconds) == set(MODEL_NAMES)
    assert job.persisted == dict.fromkeys(MODEL_NAMES)
    assert registry.missing() == {}
    assert (await store.head(artifact_key("hybrid"))).metadata["model"] == "hybrid"


async def test_retraining_a_sub_model_marks_the_hybrid_stale_until_rebuilt(
    store: ArtifactStore, executor: ProcessPoolExecutor, tmp_path: Path, demo: Dataset
) -> None:
    registry = Registry(store, key=KEY)
    await registry.install(build_artifacts(demo, key=KEY).artifacts)
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "items.csv").write_bytes((SAMPLE_DATA_DIR / "items.csv").read_bytes())
    lines = (SAMPLE_DATA_DIR / "ratings.csv").read_text().splitlines()
    # Same users and places, some ratings changed: a different collaborative model.
    swapped = [",".join([*row.split(",")[:2], "1", row.split(",")[3]]) for row in lines[-300:]]
    (changed / "ratings.csv").write_text("\n".join(lines[:-300] + swapped) + "\n")
    trainer = Trainer(registry, executor, data_dir=changed, key=KEY)

    await wait_for(trainer, trainer.submit([Collaborative.name]).id)
    assert registry.status()["hybrid"].state is ModelState.STALE
    assert "collaborative retrained" in (registry.missing()["hybrid"])

    await wait_for(trainer, trainer.submit(["hybrid"]).id)
    assert registry.missing() == {}


async def test_a_hybrid_cannot_be_built_alone_from_sub_models_of_different_data(
    store: ArtifactStore, executor: ProcessPoolExecutor, demo: Dataset, rebuilt: BuildResult
) -> None:
    registry = Registry(store, key=KEY)
    await registry.install(build_artifacts(demo, key=KEY).artifacts)
    await registry.install({"collaborative": rebuilt.artifacts["collaborative"]})
    trainer = Trainer(registry, executor, data_dir=SAMPLE_DATA_DIR, key=KEY)

    job = await trainer.wait(trainer.submit(["hybrid"]).id)

    assert job.state is JobState.FAILED
    assert "retrain them together" in (job.error or "")
    assert registry.status()["hybrid"].state is ModelState.STALE


async def test_a_failing_job_reports_its_error(
    store: ArtifactStore, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    registry = Registry(store, key=KEY)
    trainer = Trainer(registry, executor, data_dir=tmp_path / "nowhere", key=KEY)

    job = trainer.submit(["content_based"])
    await wait_for(trainer, job.id)

    assert job.state is JobState.FAILED
    assert job.error is not None and "DatasetError" in job.error and "WISATA_DATA" in job.error
    assert job.finished_at is not None
    assert registry.status()["content_based"].state is ModelState.NOT_TRAINED
    with pytest.raises(UnknownModel):
        trainer.submit(["word2vec"])
