"""The Docker stage's fixtures: its own engine, the images built on it, the stack running.

The engine and the images are shared by the session; the stack is brought up once for the
module that checks it and taken down (containers and volumes) after it, and the engine is
stopped by its PID at the end, whatever happened. The figures of the run (what was built or
loaded from the cache and how long it took, the image's size, the time from ``up`` to ready)
are written to ``~/.cache/wisata-docker/last-run.json``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.docker.engine import CACHE, DockerEngine, EngineUnavailable, base_key, base_rootfs
from tests.docker.stack import Stack
from tests.s3server import repo_root

ROOT = repo_root()
HERE = ROOT / "tests" / "docker"
WISATA_TAG = "wisata:local"
# What docker/Dockerfile reads from its context (docker/Dockerfile.dockerignore lets in these).
WISATA_INPUTS = ("pyproject.toml", "setup.cfg", "constraints.txt", "README.md",
                 "service", "storage", "jobs")  # fmt: skip

logger = logging.getLogger(__name__)
FIGURES: dict[str, Any] = {}


def _write_figures() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "last-run.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    """dockerd of the session's own; the tests skip, saying why, when it cannot start."""
    started = time.monotonic()
    docker_engine = DockerEngine()
    try:
        docker_engine.start()
    except EngineUnavailable as error:
        pytest.skip(str(error))
    FIGURES["engine_start_seconds"] = round(time.monotonic() - started, 1)
    try:
        yield docker_engine
    finally:
        stopping = time.monotonic()
        docker_engine.stop()
        FIGURES["engine_stop_seconds"] = round(time.monotonic() - stopping, 1)
        FIGURES["engine_stop"] = docker_engine.stop_timings
        _write_figures()


@pytest.fixture(scope="session")
def images(engine: DockerEngine) -> dict[str, str]:
    """The base (debootstrap), then the Wisata image and the two stand-ins, built on it."""
    started = time.monotonic()
    key = base_key()[:16]
    base = f"wisata-base:{key}"
    with tempfile.TemporaryDirectory(prefix="wisata-rootfs-") as workdir:
        tarball, cached, seconds = base_rootfs(Path(workdir))
    imported = time.monotonic()
    engine.import_rootfs(tarball, base)
    FIGURES["base"] = {
        "cached": cached,
        "debootstrap_seconds": round(seconds, 1),
        "import_seconds": round(time.monotonic() - imported, 1),
        "size_bytes": engine.image_size(base),
    }
    builds = {
        "wisata": (WISATA_TAG, ROOT / "docker" / "Dockerfile", [Path(p) for p in WISATA_INPUTS],
                   {"PYTHON_IMAGE": base}),
        "s3": ("wisata-test-s3:stage", HERE / "s3.Dockerfile",
               [Path("constraints.txt"), Path("tests/docker/s3_server.py")], {"BASE_IMAGE": base}),
        "postgres": ("wisata-test-postgres:stage", HERE / "postgres.Dockerfile",
                     [Path("tests/docker/postgres-entrypoint.sh")], {"BASE_IMAGE": base}),
    }  # fmt: skip
    # Three builds at once: most of their time is spent waiting on the package indexes.
    with ThreadPoolExecutor(max_workers=len(builds)) as pool:
        futures = {
            name: pool.submit(
                engine.cached_build,
                tag,
                dockerfile,
                ROOT,
                inputs=[key, *(ROOT / path for path in inputs)],
                build_args=args,
            )
            for name, (tag, dockerfile, inputs, args) in builds.items()
        }
        reports = {name: future.result() for name, future in futures.items()}
    for name, report in reports.items():
        FIGURES[name] = {
            "cached": report.cached,
            "seconds": round(report.seconds, 1),
            "size_bytes": report.size,
        }
    FIGURES["images_seconds"] = round(time.monotonic() - started, 1)
    logger.info("images: %s", FIGURES)
    return {name: report.tag for name, report in reports.items()}


@pytest.fixture(scope="module")
def stack(engine: DockerEngine, images: dict[str, str], tmp_path_factory: Any) -> Iterator[Stack]:
    """The stack up and every model loaded by the API; down (with its volumes) afterwards."""
    running = Stack(engine, tmp_path_factory.mktemp("stack"), images)
    started = time.monotonic()
    try:
        running.up()
        FIGURES["up_seconds"] = round(time.monotonic() - started, 1)
        running.wait_ready()
        FIGURES["up_to_ready_seconds"] = round(time.monotonic() - started, 1)
        yield running
    finally:
        stopping = time.monotonic()
        running.down()
        FIGURES["down_seconds"] = round(time.monotonic() - stopping, 1)
