"""What the Docker stage changes of docker/docker-compose.yml, checked without an engine.

The stage must run the stack the compose file describes: its override swaps the servers no
registry here serves and the network, nothing of the Wisata services but their addresses; and
the copy Compose 1.29 reads lacks only what it cannot take.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docker.stack import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    OVERRIDE,
    UNPUBLISHED,
    V2_ONLY_KEYS,
    compose_file_for_1_29,
    read_env_file,
    yaml_of,
)

WISATA = ("db-init", "api", "retrain")
STAND_INS = ("minio", "minio-init", "postgres")
# The variables that say where the servers are, and where the API listens.
ADDRESSES = {"WISATA_S3_ENDPOINT", "WISATA_DATA", "WISATA_HOST", "WISATA_PORT"}


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml_of(COMPOSE_FILE)


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    return yaml_of(OVERRIDE)


def test_every_container_is_on_the_hosts_network(
    base: dict[str, Any], override: dict[str, Any]
) -> None:
    assert set(override["services"]) == set(base["services"])
    for name, service in override["services"].items():
        assert service["network_mode"] == "host", name


def test_the_wisata_services_change_only_their_addresses(override: dict[str, Any]) -> None:
    for name in WISATA:
        service = override["services"][name]
        assert set(service) <= {"network_mode", "environment"}, name
        assert set(service.get("environment", {})) <= ADDRESSES, name
        for value in service.get("environment", {}).values():
            assert "minio:" not in value and "@postgres:" not in value


def test_the_stand_ins_keep_the_compose_files_volumes_and_dependencies(
    override: dict[str, Any],
) -> None:
    for name in STAND_INS:
        service = override["services"][name]
        # Images come in through MINIO_IMAGE, MC_IMAGE, POSTGRES_IMAGE of the env file.
        assert not {"image", "volumes", "depends_on", "restart"} & set(service), name
    init = override["services"]["minio-init"]
    bucket = "wisata"  # s3://wisata/models, WISATA_STORAGE of the compose file
    assert init["command"][init["command"].index("--bucket") + 1] == bucket


def test_compose_1_29_gets_the_file_less_only_what_it_cannot_take(
    base: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "docker-compose.yml"

    dropped = compose_file_for_1_29(COMPOSE_FILE, copy)

    expected = {key for key in V2_ONLY_KEYS if key in base}
    expected |= {
        f"{name}.{UNPUBLISHED}" for name, s in base["services"].items() if UNPUBLISHED in s
    }
    assert set(dropped) == expected and "name" in expected
    trimmed = {key: value for key, value in base.items() if key not in V2_ONLY_KEYS}
    for service in trimmed["services"].values():
        service.pop(UNPUBLISHED, None)
    assert yaml_of(copy) == trimmed


def test_compose_1_29_accepts_the_copy_with_the_override(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip(
            "docker-compose (1.29) is not installed; tests/docker/install_docker.sh does it"
        )
    copy = tmp_path / "docker-compose.yml"
    compose_file_for_1_29(COMPOSE_FILE, copy)
    env = tmp_path / "stage.env"
    values = {**read_env_file(ENV_EXAMPLE),
              "MINIO_ROOT_PASSWORD": "x" * 12, "POSTGRES_PASSWORD": "x" * 12,
              "AWS_SECRET_ACCESS_KEY": "x" * 12, "WISATA_ADMIN_TOKEN": "x" * 12,
              "WISATA_ARTIFACT_KEY": "x" * 12, "S3_PORT": "40001", "PG_PORT": "40002",
              "API_PORT": "40003"}  # fmt: skip
    env.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    command = [compose, "--project-name", "check", "--project-directory", str(COMPOSE_FILE.parent),
               "--env-file", str(env), "--file", str(copy), "--file", str(OVERRIDE),
               "config"]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert {s["network_mode"] for s in resolved.values()} == {"host"}
    api = resolved["api"]["environment"]
    assert api["WISATA_S3_ENDPOINT"] == "http://127.0.0.1:40001"
    assert api["WISATA_DATA"].endswith("@127.0.0.1:40002/wisata")
    assert (api["WISATA_HOST"], api["WISATA_PORT"]) == ("127.0.0.1", "40003")
    assert resolved["retrain"]["environment"]["WISATA_S3_ENDPOINT"] == "http://127.0.0.1:40001"
    assert resolved["postgres"]["environment"]["PGPORT"] == "40002"
