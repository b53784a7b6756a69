"""``WISATA_WORKERS=N``: N serving processes on one port, kept running by this supervisor.

Each worker is ``python -m service`` started with ``WISATA_WORKER_ID`` and the group's folder
(``WISATA_WORKER_DIR``, see :mod:`service.serving.workers`); it listens with SO_REUSEPORT, and
the kernel spreads new connections among the workers. No request passes through here.

- A worker that dies (killed, out of memory) is replaced by a new one with the same number.
- A worker that exits with an error status within ``QUICK_EXIT`` seconds of its start (a port
  it cannot take, storage it cannot open) stops the group: the supervisor exits with its status
  rather than restart it in a loop.
- SIGTERM or SIGINT stops every worker (SIGTERM, then SIGKILL after ``GRACE`` seconds); the
  supervisor exits 0 once they are gone.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

__all__ = ["GRACE", "QUICK_EXIT", "supervise"]

logger = logging.getLogger("service")

QUICK_EXIT = 10.0
"""Seconds after its start within which a worker's error exit stops the group."""
GRACE = 30.0
"""Seconds the workers get to stop after SIGTERM before they are killed."""
_POLL = 0.2


def supervise(count: int, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``count`` workers of ``wisata-serve argv`` until SIGTERM/SIGINT; return the status."""
    folder = Path(tempfile.mkdtemp(prefix="wisata-workers-"))
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def spawn(worker: int) -> tuple[subprocess.Popen[bytes], float]:
        env = {
            **environ,
            "WISATA_WORKERS": "1",
            "WISATA_WORKER_ID": str(worker),
            "WISATA_WORKER_DIR": str(folder),
        }
        child = subprocess.Popen([sys.executable, "-m", "service", *argv], env=env)
        logger.info("worker %d started (pid %d)", worker, child.pid)
        return child, time.monotonic()

    workers = {worker: spawn(worker) for worker in range(count)}
    status = 0
    try:
        while not stopping:
            time.sleep(_POLL)
            for worker, (child, started) in list(workers.items()):
                code = child.poll()
                if code is None or stopping:
                    continue
                if code > 0 and time.monotonic() - started < QUICK_EXIT:
                    logger.error(
                        "worker %d exited with status %d right after it started; stopping "
                        "the others (see its error above)",
                        worker,
                        code,
                    )
                    status, stopping = code, True
                    break
                logger.warning(
                    "worker %d (pid %d) exited with status %d; starting a new one",
                    worker,
                    child.pid,
                    code,
                )
                workers[worker] = spawn(worker)
    finally:
        _stop_all([child for child, _ in workers.values()])
        shutil.rmtree(folder, ignore_errors=True)
    return status


def _stop_all(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("worker pid %d did not stop within %g s: killing it", child.pid, GRACE)
            child.kill()
            child.wait()
