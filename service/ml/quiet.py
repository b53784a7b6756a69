"""Warnings the ML code ignores on purpose, ignored safely from several threads at once.

``warnings.catch_warnings`` saves the process-wide filters on entry and puts them back on exit,
so two threads inside it at once undo each other's filters (the hybrid's weight search fits its
folds on threads). :func:`ignoring` counts the threads inside instead: the first one in saves
the filters, each adds its categories, and the last one out puts the saved filters back.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

__all__ = ["ignoring"]

_lock = threading.Lock()
_inside = 0
_saved: warnings.catch_warnings[None] | None = None


@contextlib.contextmanager
def ignoring(*categories: type[Warning]) -> Iterator[None]:
    """Ignore warnings of ``categories`` until this block and every other one open ends."""
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = warnings.catch_warnings()
            _saved.__enter__()
        for category in categories:
            warnings.simplefilter("ignore", category)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved is not None:
                _saved.__exit__(None, None, None)
                _saved = None
