"""Assembly: :func:`create_app` wires routes, middlewares and resources together.

Every resource is one single-yield async generator in ``app.cleanup_ctx``, started in this
order and stopped in the reverse one: the artifact store, the training process pool, the model
registry (with the startup load, retried in the background while storage is unreachable), the
trainer and the reloader task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from service.config import Config
from service.db.ratings import RatingsStore
from service.errors import DatabaseUnavailable
from service.serving.feedback import Feedback
from service.serving.imports import seed_if_new
from service.serving.registry import Registry
from service.serving.trainer import Trainer, make_executor, stop_executor
from service.serving.workers import WorkerGroup
from service.web.cache import ResponseCache
from service.web.group import announce
from service.web.keys import (
    CACHE,
    CONFIG,
    EXECUTOR,
    FEEDBACK,
    GROUP,
    METRICS,
    OPENAPI,
    REGISTRY,
    ROUTES,
    STORAGE,
    STORE,
    TRAINER,
    StorageState,
)
from service.web.middlewares import (
    Access,
    auth_middleware,
    cors_middleware,
    error_middleware,
    metrics_middleware,
)
from service.web.openapi import build_document
from service.web.routes import (
    add_routes,
    admin_route_names,
    feedback_route_names,
    public_routes,
    served_routes,
)
from service.web.schemas import CLIENT_MAX_SIZE
from service.web.telemetry import Metrics
from storage import StorageError, open_store

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "CLIENT_MAX_SIZE", "create_app"]

logger = logging.getLogger(__name__)

BACKOFF_START: Final = 0.5
"""Seconds before the first retry of an unreachable store; doubled after each failure."""
BACKOFF_MAX: Final = 30.0
"""Longest wait between two retries of an unreachable store."""


def create_app(config: Config) -> web.Application:
    """Return the application for ``config``; its resources start with the app.

    Parameters
    ----------
    config : Config
        A validated configuration (see :meth:`Config.from_env`).
    """
    metrics = Metrics()
    routes = served_routes(database=config.database is not None)
    admin = Access.admin(config.admin_token)
    feedback = Access.feedback(config.feedback_token, config.admin_token)
    rules = {name: admin for name in admin_route_names(routes)}
    rules.update({name: feedback for name in feedback_route_names(routes)})
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE,
        middlewares=[
            metrics_middleware(metrics),
            cors_middleware(config.cors_origins, public_routes(routes)),
            error_middleware,
            auth_middleware(rules),
        ],
    )
    app[CONFIG] = config
    app[METRICS] = metrics
    app[CACHE] = ResponseCache(config.response_cache)
    app[ROUTES] = routes
    app[OPENAPI] = functools.cache(lambda scale: build_document(routes, rating_scale=scale))
    app[STORAGE] = StorageState()
    group = WorkerGroup.from_env()
    if group is not None:
        app[GROUP] = group
    add_routes(app, routes)
    app.cleanup_ctx.extend([_store, _executor, _registry, _feedback, _trainer, _reloader])
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = open_store(config.storage, config.store_settings())
    async with store:
        app[STORE] = store
        logger.info("artifact store: %s", store.describe().location)
        yield


async def _executor(app: web.Application) -> AsyncIterator[None]:
    executor = make_executor(app[CONFIG].training_workers)
    app[EXECUTOR] = executor
    try:
        yield
    finally:
        # A fit still running in a worker is stopped, not waited for: its job was cancelled, so
        # its result would be discarded, and a worker writes nothing (the publish happens here,
        # on the event loop), so stopping it loses nothing but the training.
        await asyncio.to_thread(stop_executor, executor)


async def _registry(app: web.Application) -> AsyncIterator[None]:
    config, state = app[CONFIG], app[STORAGE]
    group = app.get(GROUP)
    shared = None if group is None else group.shared_arrays
    registry = Registry(app[STORE], key=config.artifact_key, shared_arrays=shared)
    registry.events.subscribe(app[METRICS].observe)
    app[REGISTRY] = registry
    app[METRICS].watch(registry, lambda: state.connected and registry.storage_available)
    if config.database is None and not config.data_dir.is_dir():
        logger.warning(
            "WISATA_DATA=%s is not a folder: the service serves its stored models, but "
            "training will fail until it points at a dataset",
            config.data_dir,
        )
    retry: asyncio.Task[None] | None = None
    if not await _connect(app):
        retry = asyncio.create_task(_connect_with_backoff(app), name="wisata-storage-retry")
    try:
        yield
    finally:
        await _cancel(retry)


async def _connect(app: web.Application) -> bool:
    """Reach the store, clean up stale uploads and load the models; False if unreachable."""
    store, registry, state = app[STORE], app[REGISTRY], app[STORAGE]
    try:
        await store.ensure_ready()
        removed = await store.cleanup_temp()
        await registry.load_all()
    except StorageError as e:
        state.connected, state.error = False, str(e)
        return False
    state.connected, state.error = True, None
    if removed:
        logger.info("removed %d temporary uploads left by interrupted writes", removed)
    for line in registry.summary_lines():
        logger.info("%s", line)
    return True


async def _connect_with_backoff(app: web.Application) -> None:
    delay = BACKOFF_START
    while True:
        logger.warning(
            "storage unavailable, serving no stored model yet: %s; retrying in %g s",
            app[STORAGE].error,
            delay,
        )
        await asyncio.sleep(delay)
        try:
            if await _connect(app):
                logger.info("storage reachable again: %s", app[STORE].describe().location)
                return
        except Exception as e:
            app[STORAGE].error = f"{type(e).__name__}: {e}"
            logger.exception("loading the models failed unexpectedly")
        delay = min(delay * 2, BACKOFF_MAX)


async def _feedback(app: web.Application) -> AsyncIterator[None]:
    """The site database, when WISATA_DATA is one: its ratings store and the recent ratings."""
    database = app[CONFIG].database
    if database is None:
        yield
        return
    await asyncio.to_thread(seed_if_new, database)
    store = RatingsStore(database)
    feedback = Feedback(store, app[REGISTRY])
    try:
        await store.check()  # missing tables stop the start: DatabaseNotReady names the fix
        await feedback.refresh()
    except DatabaseUnavailable as e:
        logger.warning("the database is unavailable (%s); recommendations are served from the "
                       "models, ratings are refused until it answers", e)  # fmt: skip
    except BaseException:
        await store.close()
        raise
    app[FEEDBACK] = feedback
    logger.info(
        "ratings database: %s (%d recent ratings)", database.describe(), len(feedback.recent)
    )
    try:
        yield
    finally:
        await store.close()


async def _trainer(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    trainer = Trainer(
        app[REGISTRY],
        app[EXECUTOR],
        data_dir=config.data,
        key=config.artifact_key,
        hybrid_weight=config.hybrid_weight,
        group=app.get(GROUP),
    )
    app[TRAINER] = trainer
    announce(app)
    try:
        yield
    finally:
        await trainer.close()


async def _reloader(app: web.Application) -> AsyncIterator[None]:
    interval = app[CONFIG].reload_interval
    task = None
    if interval > 0:
        task = asyncio.create_task(_reload_forever(app, interval), name="wisata-reloader")
    try:
        yield
    finally:
        await _cancel(task)


async def _reload_forever(app: web.Application, interval: float) -> None:
    """Every ``interval`` seconds, load the artifacts whose stored version changed.

    And read the ratings newer than the served models again (another replica's, say).
    """
    registry, state = app[REGISTRY], app[STORAGE]
    while True:
        await asyncio.sleep(interval)
        await _refresh_recent(app)
        if not state.connected:  # the startup retry loop owns the store until it succeeds
            continue
        try:
            reloaded = await registry.refresh()
        except StorageError as e:
            logger.warning("checking for new model versions failed: %s; retrying in %g s", e,
                           interval)  # fmt: skip
        except Exception:
            logger.exception("checking for new model versions failed; retrying in %g s", interval)
        else:
            if reloaded:
                logger.info("loaded new stored versions of %s", ", ".join(reloaded))
        announce(app)


async def _refresh_recent(app: web.Application) -> None:
    feedback = app.get(FEEDBACK)
    if feedback is None:
        return
    was_reachable = feedback.reachable
    try:
        await feedback.refresh()
    except DatabaseUnavailable as e:
        if was_reachable:
            logger.warning("reading the recent ratings failed: %s", e)
        return
    if not was_reachable:
        logger.info("the database is reachable again: %s", feedback.store.database.describe())


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # it ended on its own before: say so rather than lose it
        logger.exception("background task %s had failed", task.get_name())
