"""Workers' shared arrays: a loaded model mapped from the group's files answers as it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from service import artifacts
from service.ml.recommenders import Collaborative, ContentBased, Hybrid, Recommender
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.building import build_artifacts
from service.serving.sharing import MIN_SHARED_BYTES, share_arrays

USERS = ["u001", "u017", "u150", "nobody"]


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return dict(build_artifacts(SAMPLE_DATA_DIR, hybrid_weight=0.5).artifacts)


def loaded(built: dict[str, bytes], name: str) -> tuple[Recommender, str]:
    model, header = artifacts.load(built[name], expected_model=name)
    assert isinstance(model, Recommender)
    return model, header.payload_sha256


def served_set(built: dict[str, bytes], folder: Path | None) -> dict[str, Recommender]:
    models = {}
    for name in ("content_based", "collaborative", "hybrid"):
        model, checksum = loaded(built, name)
        if folder is not None:
            share_arrays(model, folder, name, checksum)
        models[name] = model
    hybrid = models["hybrid"]
    assert isinstance(hybrid, Hybrid)
    content, collaborative = models["content_based"], models["collaborative"]
    assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
    hybrid.attach(content, collaborative)
    return models


def answers(model: Recommender) -> list[object]:
    items = list(model.catalogue_.ids[:3])
    found: list[object] = [model.recommend(user, 10) for user in USERS]
    found += [model.recommend(USERS[0], 5, exclude_seen=False)]
    found += [model.similar_items(item, 7) for item in items]
    found += [model.recommend_for_ratings([(items[0], 5.0), (items[1], 2.0)], 10)]
    return found


def mapped_files(model: Recommender) -> set[Path]:
    """The files of the group's folder this model's arrays are mapped from."""
    found = set()
    for value in vars(model).values():
        arrays = [value.data, value.indices] if sp.issparse(value) else [value]
        for array in arrays:
            if isinstance(array, np.ndarray) and isinstance(array.base, np.memmap):
                found.add(Path(array.base.filename))
    return found


def test_models_mapped_from_the_shared_files_answer_exactly_as_unpickled(
    built: dict[str, bytes], tmp_path: Path
) -> None:
    private = served_set(built, None)
    shared = served_set(built, tmp_path / "arrays")
    for name in private:
        assert answers(shared[name]) == answers(private[name]), name
        assert mapped_files(shared[name]), f"{name}: no array was mapped"


def test_a_second_worker_maps_the_first_ones_files_read_only(
    built: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "arrays"
    first, checksum = loaded(built, "collaborative")
    second, _ = loaded(built, "collaborative")
    written = share_arrays(first, folder, "collaborative", checksum)
    files = {path: path.stat().st_mtime_ns for path in folder.glob("*.npy")}
    assert share_arrays(second, folder, "collaborative", checksum) == written > MIN_SHARED_BYTES
    # The second found the files the first wrote (not rewritten) and mapped the same ones.
    assert {path: path.stat().st_mtime_ns for path in folder.glob("*.npy")} == files
    assert (
        mapped_files(first)
        == mapped_files(second)
        == set(files) - {path for path in files if "nmf_" in path.name}
    )
    assert isinstance(second, Collaborative)
    with pytest.raises(ValueError, match="read-only"):
        second.shortlist_scores_[0, 0] = 1.0


def test_a_damaged_shared_file_is_written_again_from_the_verified_model(
    built: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "arrays"
    first, checksum = loaded(built, "content_based")
    share_arrays(first, folder, "content_based", checksum)
    victim = max(folder.glob("*.npy"), key=lambda path: path.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[200:208] = b"\x00\x00\x80\x7f" * 2  # two values, past the header, made infinite
    victim.write_bytes(bytes(data))

    second, _ = loaded(built, "content_based")
    private, _ = loaded(built, "content_based")
    share_arrays(second, folder, "content_based", checksum)
    assert answers(second) == answers(private)
    assert victim.read_bytes() != bytes(data)


def test_sharing_a_new_version_removes_the_old_versions_files(
    built: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "arrays"
    parts = served_set(built, folder)
    content, collaborative = parts["content_based"], parts["collaborative"]
    assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
    old = parts["hybrid"]
    old_files = set(folder.glob("hybrid-*.npy"))
    assert old_files and mapped_files(old) <= old_files

    new, _ = loaded(built, "hybrid")
    assert isinstance(new, Hybrid)
    share_arrays(new, folder, "hybrid", "f" * 64)  # another version of the same model
    new.attach(content, collaborative)
    assert set(folder.glob("hybrid-*.npy")) and not old_files & set(folder.glob("hybrid-*.npy"))
    assert set(folder.glob("content_based-*.npy"))  # another model's files stay
    # The old model still answers from its mapping of the removed files.
    assert not any(path.exists() for path in mapped_files(old))
    assert answers(old) == answers(new)
