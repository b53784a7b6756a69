"""What can be checked of docker/ without a Docker engine.

tests/docker/ builds the image and runs the stack on an engine of its own; these tests need none.
They read the files as Docker and Compose would and check that they fit the code: the compose
file parses and wires the stack together; every command a Wisata container runs is a console
script declared in setup.cfg whose arguments its parser accepts; every ``WISATA_*`` variable a
container gets is one the configuration reads, with values it accepts; ``.env.example`` lists
exactly what the compose file reads; the Dockerfile's health check, run as written, tells a live
service from a dead port.
"""

from __future__ import annotations

import asyncio
import configparser
import importlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp.test_utils import TestServer

from jobs import db, retrain
from service.config import Config
from service.web.app import create_app
from tests.s3server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
WISATA_SERVICES = ("api", "retrain")
SECRETS = {
    "MINIO_ROOT_PASSWORD",
    "POSTGRES_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "WISATA_ADMIN_TOKEN",
    "WISATA_ARTIFACT_KEY",
}
# Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} and
# ${NAME?error}.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    """A ``${NAME:?message}`` whose variable is unset or empty: compose refuses to start."""


def read_env_file(path: Path) -> dict[str, str]:
    """Read a compose ``.env`` file: ``NAME=value`` lines, optional quotes, ``#`` comments."""
    values = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        assert sep, f"{path.name}: {line!r} is not NAME=value"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute ``${...}`` references as compose does; ``$$`` is a literal ``$``."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        empty = not value
        if operator == ":-":
            return argument if empty else str(value)
        if operator == "-":
            return argument if value is None else value
        if operator in (":?", "?") and (value is None or (operator == ":?" and empty)):
            raise MissingVariable(f"{name}: {argument}")
        return value or ""

    parts = text.split("$$")
    return "$".join(_REFERENCE.sub(substitute, part) for part in parts)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def references(node: Any) -> Iterator[str]:
    """Every variable name the compose file interpolates."""
    if isinstance(node, str):
        for part in node.split("$$"):
            yield from (match.group(1) for match in _REFERENCE.finditer(part))
    elif isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from references(value)


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` from setup.cfg's ``console_scripts``."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser.get("options.entry_points", "console_scripts", fallback="").splitlines()
    scripts = {}
    for line in filter(None, (line.strip() for line in lines)):
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return read_env_file(DOCKER / ".env.example")


@pytest.fixture(scope="module")
def filled(example: dict[str, str]) -> dict[str, str]:
    """``.env.example`` with its empty secrets filled in, as an operator is told to."""
    secrets = {name: f"{name.lower()}-0123456789" for name in SECRETS}
    return {**example, **secrets}


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any], filled: dict[str, str]) -> dict[str, Any]:
    resolved: dict[str, Any] = resolve(raw_compose, filled)
    return resolved


def command(service: dict[str, Any]) -> list[str]:
    run = service["command"]
    return shlex.split(run) if isinstance(run, str) else [str(part) for part in run]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


class RecordingEnv(dict[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


# --- docker-compose.yml -------------------------------------------------------------------------


def test_the_stack_is_wired_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # postgres and db-init: the site's database, added with the database issue.
    assert set(services) == {"minio", "minio-init", "postgres", "db-init", *WISATA_SERVICES}

    minio = services["minio"]
    assert minio["command"][:2] == ["server", "/data"]
    assert "--console-address" in minio["command"]
    assert minio["command"][minio["command"].index("--console-address") + 1] == ":9001"
    assert {port.rsplit(":", 1)[1] for port in minio["ports"]} == {"9000", "9001"}
    volume = minio["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a folder of the host
    assert minio["healthcheck"]["test"]

    init = services["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    bucket = urlsplit(environment(services["api"])["WISATA_STORAGE"]).netloc
    script = " ".join(command(init))
    assert f"mc mb --ignore-existing local/{bucket}" in script
    assert f"mc version enable local/{bucket}" in script
    assert init["restart"] == "no"

    for name in WISATA_SERVICES:
        service = services[name]
        assert service["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        env = environment(service)
        assert env["WISATA_S3_ENDPOINT"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]


def test_the_database_is_ready_before_the_service_and_the_scheduler(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    postgres, init = services["postgres"], services["db-init"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert postgres["volumes"][0].split(":")[0] in compose["volumes"]
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    argv = command(init)
    assert argv[0] in console_scripts()
    args = db.build_parser().parse_args(argv[1:])
    assert (args.command, args.seed) == ("init", "/data")
    url = environment(init)["WISATA_DATA"]
    assert Config.from_env({"WISATA_DATA": url}).database is not None
    for name in WISATA_SERVICES:
        service = services[name]
        assert service["depends_on"]["db-init"]["condition"] == "service_completed_successfully"
        assert environment(service)["WISATA_DATA"] == url


def test_every_command_is_a_declared_console_script(compose: dict[str, Any]) -> None:
    scripts = console_scripts()
    for name in WISATA_SERVICES:
        program = command(compose["services"][name])[0]
        assert program in scripts, f"{name} runs {program!r}, not a console script of setup.cfg"
        module, _, function = scripts[program].partition(":")
        assert callable(getattr(importlib.import_module(module), function))
    assert command(compose["services"]["api"])[0] == "wisata-serve"


def test_the_scheduler_runs_retrain_on_a_cron_its_parser_accepts(compose: dict[str, Any]) -> None:
    argv = command(compose["services"]["retrain"])
    assert argv[0] == "wisata-retrain"
    args = retrain.build_parser().parse_args(argv[1:])
    assert args.cron is not None and args.cron.expression == "0 3 * * 0"
    assert args.every is None


def test_every_wisata_variable_set_is_read_by_the_config(compose: dict[str, Any]) -> None:
    for name in WISATA_SERVICES:
        env = environment(compose["services"][name])
        recording = RecordingEnv(env)

        config = Config.from_env(recording)  # valid as the compose file sets it

        set_here = {variable for variable in env if variable.startswith("WISATA_")}
        assert set_here <= recording.read, f"{name}: never read: {set_here - recording.read}"
        assert config.storage == "s3://wisata/models"
        assert config.s3_endpoint == "http://minio:9000"
        assert config.s3_create_bucket is False
        assert config.artifact_key == b"wisata_artifact_key-0123456789"
    api = Config.from_env(environment(compose["services"]["api"]))
    assert (api.host, api.port) == ("0.0.0.0", 8080)
    assert api.admin_token == "wisata_admin_token-0123456789"


def test_compose_refuses_to_start_until_the_secrets_are_set(
    raw_compose: dict[str, Any], example: dict[str, str]
) -> None:
    assert {name for name in SECRETS if not example.get(name)} == SECRETS
    for secret in SECRETS:
        present = {**example, **{name: "x" * 12 for name in SECRETS - {secret}}}
        with pytest.raises(MissingVariable, match=secret):
            resolve(raw_compose, present)


def test_env_example_lists_exactly_the_variables_compose_reads(
    raw_compose: dict[str, Any], example: dict[str, str]
) -> None:
    assert set(references(raw_compose)) == set(example)
    recording = RecordingEnv({})
    Config.from_env(recording)
    wisata = {name for name in example if name.startswith("WISATA_")}
    assert wisata <= recording.read, f"not configuration variables: {wisata - recording.read}"


# --- Dockerfile ---------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKER / "Dockerfile")


def test_the_image_is_multi_stage_and_runs_as_a_user(dockerfile: list[tuple[str, str]]) -> None:
    stages = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith(" AS builder") and stages[1].endswith(" AS runtime")
    runtime = dockerfile[[k for k, _ in dockerfile].index("FROM", 1) :]
    runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert "from=builder" in runs
    assert "pip install --no-index --find-links /wheels -c /tmp/constraints.txt wisata" in runs
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "useradd --system --uid 10001 --gid wisata" in runs


def test_the_build_context_holds_what_the_dockerfile_copies(
    dockerfile: list[tuple[str, str]],
) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for keyword, args in dockerfile:
        if keyword != "COPY" or "--from" in args:
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, source


def test_the_entry_point_is_the_service_console_script(dockerfile: list[tuple[str, str]]) -> None:
    [cmd] = [args for keyword, args in dockerfile if keyword == "CMD"]
    assert cmd == '["wisata-serve"]'
    assert "wisata-serve" in console_scripts()


async def test_the_health_check_passes_on_a_live_service_and_fails_on_a_dead_port(
    dockerfile: list[tuple[str, str]], tmp_path: Path
) -> None:
    [check] = [args for keyword, args in dockerfile if keyword == "HEALTHCHECK"]
    argv: list[str] = yaml.safe_load(check.split(" CMD ", 1)[1])
    assert argv[:2] == ["python", "-c"] and "curl" not in check
    config = Config(storage=str(tmp_path / "models"), reload_interval=0)

    async with TestServer(create_app(config), host="127.0.0.1") as server:
        live = await _probe(argv[2], server.port)
    dead = await _probe(argv[2], free_port())

    assert live.returncode == 0, live.stderr
    assert dead.returncode != 0
    assert "Connection refused" in dead.stderr


async def _probe(snippet: str, port: int | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WISATA_PORT": str(port)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", snippet],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
