"""The worker group as the web layer sees it: what this worker tells the others it serves."""

from __future__ import annotations

from aiohttp import web

from service.ml.recommenders import MODEL_NAMES
from service.web.keys import GROUP, REGISTRY

__all__ = ["announce"]


def announce(app: web.Application) -> None:
    """Record the model versions this worker answers with (when it is one of a group)."""
    group = app.get(GROUP)
    if group is None:
        return
    registry = app[REGISTRY]
    served = {
        name: registry.version(name) if registry.served(name).model is not None else None
        for name in MODEL_NAMES
    }
    group.announce(served)
