"""Request handlers: parse and check the input, call the registry or the trainer, answer JSON.

Handlers raise; the error middleware turns what they raise into JSON errors. Input problems
raise :class:`BadParameter` naming the parameter, before any model is touched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from service.errors import BadParameter, UnknownModel
from service.ml.recommenders import MODEL_NAMES, Recommender
from service.serving.registry import Registry
from service.serving.status import StoredArtifact
from service.web.keys import CACHE, METRICS, OPENAPI, REGISTRY, STORAGE, STORE, TRAINER
from service.web.telemetry import CONTENT_TYPE

__all__ = ["ALGORITHMS", "MAX_RATINGS", "dumps"]

#: Public algorithm names -> model names.
ALGORITHMS: Final[Mapping[str, str]] = {
    "content": "content_based",
    "collaborative": "collaborative",
    "hybrid": "hybrid",
}
DEFAULT_ALGORITHM = "hybrid"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_RATINGS = 1000
MAX_RATING = 1000.0
MAX_ID_LENGTH = 256
#: The OpenAPI pattern of a text parameter that must not be blank (see ``_text``).
NOT_BLANK: Final = r"\S"

#: JSON that is always valid: NaN or infinity fails loudly instead of writing ``NaN``.
dumps = functools.partial(json.dumps, allow_nan=False)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def _cached(request: web.Request, key: Hashable, answer: Callable[[], Any]) -> web.Response:
    """The JSON of ``answer()``, reused while ``key`` (which names the model version) recurs."""
    cache = request.app[CACHE]
    body = cache.get(key)
    request.app[METRICS].observe_cache(hit=body is not None)
    if body is None:
        body = dumps(answer()).encode()
        cache.put(key, body)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


# --- operations ---------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only while the three models are loaded."""
    registry, storage = request.app[REGISTRY], request.app[STORAGE]
    missing = registry.missing()
    models = {name: status.state.value for name, status in registry.status().items()}
    if not missing:
        return _json({"ready": True, "models": models})
    listed = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
    message = f"not every model is loaded: {listed}"
    if not storage.connected:  # the likelier cause, so it comes first
        message = f"the artifact store is unreachable ({storage.error}); {message}"
    return _json(
        {
            "error": "not_ready",
            "message": message,
            "ready": False,
            "models": models,
            "missing": missing,
        },
        status=503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of every route."""
    return _json(request.app[OPENAPI])


# --- models and training ------------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    """Every model's state and artifact, the storage, and the running job."""
    app = request.app
    registry, storage = app[REGISTRY], app[STORAGE]
    where = app[STORE].describe()
    reachable = storage.connected and registry.storage_available
    if not storage.connected:
        error = storage.error
    else:
        error = None if registry.storage_available else registry.storage_error
    job = app[TRAINER].current
    return _json(
        {
            "models": _statuses(registry),
            "storage": {
                "backend": where.backend,
                "bucket": where.bucket,
                "prefix": where.prefix,
                "endpoint": where.endpoint,
                "location": where.location,
                "reachable": reachable,
                "error": error,
            },
            "job": None if job is None else job.report().model_dump(mode="json"),
            "unfinished_publish": registry.unfinished_publish,
        }
    )


def _accepted(request: web.Request, models: tuple[str, ...] | list[str]) -> web.Response:
    job = request.app[TRAINER].submit(models)
    link = f"/api/ml/jobs/{job.id}"
    return _json(
        {
            "job_id": job.id,
            "status": job.state.value,
            "models": list(job.models),
            "links": {"self": link},
        },
        status=202,
        headers={"Location": link},
    )


async def train_all(request: web.Request) -> web.Response:
    """Start training the three models (the hybrid last)."""
    return _accepted(request, MODEL_NAMES)


async def train_model(request: web.Request) -> web.Response:
    """Start training one model."""
    return _accepted(request, [request.match_info["model"]])


async def job(request: web.Request) -> web.Response:
    """A training job's state, times, seconds per model and error."""
    return _json(
        request.app[TRAINER].job(request.match_info["job_id"]).report().model_dump(mode="json")
    )


async def reload(request: web.Request) -> web.Response:
    """Check the store for new artifact versions now and load them."""
    registry = request.app[REGISTRY]
    reloaded = await registry.refresh()
    return _json({"reloaded": reloaded, "models": _statuses(registry)})


async def versions(request: web.Request) -> web.Response:
    """The stored versions of one model's artifact, newest first."""
    name = request.match_info["name"]
    found = await request.app[REGISTRY].versions(name)
    versions = [StoredArtifact.of(info).model_dump(mode="json") for info in found]
    return _json({"model": name, "versions": versions})


async def rollback(request: web.Request) -> web.Response:
    """Make a stored version current again and serve it."""
    name = request.match_info["name"]
    if name not in MODEL_NAMES:  # refused before the body matters
        raise UnknownModel(name, MODEL_NAMES)
    body = await _body(request)
    version_id = _text(body.get("version_id"), "version_id", limit=1024)
    registry = request.app[REGISTRY]
    before = registry.status()[name]
    result = await registry.rollback(name, version_id)
    if result.last_error is not None and result.last_error != before.last_error:
        return _json(
            {
                "error": "rollback_not_served",
                "message": (
                    f"version {version_id} of {name} is current in the store again, but it "
                    f"could not be served ({result.last_error}); the previous model keeps "
                    "serving: roll back to another version or retrain"
                ),
                "model": result.model_dump(mode="json"),
            },
            status=422,
        )
    return _json({"model": result.model_dump(mode="json"), "version_id": version_id})


# --- recommendations ----------------------------------------------------------------------------


async def recommendations(request: web.Request) -> web.Response:
    """Recommendations for a known user (popular items for an unknown one)."""
    query = request.query
    user_id = _text(_single(query, "user_id"), "user_id", limit=MAX_ID_LENGTH)
    algorithm = _algorithm(_single(query, "algorithm"))
    limit = _limit(_number_text(_single(query, "limit"), "limit"))
    lam = _lambda(_single(query, "lambda"))
    registry = request.app[REGISTRY]
    name = ALGORITHMS[algorithm]
    model, version = registry.model(name), registry.version(name)
    options = _options(name, lam)

    def answer() -> dict[str, Any]:
        found = model.recommend(user_id, n=limit, **options)
        return {
            "user_id": user_id,
            "algorithm": algorithm,
            "model_version": version,
            "cold_start": found.cold_start,
            "items": _described(model, found.items),
        }

    served = registry.identity(name)
    key = ("recommendations", name, served, user_id, limit, options.get("mmr_lambda"))
    return _cached(request, key, answer)


async def recommend_for_ratings(request: web.Request) -> web.Response:
    """Fold-in recommendations for a visitor's ratings, without retraining."""
    body = await _body(request)
    ratings = _ratings(body.get("ratings"))
    algorithm = _algorithm(_optional_text(body.get("algorithm"), "algorithm"))
    limit = _limit(body.get("limit"))
    lam = _lambda(body.get("lambda"))
    registry = request.app[REGISTRY]
    name = ALGORITHMS[algorithm]
    model, version = registry.model(name), registry.version(name)
    found = model.recommend_for_ratings(ratings, n=limit, **_options(name, lam))
    return _json(
        {
            "user_id": None,
            "algorithm": algorithm,
            "model_version": version,
            "cold_start": found.cold_start,
            "items": _described(model, found.items),
        }
    )


async def similar_items(request: web.Request) -> web.Response:
    """The items most similar to one item."""
    item_id = request.match_info["id"]
    query = request.query
    algorithm = _algorithm(_single(query, "algorithm"))
    limit = _limit(_number_text(_single(query, "limit"), "limit"))
    registry = request.app[REGISTRY]
    name = ALGORITHMS[algorithm]
    model, version = registry.model(name), registry.version(name)

    def answer() -> dict[str, Any]:
        found = model.similar_items(item_id, n=limit)
        return {
            "item": model.catalogue_.describe(item_id),
            "algorithm": algorithm,
            "model_version": version,
            "items": _described(model, found),
        }

    key = ("similar", name, registry.identity(name), item_id, limit)
    return _cached(request, key, answer)


def _statuses(registry: Registry) -> dict[str, Any]:
    return {name: status.model_dump(mode="json") for name, status in registry.status().items()}


def _described(model: Recommender, pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    describe = model.catalogue_.describe
    return [{**describe(item_id), "score": score} for item_id, score in pairs]


def _options(name: str, lam: float | None) -> dict[str, Any]:
    # Only the hybrid re-ranks with MMR; the other models have no use for lambda.
    return {"mmr_lambda": lam} if name == "hybrid" and lam is not None else {}


# --- parsing ------------------------------------------------------------------------------------


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadParameter(name, "given more than once; give it once")
    return values[0] if values else None


def _text(value: object, name: str, *, limit: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadParameter(name, "is required")
    if not isinstance(value, str):
        raise BadParameter(name, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise BadParameter(name, f"is longer than {limit} characters")
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParameter(name, f"must be a string, got {type(value).__name__}")
    return value


def _algorithm(raw: str | None) -> str:
    if raw is None or raw == "":
        return DEFAULT_ALGORITHM
    if raw not in ALGORITHMS:
        raise BadParameter("algorithm", f"{raw[:40]!r} is not one of {', '.join(ALGORITHMS)}")
    return raw


def _number_text(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise BadParameter(name, f"must be a whole number from 1 to {MAX_LIMIT}, got {raw[:40]!r}")
    return int(text)


def _limit(value: object) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise BadParameter("limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {value!r}")
    return value


def _lambda(value: object) -> float | None:
    if value is None or value == "":
        return None
    number: float
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise BadParameter(
                "lambda", f"must be a number from 0 to 1, got {value[:40]!r}"
            ) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not 0 <= value <= 1:  # before float(): a huge integer would overflow it
            raise BadParameter("lambda", f"must be from 0 (diverse) to 1 (relevant), got {value!r}")
        number = float(value)
    else:
        raise BadParameter("lambda", f"must be a number from 0 to 1, got {type(value).__name__}")
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise BadParameter("lambda", f"must be from 0 (diverse) to 1 (relevant), got {value!r}")
    return number


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)
    if not raw.strip():
        raise BadParameter("body", "is empty; send a JSON object")
    try:
        # From bytes, so a bogus charset in Content-Type cannot matter; json detects UTF-8/16/32.
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadParameter("body", f"is not valid JSON ({_first_line(e)})") from e
    if not isinstance(body, dict):
        raise BadParameter("body", f"must be a JSON object, got {type(body).__name__}")
    return body


def _ratings(value: object) -> list[tuple[str, float]]:
    if value is None:
        raise BadParameter("ratings", "is required: a list of {item_id, rating} objects")
    if not isinstance(value, list):
        raise BadParameter("ratings", f"must be a list, got {type(value).__name__}")
    if len(value) > MAX_RATINGS:
        raise BadParameter("ratings", f"holds {len(value)} entries; send at most {MAX_RATINGS}")
    pairs = []
    for i, entry in enumerate(value):
        where = f"ratings[{i}]"
        if not isinstance(entry, dict):
            raise BadParameter(where, "must be an object {item_id, rating}")
        item = entry.get("item_id")
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        item_id = _text(item, f"{where}.item_id", limit=MAX_ID_LENGTH)
        rating = entry.get("rating")
        # Compared before float(): a 400-digit integer would overflow it.
        if (
            isinstance(rating, bool)
            or not isinstance(rating, int | float)
            or not 0.0 <= rating <= MAX_RATING
        ):
            raise BadParameter(
                f"{where}.rating", f"must be a number from 0 to {MAX_RATING:g}, got {rating!r}"
            )
        pairs.append((item_id, float(rating)))
    return pairs


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
