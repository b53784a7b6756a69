"""The training pool stops a running fit at shutdown and leaves nothing of itself behind.

At interpreter exit, CPython wakes every process pool's manager thread still registered; one
that is closing its wake-up pipe at that moment makes the exit print an ``OSError`` (EBADF).
So once :func:`stop_executor` returns, the worker must be gone and so must the pool's threads.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool

import pytest

from service.serving.trainer import make_executor, stop_executor


def test_stopping_the_pool_during_a_fit_ends_its_worker_and_its_threads() -> None:
    before = set(threading.enumerate())
    executor = make_executor(1)
    running = executor.submit(time.sleep, 60)  # a "fit" that would outlast the test
    deadline = time.monotonic() + 60
    while not running.running():
        assert time.monotonic() < deadline, "the worker never took the job"
        time.sleep(0.05)
    workers = list(executor._processes.values())

    started = time.monotonic()
    stop_executor(executor, grace=5.0)

    assert time.monotonic() - started < 10  # stopped, not waited for
    assert workers and not any(worker.is_alive() for worker in workers)
    assert set(threading.enumerate()) <= before, "a pool thread outlived stop_executor"
    with pytest.raises((BrokenProcessPool, CancelledError)):
        running.result(timeout=5)


def test_stopping_an_idle_pool_leaves_no_pool_thread_behind() -> None:
    before = set(threading.enumerate())
    executor = make_executor(1)
    assert executor.submit(int, "7").result(timeout=60) == 7

    stop_executor(executor)

    assert set(threading.enumerate()) <= before
