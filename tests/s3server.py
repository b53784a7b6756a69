"""Real S3 servers for tests: moto in a thread, moto_server as a process, and a cuttable proxy.

- :class:`ThreadedS3Server`: moto's ``ThreadedMotoServer`` on 127.0.0.1 and a free port, for
  the session-wide server most tests share.
- :class:`S3ServerProcess`: ``moto_server`` as a separate process that a test can kill, freeze
  or stop while a client is using it.
- :class:`CuttableProxy`: a TCP proxy in the test's event loop between a client and a server;
  cutting it looks to the client exactly like a dead server while the server (and what it
  stores) stays there for the test to inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import aioboto3
from moto.server import ThreadedMotoServer

from tests.processes import stop_process

__all__ = [
    "CuttableProxy",
    "S3ServerProcess",
    "ThreadedS3Server",
    "fake_aws_environment",
    "free_port",
    "raw_keys",
    "repo_root",
]

_RUNNING_RE = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


def fake_aws_environment() -> dict[str, str]:
    """Environment variables giving boto fake credentials and no access to real AWS."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _reset(endpoint: str) -> None:
    # Disposes every stored object (moto warns about objects garbage-collected undisposed).
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10):
        pass


class ThreadedS3Server:
    """moto's S3 server in a daemon thread of this process, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        """Start the server and return its endpoint URL."""
        # One INFO line per request would drown the captured logs of a failing test.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        """Forget every bucket and stop the server."""
        _reset(self.endpoint)
        self._server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class S3ServerProcess:
    """``moto_server`` running as a child process on a free port of 127.0.0.1.

    Its state lives in that process: killing it loses every bucket.
    """

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.endpoint = ""

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise RuntimeError("the moto_server process is not running; call start() first")
        return self._process.pid

    def start(self) -> str:
        """Start ``moto_server -p 0`` and return its endpoint once it listens."""
        # The server logs a line per request: a file, unlike a pipe, never fills up and blocks it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            self._log.seek(0)
            found = _RUNNING_RE.search(self._log.read().decode("utf-8", "replace"))
            if found:
                self.endpoint = found.group(1)
                return self.endpoint
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        output = self.output()
        self.stop()
        raise RuntimeError(f"moto_server did not start within {self._start_timeout} s:\n{output}")

    def output(self) -> str:
        """What the server wrote to stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def freeze(self) -> None:
        """Stop the server's process (SIGSTOP): it keeps its port but answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and release its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
            stop_process(process, signal.SIGTERM, timeout=10, kill_timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``; ``cut()`` drops it like a dead server.

    Runs in the event loop of the test that starts it. After ``cut()`` every open connection
    is reset and new connections are refused.
    """

    def __init__(self, upstream: str, *, cut_after_bytes: int | None = None) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self._cut_after = cut_after_bytes
        self._sent = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.endpoint = ""
        self.was_cut = False

    async def start(self) -> str:
        """Listen on a free port and return the proxy's endpoint URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self.was_cut = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        """Cut, and wait until every connection task is done."""
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.was_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        upload = asyncio.create_task(self._pipe(reader, up_writer, count=True))
        download = asyncio.create_task(self._pipe(up_reader, writer, count=False))
        self._tasks.update((upload, download))
        try:
            await asyncio.gather(upload, download, return_exceptions=True)
        finally:
            self._tasks.difference_update((upload, download))
            for end in (writer, up_writer):
                self._writers.discard(end)
                end.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        try:
            while chunk := await reader.read(64 * 1024):
                if count and self._cut_after is not None:
                    self._sent += len(chunk)
                    if self._sent > self._cut_after:
                        self.cut()
                        return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def raw_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every stored key under ``prefix``, one entry per version and delete marker.

    Looks past the store's API, to check what it leaves behind in the bucket.
    """
    session = aioboto3.Session()
    found: list[str] = []
    async with session.client("s3", endpoint_url=endpoint) as client:
        paginator = client.get_paginator("list_object_versions")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend(v["Key"] for v in page.get("Versions", []))
            found.extend(m["Key"] for m in page.get("DeleteMarkers", []))
    return sorted(found)


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def repo_root() -> Path:
    """The repository's top folder, for running project modules in subprocesses."""
    return Path(__file__).resolve().parent.parent
