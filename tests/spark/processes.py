"""``wisata-retrain`` run as its own process, as a scheduler or a container runs it."""

from __future__ import annotations

import subprocess
import sys

from tests.s3server import repo_root


def job_process(
    env: dict[str, str], *argv: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``wisata-retrain argv`` with ``env`` as its whole environment; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.retrain", *argv],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
