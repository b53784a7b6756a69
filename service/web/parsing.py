"""Reading requests into the schemas' models, and pydantic's complaints into ``BadParameter``.

:func:`query` and :func:`body` validate a query string or a JSON body with one model of
:mod:`service.web.schemas`; the first error pydantic reports becomes a
:class:`~service.errors.BadParameter` naming the parameter as a client wrote it
(``limit``, ``ratings[1].rating``, ``body``) and saying what to send instead, in words taken
from the model's own JSON Schema, so the message cannot contradict the document.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from service.errors import BadParameter, RatingOutOfScale, first_line
from service.serving.registry import Registry
from service.web.schemas import NOT_BLANK, bound_ratings

__all__ = ["PARSED_QUERIES", "body", "check_scale", "parse_body", "parse_query", "query"]

M = TypeVar("M", bound=BaseModel)
#: The low and high ends of a rating scale.
Scale = tuple[float, float]

_SHOWN = 40
"""Characters of a refused value quoted back in a message."""
PARSED_QUERIES: Final = 4096
"""Parsed query strings kept for reuse (models are frozen, so one instance serves them all)."""
_PARSED_LENGTH: Final = 512
"""Longest query string kept (the API's own parameters fit in far less)."""
_parsed: dict[tuple[type[BaseModel], str], BaseModel] = {}


def query(request: web.Request, model: type[M]) -> M:
    """The request's query string as ``model``; :class:`BadParameter` for the first bad value.

    The parse of a query string met recently is reused: it depends on nothing else, and a
    query that recurs (the one a cached answer is found for) then costs a dictionary lookup,
    not a validation.
    """
    raw = request.rel_url.raw_query_string
    if len(raw) > _PARSED_LENGTH:  # kept only while short: the memory stays small
        return parse_query(request.query, model)
    key = (model, raw)
    found = _parsed.get(key)
    if found is None:
        found = parse_query(request.query, model)
        if len(_parsed) >= PARSED_QUERIES:
            del _parsed[next(iter(_parsed))]  # the oldest first
        _parsed[key] = found
    return cast(M, found)


def parse_query(values: MultiMapping[str], model: type[M]) -> M:
    """The query string ``values`` as ``model``; :class:`BadParameter` for the first bad one.

    A parameter given twice is refused, an empty value counts as absent, and parameters the
    model does not name are ignored.
    """
    found: dict[str, Any] = {}
    for name, value in values.items():
        if name not in found:
            found[name] = value
        elif isinstance(seen := found[name], list):
            seen.append(value)
        else:
            found[name] = [seen, value]
    given = {name: value for name, value in found.items() if value != ""}
    try:
        return model.model_validate(given)
    except ValidationError as e:
        raise _bad_parameter(e, model, from_query=True) from e


async def body(request: web.Request, model: type[M], registry: Registry | None = None) -> M:
    """The request's JSON body as ``model``; :class:`BadParameter` for the first bad part.

    With ``registry``, a refused rating is told the scale of the served models' data, the
    bounds the served document gives it, rather than the schema's own.
    """
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)
    if not raw.strip():
        raise BadParameter("body", f"is empty; send {_expected(model, ())}")
    try:
        # From bytes, so a bogus charset in Content-Type cannot matter; json detects UTF-8/16/32.
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadParameter(
            "body", f"is not valid JSON ({first_line(e)}); send {_expected(model, ())}"
        ) from e
    return parse_body(data, model, registry.rating_scale if registry is not None else None)


def parse_body(
    data: object, model: type[M], rating_scale: Callable[[], Scale | None] | None = None
) -> M:
    """A decoded JSON body as ``model``; :class:`BadParameter` for the first bad part.

    ``rating_scale``, read only when a rating is refused, gives the bounds its message names.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        scale = rating_scale() if rating_scale is not None else None
        raise _bad_parameter(e, model, from_query=False, rating_scale=scale) from e


# --- messages -----------------------------------------------------------------------------------


def _bad_parameter(
    error: ValidationError,
    model: type[BaseModel],
    *,
    from_query: bool,
    rating_scale: Scale | None = None,
) -> BadParameter:
    first = error.errors(include_url=False)[0]
    loc = first["loc"]
    # In a query string only a repeated name gives a list (parse_query collects its values).
    if from_query and isinstance(first["input"], list):
        return BadParameter(_name(loc), "given more than once; give it once")
    expected = _expected(model, loc, rating_scale)
    return BadParameter(_name(loc), f"{_problem(first)}; send {expected}")


def _name(loc: Sequence[int | str]) -> str:
    """``("ratings", 1, "rating")`` -> ``ratings[1].rating``; the whole body is ``body``."""
    if not loc:
        return "body"
    parts = [str(loc[0])]
    parts += [f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:]]
    return "".join(parts)


def _problem(error: ErrorDetails) -> str:
    kind, given = error["type"], error["input"]
    if kind == "missing":
        return "is required"
    if kind in ("string_too_short", "string_pattern_mismatch"):
        return "is blank"
    if kind == "string_too_long":
        return f"is {len(given)} characters long"
    if kind == "too_long":
        return f"holds {len(given)} entries"
    if kind == "too_short":
        return "is empty" if not given else f"holds {len(given)} entries"
    return f"got {_shown(given)}"


def _shown(value: object) -> str:
    # Never the repr of a list or an object: it may be nested deep enough to overflow it.
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value[:_SHOWN])
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, float) else str(value)
        return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."
    return "a list" if isinstance(value, list) else "an object"


@functools.cache
def _schema(model: type[BaseModel], rating_scale: Scale | None = None) -> dict[str, Any]:
    """The model's JSON Schema, its ratings bounded as the served document bounds them."""
    schema = model.model_json_schema()
    if rating_scale is not None:
        bound_ratings(schema.get("$defs", {}), rating_scale)
    return schema


def _expected(
    model: type[BaseModel], loc: Sequence[int | str], rating_scale: Scale | None = None
) -> str:
    """What the model's JSON Schema accepts at ``loc``, in words."""
    root = _schema(model, rating_scale)
    definitions = root.get("$defs", {})
    node: Mapping[str, Any] = root
    for part in loc:
        node = _resolved(node, definitions)
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            break
    return _describe(_resolved(node, definitions), definitions) or "what the document describes"


def _resolved(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    found: Mapping[str, Any] = definitions[ref.rsplit("/", 1)[-1]]
    return found


def _describe(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> str:
    node = _resolved(node, definitions)
    if "anyOf" in node:
        # null and "" only ever stand for "the default": not something to ask for.
        parts = [_describe(branch, definitions) for branch in node["anyOf"]]
        return " or ".join(part for part in parts if part)
    if "enum" in node:
        return _one_of([str(value) for value in node["enum"] if value != ""])
    kind = node.get("type")
    if kind == "integer":
        return "a whole number" + _range(node)
    if kind == "number":
        return "a number" + _range(node)
    if kind == "string":
        blank = "non-blank " if node.get("pattern") == NOT_BLANK else ""
        most = node.get("maxLength")
        return f"a {blank}string" + (f" of at most {most} characters" if most else "")
    if kind == "array":
        least, most = node.get("minItems", 0), node.get("maxItems")
        size = f"{least} to {most} " if least and most else f"at most {most} " if most else ""
        each = _describe(node.get("items", {}), definitions)
        return f"a list of {size}entries, each {each}"
    if kind == "object" and "properties" in node:
        return f"an object {{{', '.join(node['properties'])}}}"
    return ""


def _range(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if low is None or high is None:
        return ""
    if max(len(str(low)), len(str(high))) > 12:  # the id numbers: bounds of up to 256 digits
        return f" of at most {len(str(high))} digits"
    return f" from {low:g} to {high:g}"


def _one_of(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def check_scale(registry: Registry, ratings: Iterable[float]) -> None:
    """Refuse the first rating outside the scale of the served models' data.

    Raises
    ------
    RatingOutOfScale
        Naming the rating as ``ratings[i].rating``. No check while nothing is served.
    """
    scale = registry.rating_scale()
    if scale is None:
        return
    low, high = scale
    for position, rating in enumerate(ratings):
        if not low <= rating <= high:
            raise RatingOutOfScale(f"ratings[{position}].rating", rating, scale)
