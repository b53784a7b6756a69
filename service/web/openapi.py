"""The OpenAPI 3.0 document of the service, built from the route table.

Every path and method comes from :data:`service.web.routes.ROUTES` and
:data:`~service.web.routes.PAGES`, so the document lists exactly the routes the application
registers (a test checks both ways).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from service.web.routes import PAGES, ROUTES, PageSpec, Parameter, RouteSpec
from service.web.views import MAX_ID_LENGTH, NOT_BLANK

__all__ = ["OPENAPI_VERSION", "build_document"]

OPENAPI_VERSION: Final = "3.0.3"
_NULLABLE_STRING: Final = {"type": "string", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Any], required: Iterable[str] = (), **more: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **more}
    if required:
        schema["required"] = list(required)
    return schema


_ID: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": NOT_BLANK,
}
_ITEM = _object(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "categories": {"type": "array", "items": {"type": "string"}},
        "city": _NULLABLE_STRING,
    },
    ["id", "name", "categories", "city"],
)
_OBJECT_INFO = _object(
    {
        "key": {"type": "string"},
        "size": {"type": "integer"},
        "etag": {"type": "string"},
        "last_modified": {"type": "string", "format": "date-time"},
        "version_id": _NULLABLE_STRING,
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    ["key", "size", "etag", "last_modified", "version_id", "metadata"],
)
_STATES = ["loaded", "not_trained", "failed", "stale", "trained_not_persisted"]
_MODEL_STATUS = _object(
    {
        "name": {"type": "string"},
        "state": {"type": "string", "enum": _STATES},
        "reason": _NULLABLE_STRING,
        "trained_at": _NULLABLE_STRING,
        "checksum": _NULLABLE_STRING,
        "artifact": {**_ref("ObjectInfo"), "nullable": True},
        "load_seconds": {"type": "number", "nullable": True},
        "last_error": _NULLABLE_STRING,
        "components": {"type": "object", "additionalProperties": {"type": "string"}},
        "header": {"type": "object", "nullable": True},
    },
    ["name", "state", "reason", "trained_at", "checksum", "artifact", "last_error"],
)
_JOB = _object(
    {
        "job_id": {"type": "string"},
        "models": {"type": "array", "items": {"type": "string"}},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time", "nullable": True},
        "finished_at": {"type": "string", "format": "date-time", "nullable": True},
        "seconds": {"type": "object", "additionalProperties": {"type": "number"}},
        "error": _NULLABLE_STRING,
        "persisted": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    ["job_id", "models", "status", "started_at", "finished_at", "seconds", "error"],
)
_MODELS_BY_NAME = {"type": "object", "additionalProperties": _ref("ModelStatus")}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "Machine-readable code."},
            "message": {"type": "string", "description": "What was wrong and what to do."},
            "parameter": {"type": "string", "description": "The parameter at fault (400)."},
            "model": {"description": "The model concerned (503 model_not_trained)."},
            "job_id": {"type": "string", "description": "The running job (409)."},
        },
        ["error", "message"],
    ),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}}, ["status"]),
    "Ready": _object(
        {
            "ready": {"type": "boolean"},
            "models": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["ready", "models"],
    ),
    "NotReady": _object(
        {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "ready": {"type": "boolean"},
            "models": {"type": "object", "additionalProperties": {"type": "string"}},
            "missing": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["error", "message", "ready", "models", "missing"],
    ),
    "Item": _ITEM,
    "ScoredItem": {"allOf": [_ref("Item"), _object({"score": {"type": "number"}}, ["score"])]},
    "Recommendations": _object(
        {
            "user_id": _NULLABLE_STRING,
            "algorithm": {"type": "string", "enum": ["content", "collaborative", "hybrid"]},
            "model_version": {"type": "string"},
            "cold_start": {"type": "boolean"},
            "items": {"type": "array", "items": _ref("ScoredItem")},
        },
        ["user_id", "algorithm", "model_version", "cold_start", "items"],
    ),
    "SimilarItems": _object(
        {
            "item": _ref("Item"),
            "algorithm": {"type": "string"},
            "model_version": {"type": "string"},
            "items": {"type": "array", "items": _ref("ScoredItem")},
        },
        ["item", "algorithm", "model_version", "items"],
    ),
    "RatingsRequest": _object(
        {
            "ratings": {
                "type": "array",
                "maxItems": 1000,
                "items": _object(
                    {
                        "item_id": {
                            "anyOf": [_ID, {"type": "integer"}],
                            "description": "An item id; a whole number is read as its digits.",
                        },
                        "rating": {"type": "number", "minimum": 0, "maximum": 1000},
                    },
                    ["item_id", "rating"],
                ),
            },
            # null (and "" for the algorithm) mean the same as leaving the field out.
            "algorithm": {
                "type": "string",
                "enum": ["", "content", "collaborative", "hybrid"],
                "nullable": True,
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": 10,
                "nullable": True,
            },
            "lambda": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        },
        ["ratings"],
    ),
    "ObjectInfo": _OBJECT_INFO,
    "ModelStatus": _MODEL_STATUS,
    "Job": _JOB,
    "JobAccepted": _object(
        {
            "job_id": {"type": "string"},
            "status": {"type": "string"},
            "models": {"type": "array", "items": {"type": "string"}},
            "links": _object({"self": {"type": "string"}}, ["self"]),
        },
        ["job_id", "status", "links"],
    ),
    "Status": _object(
        {
            "models": _MODELS_BY_NAME,
            "storage": _object(
                {
                    "backend": {"type": "string", "enum": ["s3", "local"]},
                    "bucket": _NULLABLE_STRING,
                    "prefix": {"type": "string"},
                    "endpoint": _NULLABLE_STRING,
                    "location": {"type": "string"},
                    "reachable": {"type": "boolean"},
                    "error": _NULLABLE_STRING,
                },
                ["backend", "bucket", "prefix", "location", "reachable", "error"],
            ),
            "job": {**_ref("Job"), "nullable": True},
            "unfinished_publish": {
                **_object(
                    {
                        "set_id": {"type": "string"},
                        "started_at": {"type": "string", "format": "date-time"},
                        "models": {"type": "array", "items": {"type": "string"}},
                        "held_back": {"type": "array", "items": {"type": "string"}},
                    },
                    ["set_id", "started_at", "models", "held_back"],
                ),
                "nullable": True,
            },
        },
        ["models", "storage", "job", "unfinished_publish"],
    ),
    "ReloadResult": _object(
        {"reloaded": {"type": "array", "items": {"type": "string"}}, "models": _MODELS_BY_NAME},
        ["reloaded", "models"],
    ),
    "Versions": _object(
        {"model": {"type": "string"}, "versions": {"type": "array", "items": _ref("ObjectInfo")}},
        ["model", "versions"],
    ),
    "RollbackRequest": _object(
        {"version_id": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NOT_BLANK}},
        ["version_id"],
    ),
    "RollbackResult": _object(
        {"model": _ref("ModelStatus"), "version_id": {"type": "string"}}, ["model", "version_id"]
    ),
}


def _parameter(parameter: Parameter) -> dict[str, Any]:
    described = {
        "name": parameter.name,
        "in": parameter.location,
        "description": parameter.description,
        "required": parameter.required,
        "schema": dict(parameter.schema),
    }
    if parameter.allow_empty:
        described["allowEmptyValue"] = True
    return described


def _response(description: str, schema: str | None, route: RouteSpec) -> dict[str, Any]:
    if schema is None:
        media = "text/plain" if route.name == "metrics" else "application/json"
        return {"description": description, "content": {media: {"schema": {}}}}
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _operation(route: RouteSpec) -> dict[str, Any]:
    responses = {
        str(status): _response(text, schema, route)
        for status, (text, schema) in sorted(route.responses.items())
    }
    if route.parameters or route.body:
        responses.setdefault("400", _response("A parameter is missing or wrong.", "Error", route))
    if route.admin:
        responses["401"] = _response("The admin token is missing or wrong.", "Error", route)
    responses["default"] = _response("Any other error, as JSON.", "Error", route)
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if route.parameters:
        operation["parameters"] = [_parameter(p) for p in route.parameters]
    if route.body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    if route.admin:
        operation["security"] = [{"adminToken": []}]
    return operation


def _page_operation(page: PageSpec, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": page.name if method == "GET" else f"{page.name}_{method.lower()}",
        "summary": page.summary,
        "tags": ["dashboard"],
        "responses": {
            "200": {"description": "The file.", "content": {page.media: {"schema": {}}}},
            "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
            "default": {
                "description": "Any other error, as JSON.",
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        },
    }
    if page.parameters:
        operation["parameters"] = [_parameter(p) for p in page.parameters]
    return operation


def build_document(
    routes: Iterable[RouteSpec] = ROUTES,
    pages: Iterable[PageSpec] = PAGES,
    *,
    version: str = "0.1.0",
) -> dict[str, Any]:
    """Return the OpenAPI 3 document of ``routes`` and the dashboard ``pages``.

    Parameters
    ----------
    routes : iterable of RouteSpec
        The API routes to describe (default: all of them).
    pages : iterable of PageSpec
        The dashboard's routes (default: all of them).
    version : str
        The API version written in ``info``.
    """
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for page in pages:
        for method in page.methods:
            paths.setdefault(page.path, {})[method.lower()] = _page_operation(page, method)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Wisata recommendations",
            "version": version,
            "description": "Travel destination recommendations served from stored model "
            "artifacts. Admin routes need 'Authorization: Bearer <token>' when the service "
            "has WISATA_ADMIN_TOKEN set.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
