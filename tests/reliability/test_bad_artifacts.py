"""Bad artifacts: damaged, wrongly signed and foreign bytes placed over a serving model.

A real ``python -m service`` process with ``WISATA_ARTIFACT_KEY`` set serves the three demo
models from a bucket. Each case writes bad bytes at one model's key, as a broken upload, a
flipped disk bit, a writer with another key or an attacker with write access to the bucket
could, then asks the service to reload. Every bad artifact carries a payload that creates a
marker file when unpickled, so "refused before unpickling" is checked, not assumed: the marker
must never appear (a control loads the same payload, correctly signed, and sees it appear).
The refusal must be named in ``/api/ml/status`` and the previous model must keep serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from service import artifacts
from service.artifacts import DatasetSummary
from service.ml.recommenders import MODEL_NAMES
from service.sample_data import SAMPLE_DATA_DIR
from tests.reliability.conftest import (
    ADMIN,
    bucket_url,
    build,
    checksum,
    publish,
    put_raw,
    service_env,
)
from tests.s3server import S3ServerProcess
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow

KEY: Final = b"the key this deployment signs with"
OTHER_KEY: Final = b"a key someone else signs with"


class Plant:
    """Unpickling this creates ``path``: proof that bytes were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[Path], None], tuple[Path]]:
        return Path.touch, (self.path,)


def planted(model: str, marker: Path, key: bytes | None) -> bytes:
    """An artifact envelope for ``model`` whose payload creates ``marker`` when unpickled."""
    summary = DatasetSummary(fingerprint="planted", items=1, users=1, interactions=1)
    return artifacts.dump(
        Plant(marker), model_name=model, dataset=summary, training_seconds=0.0, key=key
    )


def payload_size(data: bytes) -> int:
    return artifacts.read_header(data).payload_size


def flip_bit(data: bytes, position: int) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 0x01
    return bytes(flipped)


@dataclass(frozen=True)
class BadArtifact:
    """One way an artifact can be bad, the model it replaces and the refusal expected."""

    name: str
    model: str
    refusal: str
    make: Callable[[str, Path, bytes], bytes]  # (model, marker, the good artifact) -> bytes


CASES: Final = (
    BadArtifact(
        # Cut before the final STOP opcode: an unpickler would have run the payload's call.
        "truncated",
        "content_based",
        "TruncatedArtifact",
        lambda model, marker, good: planted(model, marker, KEY)[:-1],
    ),
    BadArtifact(
        "truncated real model (half its bytes)",
        "collaborative",
        "TruncatedArtifact",
        lambda model, marker, good: good[: len(good) // 2],
    ),
    BadArtifact(
        "bit-flipped",
        "collaborative",
        "ChecksumMismatch",
        lambda model, marker, good: flip_bit(planted(model, marker, KEY), -1),
    ),
    BadArtifact(
        "bit-flipped real model (one bit mid-payload)",
        "hybrid",
        "ChecksumMismatch",
        lambda model, marker, good: flip_bit(good, len(good) - payload_size(good) // 2),
    ),
    BadArtifact(
        "wrongly signed",
        "hybrid",
        "SignatureInvalid",
        lambda model, marker, good: planted(model, marker, OTHER_KEY),
    ),
    BadArtifact(
        "unsigned",
        "content_based",
        "SignatureMissing",
        lambda model, marker, good: planted(model, marker, None),
    ),
    BadArtifact(
        "foreign pickle",
        "content_based",
        "NotAnArtifact",
        lambda model, marker, good: pickle.dumps(Plant(marker)),
    ),
)


@dataclass
class Deployment:
    server: ServeProcess
    url: str
    endpoint: str
    good: dict[str, bytes]
    markers: Path


@pytest.fixture(scope="module")
def deployment(
    s3_server: S3ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The service on a bucket of signed demo models, with the key set; reload on request."""
    url = bucket_url()
    good = build(SAMPLE_DATA_DIR, key=KEY)
    asyncio.run(publish(url, s3_server.endpoint, good))
    env = service_env(url, s3_server.endpoint, WISATA_ARTIFACT_KEY=KEY.decode())
    markers = tmp_path_factory.mktemp("markers")
    with ServeProcess(env) as server:
        assert server.request("GET", "/readyz")[0] == 200, server.log()
        yield Deployment(server, url, s3_server.endpoint, good, markers)
    assert not list(markers.iterdir()), "a bad artifact was unpickled"


def test_the_planted_payload_runs_code_when_it_is_loaded(tmp_path: Path) -> None:
    # The control: correctly signed, the same payload does create its marker when loaded, so
    # a marker that never appears below means the bytes were never unpickled.
    marker = tmp_path / "control"
    artifacts.load(planted("content_based", marker, KEY), KEY, expected_model="content_based")
    assert marker.exists()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_artifact_is_refused_and_the_serving_model_stays(
    deployment: Deployment, case: BadArtifact
) -> None:
    server, model = deployment.server, case.model
    marker = deployment.markers / case.name.replace(" ", "-")
    before = server.json("GET", "/api/ml/status")["models"][model]
    assert before["state"] == "loaded"
    assert before["checksum"] == checksum(deployment.good[model])
    answer_before = recommendations(server, model)

    bad = case.make(model, marker, deployment.good[model])
    asyncio.run(put_raw(deployment.url, deployment.endpoint, model, bad))
    reload = server.json("POST", "/api/ml/reload", headers=dict(ADMIN))

    assert model not in reload["reloaded"]
    assert not marker.exists(), f"{case.name}: the artifact was unpickled"
    after = server.json("GET", "/api/ml/status")["models"][model]
    assert after["state"] == "loaded"
    assert after["checksum"] == before["checksum"]
    assert after["artifact"]["etag"] == before["artifact"]["etag"]  # the one it was loaded from
    assert after["last_error"] is not None and after["last_error"].startswith(case.refusal), after
    assert recommendations(server, model) == answer_before
    etag = hashlib.md5(bad).hexdigest()  # S3's ETag of a single-part upload
    assert f"{model}: refused artifact {model}.pkl (etag {etag})" in server.log()


def test_a_restart_on_bad_artifacts_serves_what_is_sound(
    deployment: Deployment, s3_server: S3ServerProcess
) -> None:
    """No model to keep serving: a restarted service marks the bad one FAILED, never loads it.

    The hybrid either is not served or runs with the sound content version it was built with,
    which the bucket keeps among the key's older versions.
    """
    marker = deployment.markers / "restart"
    bad = flip_bit(planted("content_based", marker, KEY), -1)
    asyncio.run(put_raw(deployment.url, deployment.endpoint, "content_based", bad))
    sound = {name: deployment.good[name] for name in MODEL_NAMES if name != "content_based"}
    asyncio.run(publish(deployment.url, deployment.endpoint, sound))
    env = service_env(deployment.url, s3_server.endpoint, WISATA_ARTIFACT_KEY=KEY.decode())
    with ServeProcess(env) as restarted:
        models = restarted.json("GET", "/api/ml/status")["models"]
        assert models["content_based"]["state"] == "failed"
        assert models["content_based"]["reason"].startswith("ChecksumMismatch")
        assert models["collaborative"]["state"] == "loaded"
        assert restarted.request("GET", "/readyz")[0] == 503
        assert recommendations(restarted, "collaborative")["items"]
        hybrid = models["hybrid"]
        status, body = restarted.request("GET", "/api/frontend/recommendations?user_id=u001")
        if hybrid["state"] == "not_trained":  # its content sub-model is not served
            assert status == 503 and body["error"] == "model_not_trained"
        else:  # it runs with the sound content version it was built with, kept in the bucket
            assert hybrid["state"] in ("loaded", "stale"), hybrid
            good_content = checksum(deployment.good["content_based"])
            assert hybrid["header"]["parents"]["content_based"] == good_content
            assert status == 200 and body["items"]
    assert not marker.exists()


ALGORITHM_OF: Final = {"content_based": "content", "collaborative": "collaborative"}


def recommendations(server: ServeProcess, model: str) -> dict[str, object]:
    """What the model answers for a known user (the hybrid for ``hybrid``)."""
    algorithm = ALGORITHM_OF.get(model, "hybrid")
    answer: dict[str, object] = server.json(
        "GET", f"/api/frontend/recommendations?user_id=u001&algorithm={algorithm}&limit=10"
    )
    return answer
