"""A real ``python -m service`` process for end-to-end tests, and what they do with it.

:class:`ServeProcess` starts the service with a given environment on a free port of 127.0.0.1,
waits until it answers ``/healthz``, and keeps its log in a file. It stops it with SIGTERM, as an
orchestrator would, or kills it with SIGKILL (its training workers too), as a crash would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pytest

from tests.s3server import free_port, repo_root

__all__ = ["START_TIMEOUT", "ServeProcess", "descendants"]

START_TIMEOUT = 60.0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first), read from ``/proc``."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                pending.extend(children)
    return found


class ServeProcess:
    """``python -m service`` with the given environment, its log kept in a file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "WISATA_PORT": str(self.port)}
        self.base = f"http://127.0.0.1:{self.port}"
        # A file, unlike a pipe, never fills up and blocks the server; closed in __exit__.
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=repo_root(),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"wisata-serve exited with {self._process.returncode}:\n{self.log()}")
            try:
                self.request("GET", "/healthz")
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"wisata-serve did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise RuntimeError("the service process is not running")
        return self._process.pid

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; return the exit status."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                self.returncode = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                self.returncode = process.wait(timeout=10)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the server, then its training workers, as a crash of the container would."""
        process, self._process = self._process, None
        if process is None:
            return
        workers = descendants(process.pid)
        process.kill()
        self.returncode = process.wait(timeout=10)
        # Orphaned pool workers would wait for work forever: they die with the server here.
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the log has a line matching ``pattern``; return the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log(), re.MULTILINE)
            if found:
                return found
            time.sleep(0.02)
        pytest.fail(f"no log line matched {pattern!r} within {timeout} s:\n{self.log()}")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """Send one request (with ``token`` as the bearer token); return status and answer."""
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw, status = response.read(), response.status
                kind = response.headers.get_content_type()
        except urllib.error.HTTPError as e:
            raw, status, kind = e.read(), e.code, e.headers.get_content_type()
            e.close()
        return status, json.loads(raw) if kind == "application/json" else raw.decode()

    def json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> Any:
        """Like :meth:`request`, for a call that must succeed."""
        status, answer = self.request(method, path, body, headers, token=token)
        assert 200 <= status < 300, (path, status, answer)
        return answer

    def wait_job(
        self, job_id: str, timeout: float, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Poll a training job until it has ended; return it."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.json("GET", f"/api/ml/jobs/{job_id}", headers=headers)
            if job["status"] not in ("queued", "running"):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"training job {job_id} did not end within {timeout} s:\n{self.log()}")
            time.sleep(0.1)
