"""Stopping the servers the tests start (dockerd, moto_server, PostgreSQL) by their PID."""

from __future__ import annotations

import contextlib
import signal
import subprocess


def stop_process(
    process: subprocess.Popen[bytes] | None,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 10.0,
    kill_timeout: float = 30.0,
) -> None:
    """Send ``sig`` to a running ``process`` and wait ``timeout`` s for it, then SIGKILL it."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_timeout)
