"""Request handlers: parse with the schemas' models, call the registry or the trainer, answer.

Handlers raise; the error middleware turns what they raise into JSON errors. Input problems
raise :class:`~service.errors.BadParameter` naming the parameter (:mod:`service.web.parsing`),
before any model is touched. Every answer is written by its type in
:mod:`service.web.responses`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

from aiohttp import web

from service.errors import UnknownModel, UnknownVersion
from service.ml.recommenders import MODEL_NAMES, Hybrid, Recommender
from service.serving import answers
from service.serving.status import StoredArtifact
from service.web import parsing
from service.web.group import announce
from service.web.keys import (
    CACHE,
    FEEDBACK,
    GROUP,
    METRICS,
    OPENAPI,
    REGISTRY,
    STORAGE,
    STORE,
    TRAINER,
)
from service.web.responses import (
    DOCUMENT,
    HEALTH,
    JOB,
    JOB_ACCEPTED,
    NOT_READY,
    READY,
    RECOMMENDATIONS,
    RELOAD_RESULT,
    ROLLBACK_NOT_SERVED,
    ROLLBACK_RESULT,
    SIMILAR_ITEMS,
    STATUS,
    VERSIONS,
    DatabaseReport,
    Health,
    Item,
    JobAccepted,
    JobLinks,
    NotReady,
    Ready,
    Recommendations,
    ReloadResult,
    RollbackNotServed,
    RollbackResult,
    ScoredItem,
    SimilarItems,
    Status,
    StorageReport,
    Versions,
    WorkerReport,
    finite,
    to_json,
)
from service.web.schemas import (
    ALGORITHMS,
    RatingsRequest,
    RecommendationsQuery,
    RollbackRequest,
    SimilarQuery,
)
from service.web.telemetry import CONTENT_TYPE
from storage import NotFound

__all__ = [
    "healthz",
    "job",
    "metrics",
    "openapi",
    "readyz",
    "recommend_for_ratings",
    "recommendations",
    "reload",
    "respond",
    "rollback",
    "similar_items",
    "status",
    "train_all",
    "train_model",
    "versions",
]


def respond(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def _cached(request: web.Request, key: Hashable, answer: Callable[[], bytes]) -> web.Response:
    """The JSON ``answer()`` writes, reused while ``key`` (which names the model version) recurs."""
    cache = request.app[CACHE]
    body = cache.get(key)
    request.app[METRICS].observe_cache(hit=body is not None)
    if body is None:
        body = answer()
        cache.put(key, body)
    return respond(body)


# --- operations ---------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return respond(to_json(HEALTH, Health(status="ok")))


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 only while the three models are loaded."""
    registry, storage = request.app[REGISTRY], request.app[STORAGE]
    missing = registry.missing()
    models = {name: status.state for name, status in registry.status().items()}
    feedback = request.app.get(FEEDBACK)
    if not missing:
        ready = Ready(ready=True, models=models)
        if feedback is not None:
            ready["database"] = "reachable" if feedback.reachable else f"{feedback.error}"
        return respond(to_json(READY, ready))
    listed = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
    message = f"not every model is loaded: {listed}"
    if not storage.connected:  # the likelier cause, so it comes first
        message = f"the artifact store is unreachable ({storage.error}); {message}"
    refused = NotReady(
        error="not_ready", message=message, ready=False, models=models, missing=missing
    )
    if feedback is not None:
        refused["database"] = "reachable" if feedback.reachable else f"{feedback.error}"
    return respond(to_json(NOT_READY, refused), status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of every route; its ratings' bounds are the served models' scale."""
    document = request.app[OPENAPI](request.app[REGISTRY].rating_scale())
    return respond(to_json(DOCUMENT, document))


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
    storage_report = StorageReport(
        backend=where.backend,
        bucket=where.bucket,
        prefix=where.prefix,
        endpoint=where.endpoint,
        location=where.location,
        reachable=reachable,
        error=error,
    )
    answer = Status(
        models=registry.status(),
        storage=storage_report,
        job=None if job is None else job.report(),
        unfinished_publish=registry.unfinished,
    )
    group = app.get(GROUP)
    if group is not None:
        announce(app)
        members = [cast(WorkerReport, entry) for entry in group.members()]
        mine = next((entry for entry in members if entry["worker"] == group.worker), None)
        if mine is not None:
            answer["worker"] = mine
        answer["workers"] = members
        if job is None:
            answer["job"] = app[TRAINER].shared_running()
    feedback = app.get(FEEDBACK)
    if feedback is not None:
        answer["database"] = DatabaseReport(
            location=feedback.store.database.describe(),
            reachable=feedback.reachable,
            error=feedback.error,
            recent_ratings=len(feedback.recent),
            recent_users=feedback.recent.users,
        )
    return respond(to_json(STATUS, answer))


def _accepted(request: web.Request, models: tuple[str, ...] | list[str]) -> web.Response:
    job = request.app[TRAINER].submit(models)
    link = f"/api/ml/jobs/{job.id}"
    accepted = JobAccepted(
        job_id=job.id, status=job.state, models=list(job.models), links=JobLinks(self=link)
    )
    return respond(to_json(JOB_ACCEPTED, accepted), status=202, headers={"Location": link})


async def train_all(request: web.Request) -> web.Response:
    """Start training the three models (the hybrid last)."""
    return _accepted(request, MODEL_NAMES)


async def train_model(request: web.Request) -> web.Response:
    """Start training one model."""
    return _accepted(request, [request.match_info["model"]])


async def job(request: web.Request) -> web.Response:
    """A training job's state, times, seconds per model and error."""
    return respond(to_json(JOB, request.app[TRAINER].report(request.match_info["job_id"])))


async def reload(request: web.Request) -> web.Response:
    """Check the store for new artifact versions now and load them."""
    registry = request.app[REGISTRY]
    reloaded = await registry.refresh()
    answer = ReloadResult(reloaded=reloaded, models=registry.status())
    return respond(to_json(RELOAD_RESULT, answer))


async def versions(request: web.Request) -> web.Response:
    """The stored versions of one model's artifact, newest first."""
    name = request.match_info["name"]
    found = await request.app[REGISTRY].versions(name)
    stored = [StoredArtifact.of(info) for info in found]
    return respond(to_json(VERSIONS, Versions(model=name, versions=stored)))


async def rollback(request: web.Request) -> web.Response:
    """Make a stored version current again and serve it."""
    name = request.match_info["name"]
    if name not in MODEL_NAMES:  # refused before the body matters
        raise UnknownModel(name, MODEL_NAMES)
    version_id = (await parsing.body(request, RollbackRequest)).version_id
    registry = request.app[REGISTRY]
    before = registry.status()[name]
    try:
        result = await registry.rollback(name, version_id)
    except NotFound as e:
        raise UnknownVersion(name, version_id) from e
    if result.last_error is not None and result.last_error != before.last_error:
        refused = RollbackNotServed(
            error="rollback_not_served",
            message=(
                f"version {version_id} of {name} is current in the store again, but it "
                f"could not be served ({result.last_error}); the previous model keeps "
                "serving: roll back to another version or retrain"
            ),
            model=result,
        )
        return respond(to_json(ROLLBACK_NOT_SERVED, refused), status=422)
    answer = RollbackResult(model=result, version_id=version_id)
    return respond(to_json(ROLLBACK_RESULT, answer))


# --- recommendations ----------------------------------------------------------------------------
# The answers here carry no float but the scores, which pass through finite(): pydantic-core
# writes them directly (dump_json), the fastest way it has to write a typed dict.


async def recommendations(request: web.Request) -> web.Response:
    """Recommendations for a known user (popular items for an unknown one)."""
    asked = parsing.query(request, RecommendationsQuery)
    registry = request.app[REGISTRY]
    name = ALGORITHMS[asked.algorithm]
    model = registry.model(name)
    options = _options(name, asked.lambda_)
    feedback = request.app.get(FEEDBACK)
    recent = {} if feedback is None else feedback.ratings_of(asked.user_id, name)

    def answer() -> bytes:
        found = answers.recommend(model, asked.user_id, asked.limit, recent, **options)
        recommended: Recommendations = {
            "user_id": asked.user_id,
            "algorithm": asked.algorithm,
            "model_version": registry.version(name),
            "cold_start": found.cold_start,
            "items": _scored(model, found.items),
        }
        return RECOMMENDATIONS.dump_json(recommended)

    served = registry.identity(name)
    key = (
        "recommendations",
        name,
        served,
        asked.user_id,
        asked.limit,
        options.get("mmr_lambda"),
        tuple(sorted(recent.items())) if recent else None,  # a new rating: a new answer
    )
    return _cached(request, key, answer)


async def recommend_for_ratings(request: web.Request) -> web.Response:
    """Fold-in recommendations for a visitor's ratings, without retraining."""
    registry = request.app[REGISTRY]
    asked = await parsing.body(request, RatingsRequest, registry)
    parsing.check_scale(registry, (rating.rating for rating in asked.ratings))
    name = ALGORITHMS[asked.chosen_algorithm]
    model, version = registry.model(name), registry.version(name)
    ratings = [(rating.item_id, rating.rating) for rating in asked.ratings]
    found = model.recommend_for_ratings(
        ratings, n=asked.chosen_limit, **_options(name, asked.lambda_)
    )
    recommended: Recommendations = {
        "user_id": None,
        "algorithm": asked.chosen_algorithm,
        "model_version": version,
        "cold_start": found.cold_start,
        "items": _scored(model, found.items),
    }
    return respond(RECOMMENDATIONS.dump_json(recommended))


async def similar_items(request: web.Request) -> web.Response:
    """The items most similar to one item."""
    item_id = request.match_info["id"]
    asked = parsing.query(request, SimilarQuery)
    registry = request.app[REGISTRY]
    name = ALGORITHMS[asked.algorithm]
    model = registry.model(name)

    def answer() -> bytes:
        found = model.similar_items(item_id, n=asked.limit)
        similar: SimilarItems = {
            "item": cast(Item, model.catalogue_.describe(item_id)),
            "algorithm": asked.algorithm,
            "model_version": registry.version(name),
            "items": _scored(model, found),
        }
        return SIMILAR_ITEMS.dump_json(similar)

    key = ("similar", name, registry.identity(name), item_id, asked.limit)
    return _cached(request, key, answer)


def _scored(model: Recommender, pairs: list[tuple[str, float]]) -> list[ScoredItem]:
    describe = model.catalogue_.describe
    return [
        cast(ScoredItem, {**describe(item_id), "score": finite(score)}) for item_id, score in pairs
    ]


def _options(name: str, lam: float | None) -> dict[str, Any]:
    # Only the hybrid re-ranks with MMR; the other models have no use for lambda.
    return {"mmr_lambda": lam} if name == Hybrid.name and lam is not None else {}
