"""The Docker stage's build step, without an engine: a build that reached no index runs again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.docker import engine as engine_module
from tests.docker.engine import BUILD_ATTEMPTS, DockerEngine

DNS_BLIP = (
    "ConnectionError: HTTPSConnectionPool(host='files.pythonhosted.org', port=443): Max retries "
    "exceeded with url: /packages/x.whl (Caused by NewConnectionError(... [Errno -3] Temporary "
    "failure in name resolution'))"
)


class FakeClient:
    """Stands for the docker client: each build fails with the next of ``failures``, then works."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.builds = 0

    def __call__(self, *args: str, **_: object) -> subprocess.CompletedProcess[str]:
        if args[0] == "build":
            self.builds += 1
            if self.failures:
                raise RuntimeError(f"docker build exited with 1:\n{self.failures.pop(0)}")
        if args[0] == "save":
            Path(args[args.index("--output") + 1]).write_bytes(b"image")
        return subprocess.CompletedProcess(args, 0, stdout="123\n", stderr="")


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DockerEngine, Path]:
    monkeypatch.setattr(engine_module, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(engine_module.time, "sleep", lambda _: None)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    return DockerEngine.__new__(DockerEngine), dockerfile


def test_a_build_that_reached_no_package_index_is_run_again(
    built: tuple[DockerEngine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, dockerfile = built
    client = FakeClient([DNS_BLIP] * (BUILD_ATTEMPTS - 1))
    monkeypatch.setattr(engine, "docker", client)

    report = engine.cached_build("x:1", dockerfile, dockerfile.parent, inputs=[])

    assert client.builds == BUILD_ATTEMPTS
    assert (report.tag, report.cached, report.size) == ("x:1", False, 123)
    assert len(list((dockerfile.parent / "cache").glob("x-*.tar"))) == 1  # saved once built


def test_a_build_that_keeps_failing_or_fails_otherwise_raises_its_output(
    built: tuple[DockerEngine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, dockerfile = built
    always = FakeClient([DNS_BLIP] * BUILD_ATTEMPTS)
    monkeypatch.setattr(engine, "docker", always)
    with pytest.raises(RuntimeError, match="Temporary failure in name resolution"):
        engine.cached_build("x:1", dockerfile, dockerfile.parent, inputs=[])
    assert always.builds == BUILD_ATTEMPTS

    broken = FakeClient(["ERROR: failed to solve: dockerfile parse error on line 1"])
    monkeypatch.setattr(engine, "docker", broken)
    with pytest.raises(RuntimeError, match="dockerfile parse error"):
        engine.cached_build("x:1", dockerfile, dockerfile.parent, inputs=[])
    assert broken.builds == 1  # not a network blip: not run again
