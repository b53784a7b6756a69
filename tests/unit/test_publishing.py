"""The publish journal: what it holds back, and that only a well-formed journal is trusted."""

from __future__ import annotations

import json

import pytest

from service.serving.journal import Journal, JournalError, Planned, Replaced

NAMES = ("content_based", "collaborative", "hybrid")


def journal(earlier: tuple[str, ...] = ()) -> Journal:
    return Journal.start(
        {
            "content_based": Planned(Replaced("v1", "e1", "s1"), "n1"),
            "collaborative": Planned(Replaced(None, "e2", None), "n2"),
            "hybrid": Planned(None, "n3"),
        },
        earlier,
    )


def test_a_journal_reads_back_as_written() -> None:
    written = journal(("older-set",))

    read = Journal.from_bytes(written.to_bytes())

    assert read == written


@pytest.mark.parametrize(
    ("placed", "held"),
    [
        ((), set()),
        (("content_based",), {"content_based"}),
        (("content_based", "collaborative"), {"content_based", "collaborative"}),
        (NAMES, set()),  # complete: the new set is served whole
    ],
)
def test_the_announced_artifacts_are_held_back_until_all_are_in(
    placed: tuple[str, ...], held: set[str]
) -> None:
    running = journal()
    current = {name: running.set_id if name in placed else None for name in NAMES}

    assert set(running.held_back(current)) == held


def test_artifacts_of_a_publish_taken_over_stay_held_back() -> None:
    running = journal(("killed-set",))
    current = {"content_based": running.set_id, "collaborative": "killed-set", "hybrid": None}

    assert set(running.held_back(current)) == {"content_based", "collaborative"}
    assert running.held_back(dict.fromkeys(NAMES, running.set_id)) == {}


def test_an_object_from_elsewhere_is_not_held_back() -> None:
    running = journal()
    current = {"content_based": running.set_id, "collaborative": "another-set", "hybrid": None}

    assert set(running.held_back(current)) == {"content_based"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{not json",
        b"[]",
        json.dumps({"format": 2}).encode(),
        json.dumps({"format": 1, "set_id": "", "started_at": "2026-11-27", "models": {}}).encode(),
        json.dumps({"format": 1, "set_id": "x", "started_at": "yesterday", "models": {}}).encode(),
        json.dumps(
            {
                "format": 1,
                "set_id": "x",
                "started_at": "2026-11-27T00:00:00+00:00",
                "models": {"hybrid": {"sha256": "n", "previous": {"version_id": "v"}}},
            }
        ).encode(),
    ],
)
def test_a_malformed_journal_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(JournalError) as refused:
        Journal.from_bytes(data)

    assert str(refused.value)
