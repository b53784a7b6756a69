"""The bounded cache of recent answers."""

from __future__ import annotations

import pytest

from service.web.cache import ResponseCache


def test_keeps_the_most_recently_used() -> None:
    cache = ResponseCache(2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # now "b" is the least recently used
    cache.put("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    assert len(cache) == 2


def test_a_new_answer_replaces_the_old_one() -> None:
    cache = ResponseCache(2)
    cache.put("a", b"1")
    cache.put("a", b"2")
    assert cache.get("a") == b"2" and len(cache) == 1


def test_size_zero_keeps_nothing() -> None:
    cache = ResponseCache(0)
    cache.put("a", b"1")
    assert cache.get("a") is None and len(cache) == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache size"):
        ResponseCache(-1)
