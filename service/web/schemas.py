"""The API's requests: pydantic models of every query string and body, and the API's limits.

One definition per shape. The request models parse and check what clients send (the views
validate query strings and JSON bodies with them, :mod:`service.web.parsing`), and
:mod:`service.web.openapi` generates the document's parameters and request bodies from them;
the answers' types are in :mod:`service.web.responses`. Every limit, enum and default of the
API is a constant here, referenced wherever it applies.

Patterns run on Python's ``re`` (``regex_engine="python-re"``), as in the Python validators and
generators that read the document (jsonschema, schemathesis): ``\\S`` (not blank) then means
exactly what ``str.strip()`` means, as the hand-written checks did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints
from pydantic_core import PydanticCustomError

from service.ml.recommenders import MODEL_NAMES, Collaborative, ContentBased, Hybrid
from storage import StoreDescription

__all__ = [
    "ALGORITHMS",
    "CLIENT_MAX_SIZE",
    "DEFAULT_ALGORITHM",
    "DEFAULT_LIMIT",
    "MAX_ID_LENGTH",
    "MAX_LIMIT",
    "MAX_RATING",
    "MAX_RATINGS",
    "MAX_VERSION_ID_LENGTH",
    "NOT_BLANK",
    "RATED",
    "Algorithm",
    "Backend",
    "Feedback",
    "FeedbackRequest",
    "ModelName",
    "Rating",
    "RatingsRequest",
    "RecommendationsQuery",
    "RollbackRequest",
    "SimilarQuery",
    "bound_ratings",
]

# --- limits, enums and defaults -----------------------------------------------------------------

ALGORITHMS: Final[Mapping[str, str]] = {
    "content": ContentBased.name,
    "collaborative": Collaborative.name,
    "hybrid": Hybrid.name,
}
"""Public algorithm names -> the model that answers for each."""
DEFAULT_ALGORITHM: Final = "hybrid"
DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 100
MAX_RATINGS: Final = 1000
MAX_RATING: Final = 1000.0
MAX_ID_LENGTH: Final = 256
MAX_VERSION_ID_LENGTH: Final = 1024
CLIENT_MAX_SIZE: Final = 1024 * 1024
"""Largest request body accepted, in bytes; a larger one is answered 413."""
NOT_BLANK: Final = r"\S"
"""The pattern of a text that must not be blank (``str.strip()`` would leave something)."""
_MAX_QUERY_DIGITS: Final = 6
"""Longer digit strings in a query are refused unread, as before (no limit needs that many)."""

# The names are data (MODEL_NAMES, ALGORITHMS, the storage's backends), so their Literal types
# are built from them at run time; a type checker sees plain strings.
if TYPE_CHECKING:
    Algorithm = str
    BodyAlgorithm = str
    ModelName = str
    Backend = str
else:
    Algorithm = Literal[tuple(ALGORITHMS)]
    BodyAlgorithm = Literal[(*ALGORITHMS, "")]
    ModelName = Literal[MODEL_NAMES]
    Backend = get_type_hints(StoreDescription)["backend"]


# --- request fields -----------------------------------------------------------------------------


def _whole_number(value: object) -> int:
    """A query value of ASCII digits (with blanks around them) as its number."""
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _MAX_QUERY_DIGITS:
            return int(text)
    raise PydanticCustomError("whole_number", "Input should be a whole number")


def _number(value: object) -> float:
    """A query value as Python's ``float()`` reads it (``nan`` too, for the range to refuse)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise PydanticCustomError("number", "Input should be a number")


def _integral(value: object) -> object:
    """A JSON number with a zero fraction (``5.0``) as the integer JSON Schema takes it for."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _integer_as_digits(value: object) -> object:
    """A JSON integer item id as the string of its digits; anything else as it came."""
    value = _integral(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=NOT_BLANK)]
VersionId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_VERSION_ID_LENGTH, pattern=NOT_BLANK)
]
_IdNumber = Annotated[
    int,
    Strict(),
    # Exactly the integers whose digits (and sign) fit in an id.
    Field(ge=-(10 ** (MAX_ID_LENGTH - 1) - 1), le=10**MAX_ID_LENGTH - 1),
]
ItemId = Annotated[Id, BeforeValidator(_integer_as_digits, json_schema_input_type=Id | _IdNumber)]
# The constraints come before the validators that read the text, so that they constrain the
# number (and the document shows them as its bounds).
_QueryLimit = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_whole_number)]
_QueryLambda = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), BeforeValidator(_number)]
_BodyLimit = Annotated[int, Strict(), Field(ge=1, le=MAX_LIMIT), BeforeValidator(_integral)]
_BodyLambda = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]

_ALGORITHM_HELP: Final = "Which model answers."
_LIMIT_HELP: Final = "How many items to return."
_LAMBDA_HELP: Final = (
    "MMR trade-off of the hybrid, from 0 (diverse) to 1 (relevant); other algorithms ignore it."
)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, regex_engine="python-re")


# --- query strings ------------------------------------------------------------------------------
# A query model's fields are the route's query parameters, in order. An empty value counts as
# absent (the document says allowEmptyValue), and None stands for absent: a query string cannot
# carry a null, so the document leaves the null out.


class RecommendationsQuery(_Request):
    """The query of ``GET /api/frontend/recommendations``."""

    user_id: Id = Field(description="The user.")
    algorithm: Algorithm = Field(DEFAULT_ALGORITHM, description=_ALGORITHM_HELP)
    limit: _QueryLimit = Field(DEFAULT_LIMIT, description=_LIMIT_HELP)
    lambda_: _QueryLambda | None = Field(None, alias="lambda", description=_LAMBDA_HELP)


class SimilarQuery(_Request):
    """The query of ``GET /api/items/{id}/similar``."""

    algorithm: Algorithm = Field(DEFAULT_ALGORITHM, description=_ALGORITHM_HELP)
    limit: _QueryLimit = Field(DEFAULT_LIMIT, description=_LIMIT_HELP)


# --- bodies -------------------------------------------------------------------------------------


RatingValue = Annotated[
    float,
    Strict(),
    Field(
        ge=0,
        le=MAX_RATING,
        allow_inf_nan=False,
        description="A rating on the scale of the data the served models were trained on (the "
        "document's bounds follow it; 0 to 1000 while no model is served).",
    ),
]
RATED: Final = ("Rating", "Feedback")
"""The schemas whose ``rating`` bounds the served models' scale sets in the document."""


def bound_ratings(schemas: Mapping[str, dict[str, Any]], scale: tuple[float, float]) -> None:
    """Give the ``rating`` of each :data:`RATED` schema among ``schemas`` the bounds ``scale``.

    In place; ``schemas`` maps names to JSON Schemas (the document's components, or a model's
    ``$defs``), so the document and the messages refusing a rating name the same bounds.
    """
    for name in RATED:
        rating = schemas.get(name, {}).get("properties", {}).get("rating")
        if rating is not None:
            rating["minimum"], rating["maximum"] = scale


class Rating(_Request):
    """One rating of a visitor."""

    item_id: ItemId = Field(description="An item id; a whole number is read as its digits.")
    rating: RatingValue


class Feedback(_Request):
    """One rating a user gave, for the site's database."""

    user_id: Id = Field(description="Who rated.")
    item_id: ItemId = Field(description="The item rated; a whole number is read as its digits.")
    rating: RatingValue


class FeedbackRequest(_Request):
    """The body of ``POST /api/ratings``: ratings to store, 1 to :data:`MAX_RATINGS`."""

    ratings: list[Feedback] = Field(
        min_length=1, max_length=MAX_RATINGS, description="Written in one transaction, or not."
    )


class RatingsRequest(_Request):
    """The body of ``POST /api/recommendations``: a visitor's ratings, folded in."""

    ratings: list[Rating] = Field(
        max_length=MAX_RATINGS, description="The visitor's ratings; [] gets the popular items."
    )
    # null (and "" for the algorithm) mean the same as leaving the field out.
    algorithm: BodyAlgorithm | None = Field(DEFAULT_ALGORITHM, description=_ALGORITHM_HELP)
    limit: _BodyLimit | None = Field(DEFAULT_LIMIT, description=_LIMIT_HELP)
    lambda_: _BodyLambda | None = Field(None, alias="lambda", description=_LAMBDA_HELP)

    @property
    def chosen_algorithm(self) -> str:
        """The algorithm asked for, or the default."""
        return self.algorithm or DEFAULT_ALGORITHM

    @property
    def chosen_limit(self) -> int:
        """The number of items asked for, or the default."""
        return DEFAULT_LIMIT if self.limit is None else self.limit


class RollbackRequest(_Request):
    """The body of ``POST /api/ml/models/{name}/rollback``."""

    version_id: VersionId = Field(
        description="A version id from GET /api/ml/models/{name}/versions."
    )
