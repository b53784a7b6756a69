"""Plumbing shared by the ``wisata-*`` jobs: exit codes, configuration, logging, store, progress.

Every job reads the service's own configuration (:meth:`service.config.Config.from_env`) and
opens the artifact store the same way the service does. A bad variable ends the job with exit
status 2 and one ``error: ...`` line naming it; a storage failure or a :class:`JobError` with
status 1 and one line saying what to do; only an unexpected bug prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TextIO

from service.config import Config, ConfigError
from storage import ArtifactStore, StorageError, open_store

__all__ = [
    "ExitCode",
    "Interrupted",
    "JobError",
    "Progress",
    "StopFlag",
    "error",
    "open_config_store",
    "parse_args",
    "run_job",
    "setup_logging",
    "stop_on_signals",
]

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_BAR_WIDTH = 24


class ExitCode(enum.IntEnum):
    """The exit statuses every job uses (documented in the README)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    SKIPPED = 3
    REFUSED = 4


class JobError(Exception):
    """A job cannot go on; the message says why and what to do."""


class Interrupted(JobError):
    """The job was asked to stop (SIGTERM or SIGINT) before it finished."""


class StopFlag:
    """Set by a signal handler; read between the steps of a job, from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Ask the job to stop, saying why (e.g. ``"SIGTERM"``)."""
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parse ``argv``; return the exit status instead when argparse exits (usage error, --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else ExitCode.USAGE


def error(message: str) -> None:
    """Print one ``error: ...`` line on stderr."""
    print(f"error: {message}", file=sys.stderr, flush=True)


class _BarAwareHandler(logging.StreamHandler[TextIO]):
    """Logs to stderr, clearing a progress bar drawn there first and drawing it again after."""

    bar: Progress | None = None

    def emit(self, record: logging.LogRecord) -> None:
        bar = self.bar
        if bar is not None:
            bar.clear()
        super().emit(record)
        if bar is not None:
            bar.redraw()


_handler: _BarAwareHandler | None = None


def setup_logging(config: Config) -> None:
    """Log to stderr at ``WISATA_LOG_LEVEL``, unless logging was set up already (tests)."""
    global _handler
    root = logging.getLogger()
    if root.handlers:
        return
    _handler = _BarAwareHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(_handler)
    root.setLevel(config.log_level_number)


def open_config_store(
    config: Config, url: str | None = None, *, writable: bool = True
) -> ArtifactStore:
    """Return the store of ``config`` (or ``url``, same endpoint and region), not yet opened.

    Parameters
    ----------
    config : Config
        The jobs' configuration.
    url : str, optional
        Another store URL (a backup bucket, say); default ``WISATA_STORAGE``.
    writable : bool
        False for a read-only job: it never creates a bucket or changes its versioning.
    """
    settings = config.store_settings()
    if not writable:
        settings = dataclasses.replace(settings, create_bucket=False, versioning=False)
    return open_store(url or config.storage, settings)


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag, wake: asyncio.Event | None = None) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``stop`` (and ``wake``) while the block runs.

    Only the main thread can receive signals: elsewhere (a test calling ``main`` in a thread)
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def handle(signum: signal.Signals) -> None:
        logger.info("%s received: stopping after the current step", signum.name)
        stop.set(signum.name)
        if wake is not None:
            wake.set()

    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def run_job(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    job: Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]],
) -> int:
    """Parse ``argv``, read the configuration, run ``job`` and map failures to exit statuses.

    Returns
    -------
    int
        The job's own status, 2 for bad usage or configuration, 1 for a storage failure, a
        :class:`JobError` or an unexpected error.
    """
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        config = Config.from_env()
    except ConfigError as e:
        error(str(e))
        return ExitCode.USAGE
    setup_logging(config)
    try:
        return asyncio.run(job(config, args))
    except StorageError as e:
        error(f"storage: {e}")
    except JobError as e:
        error(str(e))
    except KeyboardInterrupt:
        error("interrupted")
    except Exception:
        logger.exception("%s failed unexpectedly; please report this with the log", parser.prog)
    return ExitCode.ERROR


class Progress:
    """The steps of a job: a bar on a terminal, one log line per step otherwise.

    Each :meth:`step` is also where a job stops early when asked (see :class:`StopFlag`).

    Parameters
    ----------
    total : int
        Number of steps.
    stop : StopFlag, optional
        Checked at each step: when set, :meth:`step` raises :class:`Interrupted`.
    stream : text stream, optional
        Where a bar is drawn (default stderr); a bar only when it is a terminal.
    log : Logger, optional
        Where the step lines go when there is no terminal (default this module's logger).
    """

    def __init__(
        self,
        total: int,
        *,
        stop: StopFlag | None = None,
        stream: TextIO | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.total = total
        self._log = log if log is not None else logger
        self.done = 0
        self.label = ""
        self._stop = stop
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._drawn = False
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        if self._tty and _handler is not None:
            _handler.bar = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def step(self, label: str) -> None:
        """Start the next step, called ``label``.

        Raises
        ------
        Interrupted
            If a stop was asked for; nothing after this step runs.
        """
        if self._stop is not None and self._stop.is_set():
            raise Interrupted(
                f"stopped by {self._stop.reason} before {label}; "
                f"{self.done} of {self.total} steps had run"
            )
        self.done = min(self.done + 1, self.total)
        self.label = label
        if self._tty:
            self.redraw()
        else:
            self._log.info("[%d/%d] %s", self.done, self.total, label)

    def redraw(self) -> None:
        """Draw the bar again (a terminal only)."""
        if not self._tty:
            return
        filled = round(_BAR_WIDTH * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        seconds = time.monotonic() - self._start
        self._stream.write(
            f"\r\x1b[K[{bar}] {self.done}/{self.total} {self.label} ({seconds:.0f} s)"
        )
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the bar's line so a log line can be written there (a terminal only)."""
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if _handler is not None and _handler.bar is self:
            _handler.bar = None
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
