"""The API's schemas: one definition validates, and the document says exactly what it accepts.

The request bodies are checked against their own generated JSON Schema on arbitrary JSON
values (what the schema allows is accepted, what it forbids is refused); the query strings
keep the acceptance the hand-written parsers had (digits only for ``limit``, Python's
``float()`` for ``lambda``, ``str.strip()`` for a blank id).
"""

from __future__ import annotations

import math
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from pydantic import BaseModel, ValidationError

from service.errors import BadParameter
from service.serving.status import holdout_ndcg
from service.web import parsing
from service.web.openapi import build_document
from service.web.responses import finite
from service.web.schemas import (
    DEFAULT_LIMIT,
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_RATING,
    MAX_RATINGS,
    FeedbackRequest,
    RatingsRequest,
    RecommendationsQuery,
    RollbackRequest,
)

DOCUMENT = build_document()
COMPONENTS = DOCUMENT["components"]["schemas"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**300), 10**300)
    | st.floats()
    | st.floats(-1e3, 1e3).map(round).map(float)  # 5.0: an integer to JSON Schema
    | st.text(max_size=4)
    | st.sampled_from(["", " ", "\x1c", "\u00a0x", "content", "hybrid", "1", "0.5", "5"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
ratings = st.lists(
    st.fixed_dictionaries({}, optional={"item_id": values, "rating": values | st.floats(0, 1000)})
    | values,
    max_size=3,
)


def validator(component: str) -> jsonschema.Draft202012Validator:
    """A validator of one component of the document, its references resolved in it."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": {"schemas": COMPONENTS}}
    return jsonschema.Draft202012Validator(schema)


def accepted(model: type[BaseModel], instance: Any) -> bool:
    try:
        model.model_validate(instance)
    except ValidationError:
        return False
    return True


BODIES = validator("RatingsRequest")
ROLLBACKS = validator("RollbackRequest")


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "ratings": ratings | values,
            "algorithm": values,
            "limit": values,
            "lambda": values,
        },
    )
    | values
)
def test_a_ratings_body_is_accepted_exactly_when_the_document_allows_it(instance: Any) -> None:
    assert accepted(RatingsRequest, instance) == BODIES.is_valid(instance), instance


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({}, optional={"version_id": values}) | values)
def test_a_rollback_body_is_accepted_exactly_when_the_document_allows_it(instance: Any) -> None:
    assert accepted(RollbackRequest, instance) == ROLLBACKS.is_valid(instance), instance


def test_a_number_with_a_zero_fraction_is_the_integer_json_schema_reads() -> None:
    asked = RatingsRequest.model_validate(
        {"ratings": [{"item_id": -4766.0, "rating": 5}], "limit": 5.0}
    )
    assert (asked.ratings[0].item_id, asked.limit) == ("-4766", 5)
    with pytest.raises(ValidationError):
        RatingsRequest.model_validate({"ratings": [], "limit": 5.5})


def parsed(query: dict[str, str] | list[tuple[str, str]]) -> RecommendationsQuery:
    return parsing.parse_query(MultiDict(query), RecommendationsQuery)


@pytest.mark.parametrize(
    ("given", "field", "value"),
    [
        ({"limit": " 7 "}, "limit", 7),
        ({"limit": "0007"}, "limit", 7),
        ({"limit": ""}, "limit", DEFAULT_LIMIT),
        ({"lambda": "1e-1"}, "lambda_", 0.1),
        ({"lambda": " .5 "}, "lambda_", 0.5),
        ({"lambda": "\uff10.\uff15"}, "lambda_", 0.5),  # float() reads any Unicode digits
        ({"lambda": ""}, "lambda_", None),
        ({"algorithm": ""}, "algorithm", "hybrid"),
        ({"user_id": "u" * MAX_ID_LENGTH}, "user_id", "u" * MAX_ID_LENGTH),
        ({"user_id": " u1 "}, "user_id", " u1 "),
    ],
)
def test_query_values_read_as_before(given: dict[str, str], field: str, value: object) -> None:
    assert getattr(parsed({"user_id": "u1", **given}), field) == value


@pytest.mark.parametrize(
    ("given", "parameter"),
    [
        ({"limit": "+7"}, "limit"),
        ({"limit": "7.0"}, "limit"),
        ({"limit": "\u0667"}, "limit"),  # an Arabic-Indic 7: digits are ASCII digits
        ({"limit": "0000007"}, "limit"),  # seven characters: refused unread
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"lambda": "nan"}, "lambda"),
        ({"lambda": "-inf"}, "lambda"),
        ({"lambda": "1.0000001"}, "lambda"),
        ({"user_id": "\x1c"}, "user_id"),  # blank to str.strip(), though not to every regex
        ({"user_id": "\u00a0\u3000"}, "user_id"),
        ({"user_id": "u" * (MAX_ID_LENGTH + 1)}, "user_id"),
        ({"algorithm": "HYBRID"}, "algorithm"),
    ],
)
def test_query_values_refused_as_before(given: dict[str, str], parameter: str) -> None:
    with pytest.raises(BadParameter) as refused:
        parsed({"user_id": "u1", **given})
    assert refused.value.parameter == parameter
    assert "send" in str(refused.value)  # says what to send instead


def test_a_repeated_parameter_is_refused_in_the_order_the_fields_are_checked() -> None:
    with pytest.raises(BadParameter, match="more than once") as refused:
        parsed([("user_id", "u1"), ("limit", "3"), ("limit", "")])
    assert refused.value.parameter == "limit"
    with pytest.raises(BadParameter, match="required") as first:
        parsed([("limit", "3"), ("limit", "4")])
    assert first.value.parameter == "user_id"


def test_a_recurring_query_string_is_parsed_once_and_a_bad_one_refused_each_time() -> None:
    def asked(target: str) -> RecommendationsQuery:
        return parsing.query(make_mocked_request("GET", target), RecommendationsQuery)

    first = asked("/api/frontend/recommendations?user_id=u9&limit=3")
    assert asked("/api/frontend/recommendations?user_id=u9&limit=3") is first
    assert asked("/api/frontend/recommendations?limit=3&user_id=u9") == first
    for _ in range(2):
        with pytest.raises(BadParameter, match="user_id"):
            asked("/api/frontend/recommendations?limit=3")


def test_the_document_takes_its_limits_from_the_models() -> None:
    operation = DOCUMENT["paths"]["/api/frontend/recommendations"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert list(parameters) == ["user_id", "algorithm", "limit", "lambda"]
    assert parameters["user_id"]["required"] and "allowEmptyValue" not in parameters["user_id"]
    limit = parameters["limit"]
    assert limit["allowEmptyValue"] is True
    assert (limit["schema"]["maximum"], limit["schema"]["default"]) == (MAX_LIMIT, DEFAULT_LIMIT)
    assert parameters["lambda"]["schema"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert COMPONENTS["RatingsRequest"]["properties"]["ratings"]["maxItems"] == MAX_RATINGS
    assert DOCUMENT["openapi"].startswith("3.1")


def test_the_holdout_ndcg_under_each_spelling() -> None:
    assert holdout_ndcg({"ndcg_at_10": 0.3, "ndcg@10": 0.2, "ndcg": 0.1}) == 0.3
    assert holdout_ndcg({"ndcg@10": 0.2, "ndcg": 0.1}) == 0.2
    assert holdout_ndcg({"ndcg": 0.1, "coverage": 0.5}) == 0.1
    assert holdout_ndcg({"ndcg_at_10": math.nan, "ndcg": 0.1}) == 0.1
    assert holdout_ndcg({"coverage": 0.5}) is None


def test_a_score_that_is_not_a_number_fails_loudly() -> None:
    assert finite(0.25) == 0.25
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="not JSON compliant"):
            finite(bad)


@pytest.mark.parametrize(
    ("ratings", "problem"),
    [
        ([], f"is empty; send a list of 1 to {MAX_RATINGS} entries, each an object"),
        (
            [{"user_id": "v", "item_id": "1", "rating": 4}] * (MAX_RATINGS + 1),
            f"holds {MAX_RATINGS + 1} entries; send a list of 1 to {MAX_RATINGS} entries",
        ),
    ],
)
def test_a_feedback_batch_of_the_wrong_size_is_refused_with_its_bounds(
    ratings: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(BadParameter) as refused:
        parsing.parse_body({"ratings": ratings}, FeedbackRequest)
    assert refused.value.parameter == "ratings"
    assert problem in str(refused.value)


@pytest.mark.parametrize("rating", [math.nan, 2000.0, "five", True, None])
def test_a_refused_rating_is_told_the_served_scale(rating: object) -> None:
    asked: list[str] = []

    def served() -> tuple[float, float]:
        asked.append("scale")
        return (1.0, 5.0)

    entry = {"user_id": "v", "item_id": "1", "rating": rating}
    with pytest.raises(BadParameter) as refused:
        parsing.parse_body({"ratings": [entry]}, FeedbackRequest, served)
    assert refused.value.parameter == "ratings[0].rating"
    assert str(refused.value).endswith("send a number from 1 to 5")
    with pytest.raises(BadParameter, match=f"send a number from 0 to {MAX_RATING:g}$"):
        parsing.parse_body({"ratings": [entry]}, FeedbackRequest)  # nothing served

    accepted = parsing.parse_body({"ratings": [{**entry, "rating": 4}]}, FeedbackRequest, served)
    assert accepted.ratings[0].rating == 4.0
    assert asked == ["scale"]  # read for the refusal only
