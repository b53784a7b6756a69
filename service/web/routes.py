"""The URL table: every route with its handler, access policy and what the OpenAPI document says.

:func:`add_routes` registers :data:`ROUTES` and the dashboard on an application;
:mod:`service.web.openapi` builds the document from :data:`ROUTES` and :data:`PAGES`, so the two
cannot drift apart (a test compares the document with the router).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web

from service.web import views
from service.web.dashboard import add_dashboard_routes

__all__ = [
    "PAGES",
    "ROUTES",
    "PageSpec",
    "Parameter",
    "RouteSpec",
    "add_routes",
    "admin_route_names",
    "public_routes",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter, as OpenAPI describes it.

    ``allow_empty`` marks a query parameter whose empty value (``?limit=``) counts as absent.
    """

    name: str
    location: Literal["path", "query"]
    description: str
    schema: Mapping[str, Any]
    required: bool = False
    allow_empty: bool = False


@dataclass(frozen=True)
class RouteSpec:
    """One route.

    Attributes
    ----------
    admin : bool
        Needs the admin token (when one is configured).
    public : bool
        A read route browsers on the allowed origins may call (CORS).
    body : str or None
        Name of the request body's schema in the OpenAPI components.
    responses : mapping of int to (description, schema name or None)
        The statuses the route answers besides the errors every route shares.
    """

    method: str
    path: str
    name: str
    handler: Handler
    summary: str
    tag: str
    responses: Mapping[int, tuple[str, str | None]]
    admin: bool = False
    public: bool = False
    parameters: tuple[Parameter, ...] = ()
    body: str | None = None
    description: str = ""


@dataclass(frozen=True)
class PageSpec:
    """A route the dashboard module registers, described here for the OpenAPI document."""

    methods: tuple[str, ...]
    path: str
    name: str
    summary: str
    media: str
    parameters: tuple[Parameter, ...] = ()


_ALGORITHM = Parameter(
    "algorithm",
    "query",
    "Which model answers: content, collaborative or hybrid.",
    {"type": "string", "enum": list(views.ALGORITHMS), "default": views.DEFAULT_ALGORITHM},
    allow_empty=True,
)
_LIMIT = Parameter(
    "limit",
    "query",
    "How many items to return.",
    {"type": "integer", "minimum": 1, "maximum": views.MAX_LIMIT, "default": views.DEFAULT_LIMIT},
    allow_empty=True,
)
_LAMBDA = Parameter(
    "lambda",
    "query",
    "MMR trade-off of the hybrid, from 0 (diverse) to 1 (most relevant); other algorithms "
    "ignore it.",
    {"type": "number", "minimum": 0, "maximum": 1},
    allow_empty=True,
)
_MODEL = Parameter(
    "name",
    "path",
    "Model name: content_based, collaborative or hybrid.",
    {"type": "string", "enum": ["content_based", "collaborative", "hybrid"]},
    required=True,
)

ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        "GET", "/healthz", "healthz", views.healthz, "Liveness: the process answers.", "operations",
        {200: ("Alive.", "Health")}, public=True,
    ),
    RouteSpec(
        "GET", "/readyz", "readyz", views.readyz,
        "Readiness: 200 only while the three models are loaded.", "operations",
        {200: ("Every model is loaded.", "Ready"), 503: ("Some model is not loaded.", "NotReady")},
    ),
    RouteSpec(
        "GET", "/metrics", "metrics", views.metrics, "Prometheus metrics.", "operations",
        {200: ("Prometheus text exposition.", None)},
    ),
    RouteSpec(
        "GET", "/api/openapi.json", "openapi", views.openapi, "This document.", "operations",
        {200: ("The OpenAPI 3 document.", None)},
    ),
    RouteSpec(
        "GET", "/api/ml/status", "status", views.status,
        "Every model's state and stored artifact, the storage and the running job.", "models",
        {200: ("Status.", "Status")},
    ),
    RouteSpec(
        "POST", "/api/ml/train-all", "train_all", views.train_all,
        "Train the three models in the background (the hybrid last).", "models",
        {202: ("Job accepted.", "JobAccepted"), 409: ("A job is running.", "Error")},
        admin=True,
    ),
    RouteSpec(
        "POST", "/api/ml/train/{model}", "train_model", views.train_model,
        "Train one model in the background.", "models",
        {202: ("Job accepted.", "JobAccepted"), 404: ("Unknown model.", "Error"),
         409: ("A job is running.", "Error")},
        admin=True,
        parameters=(
            Parameter("model", "path", _MODEL.description, _MODEL.schema, required=True),
        ),
        description="Retraining content_based or collaborative alone leaves the hybrid stale "
        "until it is retrained.",
    ),
    RouteSpec(
        "GET", "/api/ml/jobs/{job_id}", "job", views.job, "A training job's progress.", "models",
        {200: ("The job.", "Job"), 404: ("Unknown job.", "Error")},
        parameters=(Parameter("job_id", "path", "Job id.", {"type": "string"}, required=True),),
    ),
    RouteSpec(
        "POST", "/api/ml/reload", "reload", views.reload,
        "Check the store for new artifact versions now and load them.", "models",
        {200: ("What was reloaded.", "ReloadResult"), 503: ("Storage unavailable.", "Error")},
        admin=True,
    ),
    RouteSpec(
        "GET", "/api/ml/models/{name}/versions", "versions", views.versions,
        "The stored versions of a model's artifact, newest first.", "models",
        {200: ("Versions.", "Versions"), 404: ("Unknown model.", "Error"),
         503: ("Storage unavailable.", "Error")},
        parameters=(_MODEL,),
    ),
    RouteSpec(
        "POST", "/api/ml/models/{name}/rollback", "rollback", views.rollback,
        "Make a stored version current again and serve it.", "models",
        {200: ("The model now serving.", "RollbackResult"),
         404: ("Unknown model or version.", "Error"),
         422: ("The version was restored but cannot be served.", "Error"),
         503: ("Storage unavailable.", "Error")},
        admin=True,
        parameters=(_MODEL,),
        body="RollbackRequest",
    ),
    RouteSpec(
        "GET", "/api/frontend/recommendations", "recommendations", views.recommendations,
        "Recommendations for a user (popular items for a user the model never saw).",
        "recommendations",
        {200: ("Recommendations.", "Recommendations"),
         503: ("The model is not trained.", "Error")},
        public=True,
        parameters=(
            Parameter(
                "user_id", "query", "The user.",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": views.MAX_ID_LENGTH,
                    "pattern": views.NOT_BLANK,
                },
                required=True,
            ),
            _ALGORITHM, _LIMIT, _LAMBDA,
        ),
    ),
    RouteSpec(
        "POST", "/api/recommendations", "recommend_for_ratings", views.recommend_for_ratings,
        "Recommendations for a visitor's ratings, without retraining.", "recommendations",
        {200: ("Recommendations.", "Recommendations"), 404: ("Unknown item.", "Error"),
         413: ("Body over 1 MiB.", "Error"), 503: ("The model is not trained.", "Error")},
        public=True,
        body="RatingsRequest",
    ),
    RouteSpec(
        "GET", "/api/items/{id}/similar", "similar_items", views.similar_items,
        "The items most similar to one item.", "recommendations",
        {200: ("Similar items.", "SimilarItems"), 404: ("Unknown item.", "Error"),
         503: ("The model is not trained.", "Error")},
        public=True,
        parameters=(
            Parameter("id", "path", "Item id.", {"type": "string"}, required=True),
            _ALGORITHM, _LIMIT,
        ),
    ),
)  # fmt: skip


#: The dashboard's routes (``add_get``: each answers HEAD too).
PAGES: Final[tuple[PageSpec, ...]] = (
    PageSpec(("GET", "HEAD"), "/", "dashboard", "The admin dashboard page.", "text/html"),
    PageSpec(
        ("GET", "HEAD"),
        "/static/{name}",
        "dashboard_static",
        "A file the dashboard page loads (stylesheet, script, image).",
        "*/*",
        (Parameter("name", "path", "File name.", {"type": "string"}, required=True),),
    ),
)


def add_routes(app: web.Application) -> None:
    """Register every route of :data:`ROUTES` (no implicit HEAD routes) and the dashboard."""
    for spec in ROUTES:
        app.router.add_route(spec.method, spec.path, spec.handler, name=spec.name)
    add_dashboard_routes(app)


def admin_route_names() -> frozenset[str]:
    """Names of the routes that need the admin token."""
    return frozenset(spec.name for spec in ROUTES if spec.admin)


def public_routes() -> frozenset[tuple[str, str]]:
    """``(method, path template)`` of the routes browsers on other origins may call."""
    return frozenset((spec.method, spec.path) for spec in ROUTES if spec.public)
