"""Middlewares: request metrics, CORS for the public routes, JSON errors, admin authentication.

Applied outermost first: metrics (sees every final status), CORS (adds its headers to error
responses too, so a browser can read them), errors (turns every exception into JSON), auth
(refuses before a handler reads the body).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from service.errors import TrainingInProgress, UnknownJob, UnknownVersion, WisataError
from service.web.keys import ROUTE_LABEL
from service.web.responses import ERROR_BODY, ErrorBody, to_json
from service.web.telemetry import Metrics
from storage import NotFound, StorageError

__all__ = [
    "Access",
    "auth_middleware",
    "cors_middleware",
    "error_middleware",
    "error_response",
    "metrics_middleware",
]

logger = logging.getLogger(__name__)

UNMATCHED: Final = "unmatched"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CODES: Final[Mapping[int, str]] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}
#: Errors of the layers below that do not carry a status of their own: (status, code).
_FOREIGN: Final[Mapping[type[Exception], tuple[int, str]]] = {
    NotFound: (404, "not_found"),
    StorageError: (503, "storage_unavailable"),
    ValueError: (400, "bad_request"),
}
#: What to do next, in the API's words, added to a domain message at the edge.
_HINTS: Final[Mapping[type[WisataError], Callable[[Any], str]]] = {
    TrainingInProgress: lambda e: f"follow it at GET {_job_link(e.job_id)}",
    UnknownJob: lambda e: "start one with POST /api/ml/train-all",
    UnknownVersion: lambda e: f"list the kept ones with GET /api/ml/models/{e.name}/versions",
}
_PREFLIGHT_MAX_AGE = "600"
_RETRY_AFTER = "5"


def error_response(
    status: int,
    error: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A JSON error ``{error, message, ...extra}`` with ``status``."""
    body = cast(ErrorBody, {"error": error, "message": message, **extra})
    return web.Response(
        body=to_json(ERROR_BODY, body),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def route_label(request: web.Request) -> str:
    """The route's path template (``/api/items/{id}/similar``), never the raw URL."""
    label: str | None = request.get(ROUTE_LABEL)
    if label is not None:
        return label
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


# --- metrics ------------------------------------------------------------------------------------


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Count every request and its latency by method, route template and status."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            method = request.method if request.method in _METHODS else "other"
            metrics.observe_request(
                method, route_label(request), status, time.perf_counter() - start
            )

    return middleware


# --- CORS ---------------------------------------------------------------------------------------


def cors_middleware(origins: Iterable[str], public: Iterable[tuple[str, str]]) -> Middleware:
    """Let browsers on ``origins`` call the ``public`` ``(method, path template)`` routes.

    Answers preflights (``OPTIONS`` with ``Access-Control-Request-Method``) itself. ``*`` in
    ``origins`` allows any origin. Other routes never get CORS headers.
    """
    allowed = frozenset(origins)
    any_origin = "*" in allowed
    routes = frozenset(public)

    def origin_ok(origin: str) -> bool:
        return any_origin or origin in allowed

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return await _preflight(request, origin, origin_ok(origin), routes)
        response = await handler(request)
        response.headers.add("Vary", "Origin")
        if origin_ok(origin) and (request.method, route_label(request)) in routes:
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    return middleware


async def _preflight(
    request: web.Request, origin: str, origin_ok: bool, routes: frozenset[tuple[str, str]]
) -> web.Response:
    wanted = request.headers["Access-Control-Request-Method"].strip().upper()
    path = await _path_template(request)
    if path is None:
        return error_response(404, "not_found", f"no route at {request.path}")
    request[ROUTE_LABEL] = path
    headers = {"Vary": "Origin"}
    if not origin_ok:
        return error_response(
            403,
            "cors_origin_not_allowed",
            f"origin {origin[:100]!r} may not call this service from a browser; the operator "
            "lists allowed origins in WISATA_CORS_ORIGINS",
            headers=headers,
        )
    methods = sorted(method for method, template in routes if template == path)
    if wanted not in methods:
        return error_response(
            403,
            "cors_not_allowed",
            f"cross-origin {wanted[:20]} {path} is not allowed: only the public read routes "
            "accept browser calls from other origins",
            headers=headers,
        )
    headers.update(
        {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        }
    )
    return web.Response(status=204, headers=headers)


async def _path_template(request: web.Request) -> str | None:
    # The router gives a preflight a 405 match without the resource, so find it here.
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is not None or methods:
            return resource.canonical
    return None


# --- errors -------------------------------------------------------------------------------------


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception a handler raises into a JSON error response."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error(request, e)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        return _domain_error(request, e)


def _domain_error(request: web.Request, e: Exception) -> web.Response:
    """The JSON answer to an exception: a lookup of its status and code, not a chain of cases."""
    if isinstance(e, WisataError):
        hint = _HINTS.get(type(e))
        message = f"{e}; {hint(e)}" if hint is not None else str(e)
        extra = {**e.details(), **_links(e)}
        return error_response(e.status, e.code, message, **extra)
    for kind in type(e).__mro__:
        if kind in _FOREIGN:
            status, code = _FOREIGN[kind]
            if status == 503:
                logger.warning("%s %s: storage error: %s", request.method, request.path, e)
                return error_response(
                    status,
                    code,
                    f"the artifact store failed: {e}",
                    headers={"Retry-After": _RETRY_AFTER},
                )
            return error_response(status, code, str(e))
    logger.exception("unexpected error answering %s %s", request.method, request.path)
    return error_response(
        500,
        "internal_error",
        f"unexpected {type(e).__name__} while answering {request.method} {request.path}; "
        "the server log has the details",
    )


def _links(e: WisataError) -> dict[str, Any]:
    if isinstance(e, TrainingInProgress):
        return {"links": {"job": _job_link(e.job_id)}}
    return {}


def _job_link(job_id: str) -> str:
    return f"/api/ml/jobs/{job_id}"


def _http_error(request: web.Request, e: web.HTTPException) -> web.Response:
    code = _STATUS_CODES.get(e.status, f"http_{e.status}")
    headers = {
        name: value
        for name, value in e.headers.items()
        if name.lower() not in ("content-type", "content-length")
    }
    extra: dict[str, Any] = {}
    if isinstance(e, web.HTTPMethodNotAllowed):
        extra["allowed"] = sorted(e.allowed_methods)
        message = (
            f"{request.method[:20]} is not allowed on {request.path}; "
            f"use {', '.join(extra['allowed'])}"
        )
    elif e.status == 404:
        message = f"no route at {request.path}; GET /api/openapi.json lists the routes"
    elif isinstance(e, web.HTTPRequestEntityTooLarge):
        message = (
            f"the request body is larger than {request.client_max_size} bytes; send a smaller body"
        )
    else:
        message = e.text or e.reason
    return error_response(e.status, code, message, headers=headers, **extra)


# --- admin authentication -----------------------------------------------------------------------


def auth_middleware(rules: Mapping[str, Access]) -> Middleware:
    """Require ``Authorization: Bearer <token>`` on the routes named in ``rules``.

    Each rule lists the tokens its routes accept; a rule without tokens leaves its routes open
    (the configuration allows that only on loopback).
    """
    accepted = {name: rule for name, rule in rules.items() if rule.tokens}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rule = accepted.get(request.match_info.route.name or "")
        if rule is None:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        presented = given.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() == "bearer" and any(
            hmac.compare_digest(presented, token) for token in rule.tokens
        ):
            return await handler(request)
        return error_response(
            401,
            "unauthorized",
            f"this route needs the {rule.needs}: send 'Authorization: Bearer <{rule.variable}>'",
            headers={"WWW-Authenticate": f'Bearer realm="{rule.realm}"'},
        )

    return middleware


@dataclass(frozen=True)
class Access:
    """Who may call a group of routes: the tokens they accept, and how to say it."""

    tokens: tuple[bytes, ...]
    needs: str
    variable: str
    realm: str

    @classmethod
    def admin(cls, admin_token: str | None) -> Access:
        """The admin routes: the admin token."""
        tokens = () if admin_token is None else (admin_token.encode("ascii"),)
        return cls(tokens, "admin token", "WISATA_ADMIN_TOKEN", "wisata-admin")

    @classmethod
    def feedback(cls, feedback_token: str | None, admin_token: str | None) -> Access:
        """The feedback routes: the feedback token or the admin token."""
        tokens = tuple(t.encode("ascii") for t in (feedback_token, admin_token) if t is not None)
        return cls(tokens, "feedback token", "WISATA_FEEDBACK_TOKEN", "wisata-feedback")
