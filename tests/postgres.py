"""A real PostgreSQL server for tests: Debian's postgresql package, in a temporary folder.

:class:`PostgresServer` runs ``initdb`` and ``postgres`` from the installed package (``make
test`` installs it with ``tests/install_postgres.sh``) on a free port of 127.0.0.1, with its
data and socket in a temporary folder. PostgreSQL refuses to run as root, so when the tests run
as root the server runs as the package's ``postgres`` user (as ``runuser -u postgres`` would). A
test can stop it, or freeze it, and start it again on the same data and port, as an outage
would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psycopg

from tests.processes import stop_process
from tests.s3server import free_port

__all__ = ["PostgresServer", "postgres_binaries"]

USER = "wisata"
START_TIMEOUT = 60.0


def postgres_binaries() -> Path | None:
    """The folder of ``initdb`` and ``postgres`` from Debian's package, if installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _server_user() -> dict[str, object]:
    """Popen arguments running a command as the unprivileged ``postgres`` user, if root.

    The child switches user itself before it starts (what ``runuser -u postgres`` does), so the
    server is the very process signalled: no wrapper between them to forward signals.
    """
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class PostgresServer:
    """``postgres`` on a free port of 127.0.0.1, its cluster in a temporary folder."""

    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (tests/install_postgres.sh does it)")
        self.bin = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wisata-pg-"))
        self.data = self.root / "data"
        self._log: IO[bytes] = (self.root / "server.log").open("ab")
        self._process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                   "-E", "UTF8", "--no-sync"])  # fmt: skip

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
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; return its URL."""
        name = f"wisata_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        """Start the server (again, on the same data and port) and wait until it accepts."""
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                   "-k", str(self.root), "-c", "listen_addresses=127.0.0.1"]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **_server_user(),  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, nothing is lost)."""
        process, self._process = self._process, None
        stop_process(process, signal.SIGINT, timeout=30)

    def freeze(self) -> None:
        """Stop the server's processes where they are: connections hang, as a stuck server's do."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server go on."""
        self._signal_all(signal.SIGCONT)

    def log(self) -> str:
        """What the server wrote."""
        return (self.root / "server.log").read_text(errors="replace")

    def _signal_all(self, signum: signal.Signals) -> None:
        assert self._process is not None
        pids = [self._process.pid, *_children(self._process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _run(self, command: list[str]) -> None:
        subprocess.run(
            command,
            check=True,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            **_server_user(),  # type: ignore[call-overload]
        )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found
