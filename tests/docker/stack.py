"""The compose stack of docker/docker-compose.yml, run with Compose 1.29 and the stage's override.

Compose 1.29 (Debian's docker-compose) reads the compose file users run, with
tests/docker/docker-compose.test.yml over it (see there for what it swaps), and an env file the
stage writes: ``.env.example`` with every secret filled in, the stand-in images, and free ports
of 127.0.0.1. Compose 1.29 cannot take two things of the file: the top-level ``name`` (the
project name, a Compose v2 key its schema rejects), and published ``ports`` beside the
override's ``network_mode: host`` (it refuses them; Compose v2 and the engine ignore them there,
as the host's network publishes nothing). It gets a copy without those lines
(:func:`compose_file_for_1_29`), and the project name on its command line instead. Everything
else it reads as written.

The containers are then watched and driven through the engine's API with docker-py, and the
service through its HTTP API on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import boto3
import yaml
from docker.models.containers import Container

import docker
from tests.docker.engine import DockerEngine, run
from tests.s3server import free_port, repo_root

__all__ = ["V2_ONLY_KEYS", "Stack", "compose_file_for_1_29", "wait_for"]

ROOT = repo_root()
COMPOSE_FILE = ROOT / "docker" / "docker-compose.yml"
OVERRIDE = ROOT / "tests" / "docker" / "docker-compose.test.yml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
V2_ONLY_KEYS = ("name",)
"""Top-level keys of the compose file Compose 1.29 refuses (its schema predates them)."""
UNPUBLISHED = "ports"
"""What Compose 1.29 refuses beside the host's network, which publishes nothing anyway."""
BUCKET = "wisata"
PREFIX = "models"
MODELS = ("content_based", "collaborative", "hybrid")

T = TypeVar("T")


def compose_file_for_1_29(source: Path, target: Path) -> list[str]:
    """Copy ``source`` to ``target`` as Compose 1.29 takes it with the override over it.

    Dropped: the top-level keys only Compose v2 knows, and each service's published ports
    (Compose 1.29 refuses ports beside ``network_mode: host``, where Compose v2 and the engine
    ignore them). The lines are dropped as text, so the rest (anchors, comments, quoting) stays
    as written. Returns what was dropped, as ``name`` or ``service.ports``.
    """
    kept: list[str] = []
    dropped: list[str] = []
    service = None
    skipping = False
    for line in source.read_text().splitlines(keepends=True):
        if skipping and (line.startswith("      ") or not line.strip()):
            continue  # an item of the list being dropped
        skipping = False
        key = line.partition(":")[0]
        if key in V2_ONLY_KEYS and not line.startswith(" "):
            dropped.append(key)
            continue
        if re.fullmatch(r"  [a-z][a-z0-9_-]*", key):
            service = key.strip()  # a service's first line (or a volume's)
        if line.rstrip() == f"    {UNPUBLISHED}:":
            dropped.append(f"{service}.{UNPUBLISHED}")
            skipping = True
            continue
        kept.append(line)
    target.write_text("".join(kept))
    return dropped


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a compose env file (quotes stripped, comments skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if not sep or name.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    details: Callable[[], str] = str,
    interval: float = 1.0,
) -> T:
    """Call ``probe`` until it returns something other than None; fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{details()}")
        time.sleep(interval)


class Stack:
    """One project of the compose file on ``engine``: its env file, its containers, its API."""

    def __init__(self, engine: DockerEngine, workdir: Path, images: Mapping[str, str]) -> None:
        self.engine = engine
        self.workdir = workdir
        self.project = f"wisata-stage-{secrets.token_hex(4)}"
        self.ports = {"S3_PORT": free_port(), "PG_PORT": free_port(), "API_PORT": free_port()}
        assert len(set(self.ports.values())) == 3, self.ports
        self.compose_copy = workdir / "docker-compose.yml"
        self.dropped = compose_file_for_1_29(COMPOSE_FILE, self.compose_copy)
        self.settings = self._settings(images)
        self.env_file = workdir / "stage.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
        self.client = docker.DockerClient(base_url=engine.host, timeout=300)
        self.api_url = f"http://127.0.0.1:{self.ports['API_PORT']}"
        self.s3_endpoint = f"http://127.0.0.1:{self.ports['S3_PORT']}"

    def _settings(self, images: Mapping[str, str]) -> dict[str, str]:
        settings = read_env_file(ENV_EXAMPLE)
        for name in ("MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY",
                     "WISATA_ADMIN_TOKEN", "WISATA_ARTIFACT_KEY"):  # fmt: skip
            settings[name] = secrets.token_urlsafe(24)
        settings.update({name: str(port) for name, port in self.ports.items()})
        settings.update(
            MINIO_IMAGE=images["s3"],
            MC_IMAGE=images["s3"],
            POSTGRES_IMAGE=images["postgres"],
            # Quick to notice a published model, a lost store and its return.
            WISATA_RELOAD_INTERVAL="2",
        )
        return settings

    # --- compose --------------------------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``docker-compose`` (1.29) on this project, the override over the compose file."""
        compose = shutil.which("docker-compose") or "/usr/bin/docker-compose"
        command = [
            compose,
            "--project-name", self.project,
            "--project-directory", str(COMPOSE_FILE.parent),
            "--env-file", str(self.env_file),
            "--file", str(self.compose_copy),
            "--file", str(OVERRIDE),
            *args,
        ]  # fmt: skip
        env = {**self.engine.environment(), "COMPOSE_HTTP_TIMEOUT": "600"}
        return run(command, env=env, timeout=timeout)

    def up(self) -> None:
        """``up --detach``: returns once every one-shot has succeeded and the rest started."""
        try:
            self.compose("up", "--detach", "--no-build")
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.logs()}") from None

    def down(self) -> None:
        """Remove the containers and the volumes; keep going on errors (a teardown)."""
        try:
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300)
        finally:
            self.client.close()

    def container(self, service: str) -> Container:
        """The container of ``service`` (stopped ones too)."""
        labels = [f"com.docker.compose.project={self.project}",
                  f"com.docker.compose.service={service}"]  # fmt: skip
        found = self.client.containers.list(all=True, filters={"label": labels})
        assert len(found) == 1, f"{service}: {len(found)} containers"
        return found[0]

    def logs(self, *services: str) -> str:
        """The last lines of each service's log, for a failure's message."""
        parts = []
        for service in services or ("minio", "minio-init", "postgres", "db-init", "api", "retrain"):
            try:
                text = self.container(service).logs(tail=60).decode("utf-8", "replace")
            except Exception as error:  # a container that was never created
                text = f"(no log: {error})"
            parts.append(f"--- {service} ---\n{text}")
        return "\n".join(parts)

    def health(self, service: str) -> str | None:
        """The health check's state (``starting``, ``healthy``, ``unhealthy``), None if none."""
        container = self.container(service)
        container.reload()
        state: dict[str, Any] = container.attrs["State"]
        health = state.get("Health")
        return None if health is None else str(health["Status"])

    # --- the service ----------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` of the API: (status, decoded JSON); (0, error) when nothing answers."""
        try:
            with urllib.request.urlopen(self.api_url + path, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except (OSError, ValueError) as error:
            return 0, str(error)

    def wait_ready(self, timeout: float = 600) -> dict[str, Any]:
        """Wait until ``/readyz`` answers 200 (every model loaded); return the status."""

        def ready() -> dict[str, Any] | None:
            code, _ = self.get("/readyz")
            return self.get("/api/ml/status")[1] if code == 200 else None

        return wait_for("the API ready", ready, timeout=timeout, details=self.logs)

    def served_versions(self) -> dict[str, tuple[str | None, str | None]]:
        """Per model: the (version id, checksum) the API serves."""
        code, status = self.get("/api/ml/status")
        assert code == 200, status
        return {
            name: ((model["artifact"] or {}).get("version_id"), model["checksum"])
            for name, model in status["models"].items()
        }

    # --- the bucket -----------------------------------------------------------------------------

    def s3(self) -> Any:
        """A boto3 client of the stage's S3 server, as the application user signs."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.settings["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.settings["AWS_SECRET_ACCESS_KEY"],
        )

    def stored_versions(self) -> dict[str, list[str]]:
        """Per model artifact in the bucket: its version ids, newest first."""
        listed = self.s3().list_object_versions(Bucket=BUCKET, Prefix=f"{PREFIX}/")
        found: dict[str, list[str]] = {}
        for version in listed.get("Versions", []):
            name = version["Key"].removeprefix(f"{PREFIX}/").removesuffix(".pkl")
            if name in MODELS:
                found.setdefault(name, []).append(version["VersionId"])
        return found


def yaml_of(path: Path) -> dict[str, Any]:
    """A compose file as YAML reads it (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded
