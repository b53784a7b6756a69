"""The OpenAPI 3.1 document of the service, generated from the route table and the schemas.

Every path, method and status comes from :data:`service.web.routes.ROUTES` and
:data:`~service.web.routes.PAGES`, so the document lists exactly the routes the application
registers (a test checks both ways). Every schema in it is pydantic's JSON Schema (draft
2020-12, the dialect of OpenAPI 3.1) of a type in :mod:`service.web.schemas` or
:mod:`service.web.responses`: the query parameters are the fields of the route's query model,
the request body its body model, each answer the type that writes it, and
``components/schemas`` the types they refer to. Nothing here describes a field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import CoreSchema

from service.web.responses import ErrorBody
from service.web.routes import PAGES, ROUTES, PageSpec, PathParameter, RouteSpec
from service.web.schemas import bound_ratings

__all__ = ["OPENAPI_VERSION", "build_document"]

OPENAPI_VERSION: Final = "3.1.0"
_REF: Final = "#/components/schemas/{model}"
_NULL: Final = {"type": "null"}


class _Generator(GenerateJsonSchema):
    """Pydantic's JSON Schema without the titles it makes up from field names."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


class _Components:
    """The JSON Schemas of every type the routes name, and the components they refer to."""

    def __init__(self, routes: Sequence[RouteSpec]) -> None:
        wanted: dict[tuple[Any, JsonSchemaMode], TypeAdapter[Any]] = {}

        def want(kind: Any, mode: JsonSchemaMode) -> None:
            if (kind, mode) not in wanted:
                wanted[kind, mode] = TypeAdapter(kind)

        want(ErrorBody, "serialization")
        for route in routes:
            for model in (route.query, route.body):
                if model is not None:
                    want(model, "validation")
            for _, kind in route.responses.values():
                if kind is not None:
                    want(kind, "serialization")
        keyed, definitions = TypeAdapter.json_schemas(
            [(key, mode, adapter) for (key, mode), adapter in wanted.items()],
            ref_template=_REF,
            schema_generator=_Generator,
        )
        self._keyed = {key: schema for (key, _), schema in keyed.items()}
        self.schemas: dict[str, Any] = definitions.get("$defs", {})
        # A query model becomes parameters, not a component of its own.
        self._queries = {
            route.query: self.schemas.pop(self._name(route.query))
            for route in routes
            if route.query is not None
        }

    def _name(self, kind: Any) -> str:
        ref: str = self._keyed[kind]["$ref"]
        return ref.rsplit("/", 1)[-1]

    def of(self, kind: Any) -> dict[str, Any]:
        """The schema of ``kind`` (a reference to its component)."""
        return dict(self._keyed[kind])

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        """The query parameters a query model's fields describe, in order."""
        definition = self._queries[model]
        required = set(definition.get("required", ()))
        parameters = []
        for name, field in definition["properties"].items():
            schema = dict(field)
            described: dict[str, Any] = {
                "name": name,
                "in": "query",
                "description": schema.pop("description", ""),
                "required": name in required,
            }
            if name not in required:
                described["allowEmptyValue"] = True  # an empty value counts as absent
            described["schema"] = _without_null(schema)
            parameters.append(described)
        return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the null that stands for "absent" in its model."""
    branches = schema.get("anyOf")
    if branches is None or _NULL not in branches:
        return schema
    rest = [branch for branch in branches if branch != _NULL]
    kept = {key: value for key, value in schema.items() if key != "anyOf"}
    if "default" in kept and kept["default"] is None:
        del kept["default"]
    return {**rest[0], **kept} if len(rest) == 1 else {**kept, "anyOf": rest}


def _path_parameter(parameter: PathParameter) -> dict[str, Any]:
    return {
        "name": parameter.name,
        "in": "path",
        "description": parameter.description,
        "required": True,
        "schema": TypeAdapter(parameter.type).json_schema(schema_generator=_Generator),
    }


def _response(description: str, schema: dict[str, Any], media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _operation(route: RouteSpec, components: _Components) -> dict[str, Any]:
    error = components.of(ErrorBody)
    responses = {
        str(status): _response(
            text,
            components.of(kind) if kind is not None else {},
            "application/json" if kind is not None else route.media,
        )
        for status, (text, kind) in sorted(route.responses.items())
    }
    parameters = [_path_parameter(p) for p in route.path_parameters]
    if route.query is not None:
        parameters += components.query_parameters(route.query)
    if parameters or route.body:
        responses.setdefault(
            "400", _response("A parameter is missing or wrong.", error, "application/json")
        )
    if route.admin or route.feedback:
        needed = "admin token" if route.admin else "feedback (or admin) token"
        responses["401"] = _response(
            f"The {needed} is missing or wrong.", error, "application/json"
        )
    responses["default"] = _response("Any other error, as JSON.", error, "application/json")
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.of(route.body)}},
        }
    if route.admin:
        operation["security"] = [{"adminToken": []}]
    elif route.feedback:
        operation["security"] = [{"feedbackToken": []}, {"adminToken": []}]
    return operation


def _page_operation(page: PageSpec, method: str, components: _Components) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": page.name if method == "GET" else f"{page.name}_{method.lower()}",
        "summary": page.summary,
        "tags": ["dashboard"],
        "responses": {
            "200": _response("The file.", {}, page.media),
            "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
            "default": _response(
                "Any other error, as JSON.", components.of(ErrorBody), "application/json"
            ),
        },
    }
    if page.path_parameters:
        operation["parameters"] = [_path_parameter(p) for p in page.path_parameters]
    return operation


def build_document(
    routes: Iterable[RouteSpec] = ROUTES,
    pages: Iterable[PageSpec] = PAGES,
    *,
    version: str = "0.1.0",
    rating_scale: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of ``routes`` and the dashboard ``pages``.

    Parameters
    ----------
    routes : iterable of RouteSpec
        The API routes to describe (default: all of them).
    pages : iterable of PageSpec
        The dashboard's routes (default: all of them).
    version : str
        The API version written in ``info``.
    rating_scale : (float, float), optional
        The scale of the served models' data: the bounds the document gives every rating (the
        service refuses the others). None: the limits of the schemas.
    """
    routes = list(routes)
    components = _Components(routes)
    if rating_scale is not None:
        bound_ratings(components.schemas, rating_scale)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    for page in pages:
        for method in page.methods:
            operation = _page_operation(page, method, components)
            paths.setdefault(page.path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Wisata recommendations",
            "version": version,
            "description": "Travel destination recommendations served from stored model "
            "artifacts. Admin routes need 'Authorization: Bearer <token>' when the service "
            "has WISATA_ADMIN_TOKEN set; the feedback route takes WISATA_FEEDBACK_TOKEN (or the "
            "admin token).",
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer"},
                **(
                    {"feedbackToken": {"type": "http", "scheme": "bearer"}}
                    if any(route.feedback for route in routes)
                    else {}
                ),
            },
        },
    }
