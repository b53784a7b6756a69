"""Artifacts written before the layered layout still load, verify and answer as they did."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service import artifacts
from service.ml.recommenders import MODEL_NAMES
from service.serving.registry import ModelState, Registry, artifact_key
from storage import ArtifactStore, open_store

LEGACY = Path(__file__).resolve().parents[1] / "data" / "artifacts-v1"
KEY = b"artifacts-v1-key"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    async with open_store(str(tmp_path / "models")) as opened:
        await opened.ensure_ready()
        for name in MODEL_NAMES:
            data = (LEGACY / f"{name}.pkl").read_bytes()
            metadata = artifacts.to_metadata(artifacts.read_header(data))
            await opened.put(artifact_key(name), data, metadata)
        yield opened


def same(got: list[tuple[str, float]], recorded: list[Any]) -> bool:
    """The same items in the same order, with the same scores to float32 precision."""
    return [item for item, _ in got] == [str(item) for item, _ in recorded] and all(
        score == pytest.approx(float(then), rel=1e-5, abs=1e-6)
        for (_, score), (_, then) in zip(got, recorded, strict=True)
    )


async def test_artifacts_of_format_1_load_and_answer_as_before(store: ArtifactStore) -> None:
    expected = json.loads((LEGACY / "answers.json").read_text())
    registry = Registry(store, key=KEY)
    await registry.load_all()

    assert registry.missing() == {}
    for name in MODEL_NAMES:
        assert registry.status()[name].state is ModelState.LOADED
        model = registry.model(name)
        answers = expected[name]
        for user, items in answers["recommend"].items():
            assert same(model.recommend(user, 5).items, items), (name, user)
        ratings = [("1", 5.0), ("7", 2.0)]
        assert same(model.recommend_for_ratings(ratings, 5).items, answers["for_ratings"]), name
        assert same(model.similar_items("3", 5), answers["similar"]), name
