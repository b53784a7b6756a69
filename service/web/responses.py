"""The API's answers: the types that write every response, and how they are written.

Responses are ``TypedDict`` types written by a :class:`~pydantic.TypeAdapter` built once: a
view fills a plain dict from trusted data (the models, the registry) and pydantic-core writes
it, without building a model instance per item (``python -m bench.web`` measures the
difference). The serving layer's reports (:class:`ModelStatus`, :class:`StoredArtifact`,
:class:`JobReport`, :class:`UnfinishedPublish`) are nested as they are.
:mod:`service.web.openapi` generates the document's responses from these types.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NotRequired, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from service.serving.journal import UnfinishedPublish
from service.serving.status import ModelState, ModelStatus, StoredArtifact
from service.serving.trainer import JobReport, JobState
from service.web.schemas import Algorithm, Backend, ModelName

__all__ = [
    "DatabaseReport",
    "ErrorBody",
    "Item",
    "Recommendations",
    "ScoredItem",
    "SimilarItems",
    "Status",
    "finite",
    "to_json",
]

T = TypeVar("T")


def finite(number: float) -> float:
    """``number`` if it is finite; a NaN or an infinity raise, as ``json.dumps`` would.

    What the views write with :meth:`~pydantic.TypeAdapter.dump_json` passes its floats
    through this first: pydantic-core would write them as ``null``, and an answer must fail
    loudly rather than carry a score that is not one.
    """
    if math.isfinite(number):
        return number
    raise ValueError(f"Out of range float values are not JSON compliant: {number!r}")


_dumps = functools.partial(json.dumps, allow_nan=False)


def to_json(adapter: TypeAdapter[T], data: T) -> bytes:
    """``data`` written as JSON by its response type; a NaN or an infinity anywhere raise.

    Through JSON-ready Python and ``json.dumps(allow_nan=False)``, for the answers whose floats
    come from reports (load times, metrics) rather than through :func:`finite`.
    """
    return _dumps(adapter.dump_python(data, mode="json")).encode()


# --- the types ----------------------------------------------------------------------------------


@with_config(ConfigDict(extra="allow"))
class ErrorBody(TypedDict):
    """Every error answer; the fields after ``message`` come with the errors they concern."""

    error: Annotated[str, Field(description="Machine-readable code.")]
    message: Annotated[str, Field(description="What was wrong and what to do.")]
    parameter: NotRequired[Annotated[str, Field(description="The parameter at fault (400).")]]
    model: NotRequired[Annotated[str, Field(description="The model concerned (404, 503).")]]
    reason: NotRequired[Annotated[str, Field(description="Why the model is not available.")]]
    item_id: NotRequired[Annotated[str, Field(description="The unknown item (404).")]]
    job_id: NotRequired[Annotated[str, Field(description="The job concerned (404, 409).")]]
    version_id: NotRequired[
        Annotated[str, Field(description="The stored version not found (404).")]
    ]
    links: NotRequired[Annotated[dict[str, str], Field(description="Where to follow it.")]]
    allowed: NotRequired[Annotated[list[str], Field(description="The methods allowed (405).")]]


class Health(TypedDict):
    status: Literal["ok"]


class Ready(TypedDict):
    ready: bool
    models: dict[str, ModelState]
    database: NotRequired[Annotated[str, Field(description="reachable, or why it is not.")]]


class NotReady(TypedDict):
    error: Literal["not_ready"]
    message: str
    ready: bool
    models: dict[str, ModelState]
    missing: Annotated[dict[str, str], Field(description="Each model not loaded, and why.")]
    database: NotRequired[Annotated[str, Field(description="reachable, or why it is not.")]]


class Item(TypedDict):
    """A destination, as every answer shows it."""

    id: str
    name: str
    categories: list[str]
    city: str | None


class ScoredItem(Item):
    score: float


class Recommendations(TypedDict):
    user_id: Annotated[str | None, Field(description="null for a visitor's own ratings.")]
    algorithm: Algorithm
    model_version: Annotated[str, Field(description="The start of the model's identity.")]
    cold_start: Annotated[bool, Field(description="Popular items answered: user unknown.")]
    items: list[ScoredItem]


class SimilarItems(TypedDict):
    item: Item
    algorithm: Algorithm
    model_version: str
    items: list[ScoredItem]


class JobLinks(TypedDict):
    self: str


class JobAccepted(TypedDict):
    job_id: str
    status: JobState
    models: list[ModelName]
    links: JobLinks


class StorageReport(TypedDict):
    """Where the artifacts are kept, and whether the last call there succeeded."""

    backend: Backend
    bucket: str | None
    prefix: str
    endpoint: str | None
    location: str
    reachable: bool
    error: str | None


class DatabaseReport(TypedDict):
    """The site's database, and the ratings newer than the served models kept in memory."""

    location: Annotated[str, Field(description="The database's URL, without its password.")]
    reachable: bool
    error: str | None
    recent_ratings: Annotated[int, Field(description="Ratings newer than a served model's.")]
    recent_users: Annotated[int, Field(description="Users with such ratings.")]


class WorkerReport(TypedDict):
    worker: Annotated[int, Field(description="The worker's number, 0 to WISATA_WORKERS - 1.")]
    pid: int
    models: Annotated[
        dict[str, str | None], Field(description="The model_version each model answers with.")
    ]


class Status(TypedDict):
    models: dict[str, ModelStatus]
    storage: StorageReport
    job: Annotated[JobReport | None, Field(description="The queued or running job.")]
    unfinished_publish: UnfinishedPublish | None
    database: NotRequired[Annotated[DatabaseReport, Field(description="When WISATA_DATA is one.")]]
    worker: NotRequired[
        Annotated[WorkerReport, Field(description="The worker that answered (WISATA_WORKERS > 1).")]
    ]
    workers: NotRequired[
        Annotated[list[WorkerReport], Field(description="What every live worker serves.")]
    ]


class RatingsStored(TypedDict):
    count: Annotated[int, Field(description="Ratings written (a pair given twice counts once).")]


class StoredRatingItem(TypedDict):
    item_id: str
    rating: float
    created_at: datetime


class UserRatings(TypedDict):
    user_id: str
    ratings: Annotated[list[StoredRatingItem], Field(description="Newest first.")]


class ReloadResult(TypedDict):
    reloaded: Annotated[list[ModelName], Field(description="The models swapped for new ones.")]
    models: dict[str, ModelStatus]


class Versions(TypedDict):
    model: ModelName
    versions: Annotated[list[StoredArtifact], Field(description="Newest first.")]


class RollbackResult(TypedDict):
    model: ModelStatus
    version_id: str


class RollbackNotServed(TypedDict):
    """The version is current in the store again, but it could not be served."""

    error: Literal["rollback_not_served"]
    message: str
    model: Annotated[ModelStatus, Field(description="The model still serving.")]


# The writers of the answers, built once (a TypeAdapter costs milliseconds to build).
RECOMMENDATIONS: Final = TypeAdapter(Recommendations)
SIMILAR_ITEMS: Final = TypeAdapter(SimilarItems)
ERROR_BODY: Final = TypeAdapter(ErrorBody)
HEALTH: Final = TypeAdapter(Health)
READY: Final = TypeAdapter(Ready)
NOT_READY: Final = TypeAdapter(NotReady)
DOCUMENT: Final = TypeAdapter(dict[str, Any])
STATUS: Final = TypeAdapter(Status)
JOB_ACCEPTED: Final = TypeAdapter(JobAccepted)
JOB: Final = TypeAdapter(JobReport)
RELOAD_RESULT: Final = TypeAdapter(ReloadResult)
VERSIONS: Final = TypeAdapter(Versions)
ROLLBACK_RESULT: Final = TypeAdapter(RollbackResult)
ROLLBACK_NOT_SERVED: Final = TypeAdapter(RollbackNotServed)
RATINGS_STORED: Final = TypeAdapter(RatingsStored)
USER_RATINGS: Final = TypeAdapter(UserRatings)
