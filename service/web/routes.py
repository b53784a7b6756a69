"""The URL table: every route with its handler, access policy, inputs and answers.

:func:`add_routes` registers :data:`ROUTES` and the dashboard on an application;
:mod:`service.web.openapi` generates the document from :data:`ROUTES`, :data:`PAGES` and the
types they name (the query and body models that validate the requests, the types that write the
answers), so neither the routes nor the schemas can drift from it (a test compares the document
with the router).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel

from service.serving.trainer import JobReport
from service.web import ratings, views
from service.web.dashboard import add_dashboard_routes
from service.web.responses import (
    ErrorBody,
    Health,
    JobAccepted,
    NotReady,
    RatingsStored,
    Ready,
    Recommendations,
    ReloadResult,
    RollbackNotServed,
    RollbackResult,
    SimilarItems,
    Status,
    UserRatings,
    Versions,
)
from service.web.schemas import (
    CLIENT_MAX_SIZE,
    FeedbackRequest,
    ModelName,
    RatingsRequest,
    RecommendationsQuery,
    RollbackRequest,
    SimilarQuery,
)

__all__ = [
    "PAGES",
    "ROUTES",
    "PageSpec",
    "PathParameter",
    "RouteSpec",
    "add_routes",
    "admin_route_names",
    "feedback_route_names",
    "public_routes",
    "served_routes",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answers = Mapping[int, tuple[str, Any]]
"""Status -> (description, the answer's type in :mod:`service.web.responses` or None)."""


@dataclass(frozen=True)
class PathParameter:
    """A parameter in the path; ``type`` (an annotation) is what the document says it holds.

    The handlers do not validate path parameters: they hand them to the domain, which answers
    an unknown model, job or item with a 404 naming it.
    """

    name: str
    description: str
    type: Any = str


@dataclass(frozen=True)
class RouteSpec:
    """One route.

    Attributes
    ----------
    admin : bool
        Needs the admin token (when one is configured).
    feedback : bool
        Needs the feedback token or the admin token (when one of them is configured).
    database : bool
        Exists only when the ratings live in a database (``WISATA_DATA`` is a database URL).
    public : bool
        A read route browsers on the allowed origins may call (CORS).
    query : pydantic model or None
        The model that validates the query string; its fields are the query parameters.
    body : pydantic model or None
        The model that validates the JSON request body.
    responses : mapping of int to (description, type or None)
        The statuses the route answers besides the errors every route shares, with the type
        in :mod:`service.web.responses` that writes each answer (None: no schema, see
        ``media``).
    media : str
        The media type of an answer without a type.
    """

    method: str
    path: str
    name: str
    handler: Handler
    summary: str
    tag: str
    responses: Answers
    admin: bool = False
    feedback: bool = False
    database: bool = False
    public: bool = False
    path_parameters: tuple[PathParameter, ...] = ()
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    description: str = ""
    media: str = "application/json"


@dataclass(frozen=True)
class PageSpec:
    """A route the dashboard module registers, described here for the OpenAPI document."""

    methods: tuple[str, ...]
    path: str
    name: str
    summary: str
    media: str
    path_parameters: tuple[PathParameter, ...] = ()


_MODEL = PathParameter("name", "The model.", ModelName)
_NOT_TRAINED = ("The model is not trained.", ErrorBody)
_UNKNOWN_MODEL = ("Unknown model.", ErrorBody)
_BUSY = ("A job is running.", ErrorBody)
_STORAGE_DOWN = ("Storage unavailable.", ErrorBody)

ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        "GET", "/healthz", "healthz", views.healthz, "Liveness: the process answers.", "operations",
        {200: ("Alive.", Health)}, public=True,
    ),
    RouteSpec(
        "GET", "/readyz", "readyz", views.readyz,
        "Readiness: 200 only while the three models are loaded.", "operations",
        {200: ("Every model is loaded.", Ready), 503: ("Some model is not loaded.", NotReady)},
    ),
    RouteSpec(
        "GET", "/metrics", "metrics", views.metrics, "Prometheus metrics.", "operations",
        {200: ("Prometheus text exposition.", None)}, media="text/plain",
    ),
    RouteSpec(
        "GET", "/api/openapi.json", "openapi", views.openapi, "This document.", "operations",
        {200: ("The OpenAPI document.", None)},
    ),
    RouteSpec(
        "GET", "/api/ml/status", "status", views.status,
        "Every model's state and stored artifact, the storage and the running job.", "models",
        {200: ("Status.", Status)},
    ),
    RouteSpec(
        "POST", "/api/ml/train-all", "train_all", views.train_all,
        "Train the three models in the background (the hybrid last).", "models",
        {202: ("Job accepted.", JobAccepted), 409: _BUSY},
        admin=True,
    ),
    RouteSpec(
        "POST", "/api/ml/train/{model}", "train_model", views.train_model,
        "Train one model in the background.", "models",
        {202: ("Job accepted.", JobAccepted), 404: _UNKNOWN_MODEL, 409: _BUSY},
        admin=True,
        path_parameters=(PathParameter("model", _MODEL.description, _MODEL.type),),
        description="Retraining content_based or collaborative alone leaves the hybrid stale "
        "until it is retrained.",
    ),
    RouteSpec(
        "GET", "/api/ml/jobs/{job_id}", "job", views.job, "A training job's progress.", "models",
        {200: ("The job.", JobReport), 404: ("Unknown job.", ErrorBody)},
        path_parameters=(PathParameter("job_id", "Job id."),),
    ),
    RouteSpec(
        "POST", "/api/ml/reload", "reload", views.reload,
        "Check the store for new artifact versions now and load them.", "models",
        {200: ("What was reloaded.", ReloadResult), 503: _STORAGE_DOWN},
        admin=True,
    ),
    RouteSpec(
        "GET", "/api/ml/models/{name}/versions", "versions", views.versions,
        "The stored versions of a model's artifact, newest first.", "models",
        {200: ("Versions.", Versions), 404: _UNKNOWN_MODEL, 503: _STORAGE_DOWN},
        path_parameters=(_MODEL,),
    ),
    RouteSpec(
        "POST", "/api/ml/models/{name}/rollback", "rollback", views.rollback,
        "Make a stored version current again and serve it.", "models",
        {200: ("The model now serving.", RollbackResult),
         404: ("Unknown model or version.", ErrorBody),
         422: ("The version was restored but cannot be served.", RollbackNotServed),
         503: _STORAGE_DOWN},
        admin=True,
        path_parameters=(_MODEL,),
        body=RollbackRequest,
    ),
    RouteSpec(
        "GET", "/api/frontend/recommendations", "recommendations", views.recommendations,
        "Recommendations for a user (popular items for a user the model never saw).",
        "recommendations",
        {200: ("Recommendations.", Recommendations), 503: _NOT_TRAINED},
        public=True,
        query=RecommendationsQuery,
    ),
    RouteSpec(
        "POST", "/api/recommendations", "recommend_for_ratings", views.recommend_for_ratings,
        "Recommendations for a visitor's ratings, without retraining.", "recommendations",
        {200: ("Recommendations.", Recommendations), 404: ("Unknown item.", ErrorBody),
         413: (f"Body over {CLIENT_MAX_SIZE} bytes.", ErrorBody), 503: _NOT_TRAINED},
        public=True,
        body=RatingsRequest,
    ),
    RouteSpec(
        "POST", "/api/ratings", "add_ratings", ratings.add_ratings,
        "Store users' ratings; their next answers count them, without retraining.", "feedback",
        {201: ("Written, in one transaction.", RatingsStored),
         404: ("Unknown item: nothing was written.", ErrorBody),
         413: (f"Body over {CLIENT_MAX_SIZE} bytes.", ErrorBody),
         503: ("The database is unavailable: nothing was written, send it again.", ErrorBody)},
        feedback=True,
        database=True,
        body=FeedbackRequest,
        description="A rating outside the scale of the served models' data is refused (400), "
        "and so is the whole batch. A re-rating replaces the user's earlier rating of the item, "
        "so sending a batch twice is safe.",
    ),
    RouteSpec(
        "GET", "/api/users/{user_id}/ratings", "user_ratings", ratings.user_ratings,
        "A user's stored ratings, newest first.", "feedback",
        {200: ("The ratings.", UserRatings),
         503: ("The database is unavailable.", ErrorBody)},
        database=True,
        path_parameters=(PathParameter("user_id", "The user."),),
    ),
    RouteSpec(
        "GET", "/api/items/{id}/similar", "similar_items", views.similar_items,
        "The items most similar to one item.", "recommendations",
        {200: ("Similar items.", SimilarItems), 404: ("Unknown item.", ErrorBody),
         503: _NOT_TRAINED},
        public=True,
        path_parameters=(PathParameter("id", "Item id."),),
        query=SimilarQuery,
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
        (PathParameter("name", "File name."),),
    ),
)


def served_routes(database: bool) -> tuple[RouteSpec, ...]:
    """The routes a service has: the feedback routes only when its ratings are in a database."""
    return tuple(spec for spec in ROUTES if database or not spec.database)


def add_routes(app: web.Application, routes: Sequence[RouteSpec] = ROUTES) -> None:
    """Register ``routes`` (no implicit HEAD routes) and the dashboard."""
    for spec in routes:
        app.router.add_route(spec.method, spec.path, spec.handler, name=spec.name)
    add_dashboard_routes(app)


def admin_route_names(routes: Sequence[RouteSpec] = ROUTES) -> frozenset[str]:
    """Names of the routes that need the admin token."""
    return frozenset(spec.name for spec in routes if spec.admin)


def feedback_route_names(routes: Sequence[RouteSpec] = ROUTES) -> frozenset[str]:
    """Names of the routes that need the feedback token (or the admin token)."""
    return frozenset(spec.name for spec in routes if spec.feedback)


def public_routes(routes: Sequence[RouteSpec] = ROUTES) -> frozenset[tuple[str, str]]:
    """``(method, path template)`` of the routes browsers on other origins may call."""
    return frozenset((spec.method, spec.path) for spec in routes if spec.public)
