"""When a job runs again: ``--every`` intervals, ``--cron`` expressions, and the loop that waits.

A scheduled job is one process that stays up (the job container's main process, so no system
cron is needed): it waits for the next time, runs the job, and waits again, until SIGTERM or
SIGINT. Cron expressions are parsed and iterated by croniter and read in UTC, or in the IANA
time zone given (``--timezone Asia/Jakarta``), never in the container's local time zone.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = [
    "Cron",
    "Every",
    "Schedule",
    "check_zone",
    "parse_cron",
    "parse_every",
    "run_forever",
]

logger = logging.getLogger(__name__)

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_INTERVAL_RE = re.compile(r"(?:\d+[wdhms])+")
_PART_RE = re.compile(r"(\d+)([wdhms])")
_CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})
# Long waits are cut into slices so a wall clock that jumps (a suspended host, NTP) is
# noticed within this many seconds rather than after a week.
_MAX_SLEEP = 300.0


@dataclass(frozen=True)
class Every:
    """Run at a fixed interval, counted from the start of the previous run.

    Attributes
    ----------
    interval : timedelta
        Time between two starts.
    text : str
        The interval as given, e.g. ``"7d"``.
    """

    interval: timedelta
    text: str

    def next_after(self, moment: datetime) -> datetime:
        """Return the first run time after ``moment`` (an aware datetime)."""
        return moment + self.interval

    def describe(self) -> str:
        """Say when the job runs, for log lines."""
        return f"every {self.text}"


@dataclass(frozen=True)
class Cron:
    """Run at the times a five-field cron expression matches, on the clock of ``zone``.

    Attributes
    ----------
    expression : str
        E.g. ``"0 3 * * 0"`` (Sundays at 03:00) or an alias such as ``"@daily"``.
    zone : str
        IANA time zone the expression is read in, e.g. ``"Asia/Jakarta"``; ``"UTC"`` by default.
        Where the zone has daylight saving time, croniter decides the skipped and repeated hours.
    """

    expression: str
    zone: str = "UTC"

    def next_after(self, moment: datetime) -> datetime:
        """Return the first matching time strictly after ``moment`` (an aware datetime), in UTC."""
        local = moment.astimezone(ZoneInfo(self.zone))
        found: datetime = croniter(self.expression, local).get_next(datetime)
        return found.astimezone(UTC)

    def describe(self) -> str:
        """Say when the job runs, for log lines."""
        return f"on cron {self.expression!r} ({self.zone})"


Schedule = Every | Cron
"""Either kind of schedule."""


def parse_every(text: str) -> Every:
    """Read an interval such as ``7d``, ``12h``, ``30m``, ``90s`` or ``1h30m``.

    Raises
    ------
    ValueError
        If the text is not one or more ``<number><unit>`` parts (units w, d, h, m, s) adding up
        to at least one second.
    """
    compact = text.strip().lower().replace(" ", "")
    if not _INTERVAL_RE.fullmatch(compact):
        raise ValueError(
            f"interval {text!r} is not valid; use a number and a unit (w, d, h, m or s), "
            "e.g. 7d, 12h, 30m or 1h30m"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART_RE.findall(compact))
    if seconds < 1:
        raise ValueError(f"interval {text!r} is zero; use at least 1s, e.g. 7d")
    return Every(timedelta(seconds=seconds), compact)


def parse_cron(text: str, zone: str = "UTC") -> Cron:
    """Check a cron expression: five fields (minute hour day month weekday) or an ``@`` alias.

    Raises
    ------
    ValueError
        If croniter cannot read it, it has another number of fields, or ``zone`` is not a
        known IANA time zone.
    """
    check_zone(zone)
    expression = " ".join(text.split())
    is_alias = expression.lower() in _CRON_ALIASES
    if not is_alias and len(expression.split(" ")) != 5:
        raise ValueError(
            f"cron expression {text!r} must have five fields (minute hour day-of-month month "
            "day-of-week), e.g. '0 3 * * 0' for Sundays at 03:00 UTC"
        )
    if not croniter.is_valid(expression):
        raise ValueError(
            f"cron expression {text!r} is not valid; e.g. '0 3 * * 0' for Sundays at 03:00 UTC "
            "or '30 2 * * *' for every day at 02:30 UTC"
        )
    return Cron(expression, zone)


def check_zone(zone: str) -> str:
    """Return ``zone`` if it names an IANA time zone; raise ValueError saying what to use."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {zone!r} is not known; use an IANA name such as Asia/Jakarta, "
            "Asia/Makassar or UTC"
        ) from None
    return zone


async def run_forever(
    schedule: Schedule,
    job: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    *,
    at_start: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Run ``job`` at every time of ``schedule`` until ``stop`` is set.

    A run that fails is logged and the schedule goes on: a scheduler that exits on one bad
    night would need someone to restart it. A run is never cut short by ``stop``; the job
    itself decides where it can stop early (see :class:`jobs.cli.Progress`).

    Parameters
    ----------
    schedule : Every or Cron
        When to run.
    job : callable
        Coroutine function returning the run's exit code (logged).
    stop : asyncio.Event
        Set (by a signal handler) to end the loop; a wait ends at once.
    at_start : bool
        Run once immediately before following the schedule.
    clock : callable
        The current aware time (a parameter so tests can move time).
    """
    due = clock() if at_start else schedule.next_after(clock())
    logger.info("scheduled %s; next run at %s", schedule.describe(), _stamp(due))
    while not stop.is_set():
        if not await _wait_until(due, stop, clock):
            break
        started = clock()
        try:
            code = await job()
        except Exception:
            logger.exception("the scheduled run failed; the schedule goes on")
        else:
            logger.info("the scheduled run ended with exit code %d", code)
        # An interval counts from the start of the run; a cron time must still be ahead.
        due = schedule.next_after(started if isinstance(schedule, Every) else clock())
        if due <= clock():
            # The run took longer than the interval: start the next one now, not a backlog.
            due = clock()
        if not stop.is_set():
            logger.info("next run at %s", _stamp(due))
    logger.info("scheduler stopped")


async def _wait_until(due: datetime, stop: asyncio.Event, clock: Callable[[], datetime]) -> bool:
    """Wait until ``due``; False if ``stop`` was set first."""
    while (remaining := (due - clock()).total_seconds()) > 0:
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(remaining, _MAX_SLEEP))
        except TimeoutError:
            continue
        return False
    return not stop.is_set()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
