"""A bounded cache of recent answers, so repeated queries skip the model.

An answer depends only on the route, the parameters and the exact model that computed it, so
the model's version (its payload checksum) is part of every key: swapping a model in makes the
old entries unreachable, and they age out. Nothing is ever invalidated by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["ResponseCache"]


class ResponseCache:
    """The ``size`` most recently used answers (encoded bodies), by key; ``size`` 0 keeps none.

    Used from the event loop only, so it needs no lock.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"cache size must be 0 or more, got {size}")
        self.size = size
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> bytes | None:
        """The answer stored under ``key`` (now the most recently used), or None."""
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        """Store ``body`` under ``key``, dropping the least recently used beyond ``size``."""
        if self.size == 0:
            return
        self._entries[key] = body
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
