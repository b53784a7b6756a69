"""The jobs' building blocks: schedules, the scheduler loop, the progress display, the gate."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest

from jobs.cli import Interrupted, Progress, StopFlag
from jobs.retrain import NDCG, quality_gate
from jobs.schedule import Cron, Every, parse_cron, parse_every, run_forever
from service.artifacts import MetadataSummary

WEDNESDAY = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 43200),
        ("30m", 1800),
        ("45s", 45),
        ("1h30m", 5400),
        ("2w", 1209600),
    ],
)
def test_intervals(text: str, seconds: int) -> None:
    every = parse_every(text)
    assert every.interval == timedelta(seconds=seconds)
    assert every.next_after(WEDNESDAY) == WEDNESDAY + timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "1.5h", "-3h", "0s", "every 7d"])
def test_bad_intervals_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"7d|1s"):
        parse_every(text)


def test_cron_times_are_utc() -> None:
    sunday_3am = parse_cron("0 3 * * 0")
    assert sunday_3am.next_after(WEDNESDAY) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    # Strictly after: at the very time of a run, the next one is a week later.
    at_run = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert sunday_3am.next_after(at_run) == datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    # Another time zone's clock gives the same instant.
    jakarta = WEDNESDAY.astimezone(datetime.fromisoformat("2026-01-01T00:00+07:00").tzinfo)
    assert sunday_3am.next_after(jakarta) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert parse_cron("@daily").next_after(WEDNESDAY) == datetime(2026, 11, 26, tzinfo=UTC)


def test_cron_times_can_follow_a_time_zones_clock() -> None:
    # 03:00 in Jakarta (UTC+7, no daylight saving) is 20:00 UTC the day before.
    jakarta = parse_cron("0 3 * * *", "Asia/Jakarta")
    assert jakarta.next_after(WEDNESDAY) == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    assert "Asia/Jakarta" in jakarta.describe()
    # Across a daylight-saving change the local hour stays put and the UTC hour moves.
    amsterdam = parse_cron("0 12 * * *", "Europe/Amsterdam")
    winter = amsterdam.next_after(datetime(2026, 3, 28, 13, 0, tzinfo=UTC))
    assert winter == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)  # 12:00 CEST, the first summer day
    assert amsterdam.next_after(datetime(2026, 3, 27, 10, 0, tzinfo=UTC)) == datetime(
        2026, 3, 27, 11, 0, tzinfo=UTC
    )  # 12:00 CET


@pytest.mark.parametrize("zone", ["Nowhere/Land", "", "../etc/passwd"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="Asia/Jakarta"):
        parse_cron("0 3 * * *", zone)


@pytest.mark.parametrize("text", ["61 * * * *", "0 3 * *", "0 3 * * 0 2026", "sometimes", ""])
def test_bad_cron_expressions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="0 3 \\* \\* 0"):
        parse_cron(text)


async def test_the_loop_runs_on_schedule_survives_a_failed_run_and_stops() -> None:
    stop = asyncio.Event()
    runs: list[float] = []

    async def job() -> int:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) == 2:
            raise RuntimeError("a bad night")
        if len(runs) == 4:
            stop.set()
        return 0

    await asyncio.wait_for(
        run_forever(Every(timedelta(seconds=0.05), "0.05s"), job, stop, at_start=True), 5
    )

    assert len(runs) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    assert all(gap >= 0.04 for gap in gaps), gaps


async def test_a_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()
    ran = False

    async def job() -> int:
        nonlocal ran
        ran = True
        return 0

    loop = asyncio.get_running_loop()
    loop.call_later(0.05, stop.set)
    started = loop.time()
    await asyncio.wait_for(run_forever(Cron("0 3 * * 0"), job, stop), 5)

    assert loop.time() - started < 1
    assert not ran


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal() -> None:
    screen = Terminal()
    with Progress(4, stream=screen) as progress:
        progress.step("loading")
        progress.step("training")
    drawn = screen.getvalue()
    assert "\r\x1b[K[" + "#" * 6 + "-" * 18 + "] 1/4 loading" in drawn
    assert "\r\x1b[K[" + "#" * 12 + "-" * 12 + "] 2/4 training" in drawn
    assert drawn.endswith("\n")


def test_progress_logs_plain_lines_elsewhere(caplog: pytest.LogCaptureFixture) -> None:
    pipe = io.StringIO()
    with caplog.at_level(logging.INFO), Progress(2, stream=pipe) as progress:
        progress.step("loading")
        progress.step("training")
    assert pipe.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["[1/2] loading", "[2/2] training"]


def test_a_stop_request_ends_the_job_before_the_next_step() -> None:
    stop = StopFlag()
    with Progress(3, stop=stop, stream=io.StringIO()) as progress:
        progress.step("evaluating")
        stop.set("SIGTERM")
        with pytest.raises(Interrupted, match="stopped by SIGTERM before publishing"):
            progress.step("publishing")
    assert progress.done == 1


def _published(ndcg: float | None) -> MetadataSummary:
    return MetadataSummary(model="hybrid", metrics={} if ndcg is None else {NDCG: ndcg})


def test_the_gate_refuses_only_a_clear_drop_and_says_why() -> None:
    new = {"content_based": {NDCG: 0.50}, "hybrid": {NDCG: 0.40}}
    published = {"content_based": _published(0.52), "hybrid": _published(0.50)}

    reasons = quality_gate(new, published, 0.95)

    assert reasons == [
        "hybrid: holdout NDCG@10 0.4000 is below 0.95 x the published 0.5000 (= 0.4750)"
    ]
    assert quality_gate(new, published, 0.75) == []
    assert quality_gate(new, published, 0) == []


def test_the_gate_lets_through_what_it_cannot_compare() -> None:
    new = {"content_based": {NDCG: 0.1}, "collaborative": {NDCG: 0.1}}
    published = {"content_based": None, "collaborative": _published(None)}

    assert quality_gate(new, published, 0.95) == []
