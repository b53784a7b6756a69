"""The admin dashboard: ``GET /`` and its static files under ``/static/``.

The dashboard is three plain files in ``service/web/static/`` (HTML, CSS, JavaScript; no build
step) that call the JSON API from the browser. Only the files present when the routes are added are
served, by name: no directory listing, no path below ``static/`` and nothing outside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["CACHE_CONTROL", "STATIC_DIR", "DashboardMissing", "add_dashboard_routes"]

STATIC_DIR: Final = Path(__file__).resolve().with_name("static")
"""Where the dashboard's files are installed (``service/web/static``)."""

CACHE_CONTROL: Final = "no-cache"
"""Browsers keep the files but revalidate them (ETag) on each load.

The URLs carry no content hash, so anything longer-lived would show a stale dashboard against a
newer API after an upgrade; an unchanged file still costs only a 304.
"""

_CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_INDEX: Final = "index.html"

# The page talks to its own origin only; scripts and styles come from files, never inline.
_PAGE_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class DashboardMissing(RuntimeError):
    """The dashboard's static files are not installed next to the service package."""


def add_dashboard_routes(app: web.Application, *, static_dir: Path = STATIC_DIR) -> None:
    """Serve the dashboard at ``GET /`` and its files at ``GET /static/<name>``.

    Parameters
    ----------
    app : web.Application
        The service's application; ``GET /`` must not be routed yet.
    static_dir : Path, optional
        The folder holding ``index.html`` and the files it loads.

    Raises
    ------
    DashboardMissing
        If ``static_dir`` holds no ``index.html``.
    """
    files = _servable(static_dir)
    index = files.get(_INDEX)
    if index is None:
        raise DashboardMissing(
            f"{static_dir / _INDEX} does not exist: the package was installed without its "
            "static files; reinstall it (setup.cfg package_data must list static/*)"
        )

    async def page(request: web.Request) -> web.StreamResponse:
        return _file(index, _PAGE_HEADERS)

    async def static(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return _file(found, {})

    app.router.add_get("/", page, name="dashboard")
    # {name} matches no "/", so only the top level of static_dir can ever be named.
    app.router.add_get("/static/{name}", static, name="dashboard_static")


def _servable(folder: Path) -> dict[str, Path]:
    """The regular files of ``folder`` with a known type, by name (read once, at startup)."""
    if not folder.is_dir():
        return {}
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if path.suffix in _CONTENT_TYPES and path.is_file() and not path.is_symlink()
    }


def _file(path: Path, extra: Mapping[str, str]) -> web.FileResponse:
    headers = {
        "Content-Type": _CONTENT_TYPES[path.suffix],
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        **extra,
    }
    return web.FileResponse(path, headers=headers)
