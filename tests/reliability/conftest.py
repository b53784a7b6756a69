"""What the reliability tests share: an S3 server process, buckets, datasets and artifacts.

Each module gets its own ``moto_server`` process, so a test that loads the service hard never
competes for the test process's interpreter with the S3 server the service depends on.
"""

from __future__ import annotations

import csv
import random
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from service import artifacts
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import Registry, artifact_key
from service.serving.trainer import build_artifacts
from storage import ArtifactStore, StoreSettings, open_store
from tests.s3server import S3ServerProcess

TOKEN: Final = "reliability-admin-token"
ADMIN: Final = {"Authorization": f"Bearer {TOKEN}"}
#: A fixed hybrid weight: training takes well under a second instead of a few seconds (``auto``
#: fits the hybrid on validation splits), which leaves more of the time budget to the runs.
QUICK_WEIGHT: Final = "0.6"


@pytest.fixture(scope="module")
def s3_server(aws_credentials: dict[str, str]) -> Iterator[S3ServerProcess]:
    """A ``moto_server`` process for the module; the tests may not kill it (state dies with it)."""
    with S3ServerProcess() as server:
        yield server


def bucket_url() -> str:
    """The store URL of a new, empty bucket."""
    return f"s3://rel-{uuid.uuid4().hex[:16]}/wisata"


def service_env(storage: str, endpoint: str, **extra: str) -> dict[str, str]:
    """The ``WISATA_*`` variables of a service on ``storage``, with the admin token set."""
    return {
        "WISATA_STORAGE": storage,
        "WISATA_S3_ENDPOINT": endpoint,
        "WISATA_ADMIN_TOKEN": TOKEN,
        "WISATA_RELOAD_INTERVAL": "0",
        "WISATA_HYBRID_WEIGHT": QUICK_WEIGHT,
        "WISATA_LOG_LEVEL": "INFO",
        **extra,
    }


def variant_dataset(folder: Path, seed: int, keep: float = 0.9) -> Path:
    """The demo catalogue with a seeded share ``keep`` of its ratings, written to ``folder``.

    Models trained on two variants differ, so their checksums tell which training they came
    from.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_DATA_DIR / "items.csv", folder / "items.csv")
    rng = random.Random(seed)
    with (SAMPLE_DATA_DIR / "ratings.csv").open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    kept = [row for row in rows[1:] if rng.random() < keep]
    with (folder / "ratings.csv").open("w", newline="", encoding="utf-8") as target:
        csv.writer(target).writerows([rows[0], *kept])
    return folder


def build(data: Path, key: bytes | None = None) -> dict[str, bytes]:
    """The three artifacts of a training on ``data``, as the service would publish them."""
    return build_artifacts(data, key=key, hybrid_weight=float(QUICK_WEIGHT)).artifacts


def checksum(data: bytes) -> str:
    """The payload sha256 an artifact records (what ``/api/ml/status`` calls its checksum)."""
    return artifacts.read_header(data).payload_sha256


def open_bucket(url: str, endpoint: str) -> ArtifactStore:
    """The store at ``url`` as another writer (the retrain job, a replica) opens it."""
    return open_store(url, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True))


async def publish(url: str, endpoint: str, built: Mapping[str, bytes]) -> None:
    """Publish artifacts as one set, the hybrid last, as the retrain job does."""
    async with open_bucket(url, endpoint) as store:
        await store.ensure_ready()
        errors = await Registry(store).install(built)
        assert not any(errors.values()), errors


async def put_raw(url: str, endpoint: str, name: str, data: bytes) -> None:
    """Place arbitrary bytes at a model's key, as a careless or hostile writer could."""
    async with open_bucket(url, endpoint) as store:
        await store.ensure_ready()
        await store.put(artifact_key(name), data, {"model": name})


def served(status: Mapping[str, Any]) -> dict[str, str | None]:
    """Model name -> checksum of what ``/api/ml/status`` says is served."""
    return {name: model["checksum"] for name, model in status["models"].items()}
