"""The feedback API through pytest-aiohttp's client, on a SQLite database and a local store.

Each test gets a database seeded with the demo data (as a first start seeds it) and the three
models trained from it and published, so the answers compared are those of models whose
watermark is the seed's. What is checked is what a site relies on: a stored rating changes the
user's next answer at once, without training; a refused batch writes nothing; the scale of the
data is enforced on every route that takes ratings; the routes follow the token rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.config import Config
from service.db import Database
from service.db.bulk import count_since
from service.errors import DatabaseNotReady
from service.ml.datasets import load_dataset
from service.serving.building import build_artifacts
from service.serving.imports import seed_if_new
from service.serving.publisher import Publisher
from service.web.app import create_app
from storage import open_store

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
RECS = "/api/frontend/recommendations"
ADMIN = "admin-token-123"
FEEDBACK = "feedback-token-456"


@pytest.fixture
async def site(tmp_path: Path) -> dict[str, str]:
    """A seeded SQLite database and a local store holding models trained from it."""
    url = f"sqlite:///{tmp_path / 'wisata.db'}"
    database = Database.parse(url)
    await asyncio.to_thread(seed_if_new, database)
    built = await asyncio.to_thread(build_artifacts, url, hybrid_weight=0.6)
    storage = (tmp_path / "models").as_uri()
    async with open_store(storage) as store:
        await store.ensure_ready()
        result = await Publisher(store).publish(built.artifacts)
        assert result.error is None
    return {"WISATA_DATA": url, "WISATA_STORAGE": storage}


@pytest.fixture
def serve(aiohttp_client: Any, site: dict[str, str]) -> MakeClient:
    async def make(**env: str) -> Client:
        variables = {**site, "WISATA_RELOAD_INTERVAL": "0", **env}
        client: Client = await aiohttp_client(create_app(Config.from_env(variables)))
        return client

    return make


async def call(client: Client, method: str, path: str, status: int, **kwargs: Any) -> Any:
    async with client.request(method, path, **kwargs) as response:
        text = await response.text()
        assert response.status == status, text
        assert response.content_type == "application/json", text
        return json.loads(text)


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["id"] for item in answer["items"]]


async def test_a_new_visitors_first_rating_ends_the_cold_start(serve: MakeClient) -> None:
    client = await serve()
    before = await call(client, "GET", RECS, 200, params={"user_id": "newcomer"})
    assert before["cold_start"] is True

    written = await call(
        client,
        "POST",
        "/api/ratings",
        201,
        json={"ratings": [{"user_id": "newcomer", "item_id": "5", "rating": 5}]},
    )

    assert written == {"count": 1}
    after = await call(client, "GET", RECS, 200, params={"user_id": "newcomer"})
    assert after["cold_start"] is False
    assert "5" not in ids(after)  # what the visitor rated is not recommended back
    assert ids(after) != ids(before)
    assert after["model_version"] == before["model_version"]  # no training happened


async def test_a_known_users_new_ratings_are_folded_in_with_the_trained_ones(
    serve: MakeClient, site: dict[str, str]
) -> None:
    client = await serve()
    before = await call(client, "GET", RECS, 200, params={"user_id": "u001", "limit": 20})
    dataset = load_dataset(site["WISATA_DATA"])
    trained = set(dataset.interactions.loc[dataset.interactions["user_id"] == "u001", "item_id"])
    assert not trained & set(ids(before))
    newly = ids(before)[:3]

    ratings = [{"user_id": "u001", "item_id": item, "rating": 5} for item in newly]
    await call(client, "POST", "/api/ratings", 201, json={"ratings": ratings})

    after = await call(client, "GET", RECS, 200, params={"user_id": "u001", "limit": 20})
    assert after["cold_start"] is False
    assert not (trained | set(newly)) & set(ids(after))
    listed = await call(client, "GET", "/api/users/u001/ratings", 200)
    assert {r["item_id"] for r in listed["ratings"]} == trained | set(newly)
    newest = listed["ratings"][: len(newly)]  # newest first
    assert {(r["item_id"], r["rating"]) for r in newest} == {(item, 5.0) for item in newly}


async def test_a_rerating_replaces_the_earlier_one(serve: MakeClient) -> None:
    client = await serve()
    for rating in (1, 4):
        body = {"ratings": [{"user_id": "visitor", "item_id": "3", "rating": rating}]}
        await call(client, "POST", "/api/ratings", 201, json=body)

    listed = await call(client, "GET", "/api/users/visitor/ratings", 200)
    assert [(r["item_id"], r["rating"]) for r in listed["ratings"]] == [("3", 4.0)]


@pytest.mark.parametrize(
    ("ratings", "status", "parameter"),
    [
        (
            [
                {"user_id": "v", "item_id": "1", "rating": 4},
                {"user_id": "v", "item_id": "no-such", "rating": 4},
            ],
            404,
            None,
        ),
        (
            [
                {"user_id": "v", "item_id": "1", "rating": 4},
                {"user_id": "v", "item_id": "2", "rating": 9},
            ],
            400,
            "ratings[1].rating",
        ),
        ([{"user_id": "v", "item_id": "1", "rating": 0.5}], 400, "ratings[0].rating"),
        ([{"user_id": "  ", "item_id": "1", "rating": 4}], 400, "ratings[0].user_id"),
        ([{"user_id": "", "item_id": "1", "rating": 4}], 400, "ratings[0].user_id"),
        ([], 400, "ratings"),
        ([{"user_id": "v", "item_id": "1", "rating": 4}] * 1001, 400, "ratings"),
    ],
)
async def test_a_refused_batch_writes_nothing(
    serve: MakeClient,
    site: dict[str, str],
    ratings: list[dict[str, Any]],
    status: int,
    parameter: str | None,
) -> None:
    client = await serve()
    database = Database.parse(site["WISATA_DATA"])
    rows = count_since(database, None)

    body = await call(client, "POST", "/api/ratings", status, json={"ratings": ratings})

    if parameter is not None:
        assert (body["error"], body["parameter"]) == ("bad_parameter", parameter)
    else:
        assert (body["error"], body["item_id"]) == ("unknown_item", "no-such")
    assert count_since(database, None) == rows
    assert (await call(client, "GET", "/api/users/v/ratings", 200))["ratings"] == []


async def test_the_fold_in_route_refuses_a_rating_off_the_datas_scale(serve: MakeClient) -> None:
    client = await serve()
    refused = await call(
        client, "POST", "/api/recommendations", 400,
        json={"ratings": [{"item_id": "1", "rating": 99}]},
    )  # fmt: skip
    assert refused["parameter"] == "ratings[0].rating"
    assert "1 to 5" in refused["message"]
    await call(
        client, "POST", "/api/recommendations", 200,
        json={"ratings": [{"item_id": "1", "rating": 5}]},
    )  # fmt: skip


async def test_the_document_bounds_ratings_by_the_served_scale(serve: MakeClient) -> None:
    client = await serve()
    document = await call(client, "GET", "/api/openapi.json", 200)

    schemas = document["components"]["schemas"]
    for name in ("Rating", "Feedback"):
        rating = schemas[name]["properties"]["rating"]
        assert (rating["minimum"], rating["maximum"]) == (1.0, 5.0)
    operation = document["paths"]["/api/ratings"]["post"]
    assert operation["security"] == [{"feedbackToken": []}, {"adminToken": []}]
    assert "/api/users/{user_id}/ratings" in document["paths"]


async def test_the_feedback_route_takes_the_feedback_or_the_admin_token(
    serve: MakeClient,
) -> None:
    client = await serve(WISATA_ADMIN_TOKEN=ADMIN, WISATA_FEEDBACK_TOKEN=FEEDBACK)
    body = {"ratings": [{"user_id": "v", "item_id": "1", "rating": 4}]}

    refused = await call(client, "POST", "/api/ratings", 401, json=body)
    assert "WISATA_FEEDBACK_TOKEN" in refused["message"]
    wrong = {"Authorization": "Bearer not-it"}
    await call(client, "POST", "/api/ratings", 401, json=body, headers=wrong)
    for token in (FEEDBACK, ADMIN):
        headers = {"Authorization": f"Bearer {token}"}
        await call(client, "POST", "/api/ratings", 201, json=body, headers=headers)
    # The feedback token opens nothing else.
    feedback = {"Authorization": f"Bearer {FEEDBACK}"}
    await call(client, "POST", "/api/ml/train-all", 401, headers=feedback)


async def test_status_and_readiness_report_the_database(serve: MakeClient) -> None:
    client = await serve()
    await call(
        client, "POST", "/api/ratings", 201,
        json={"ratings": [{"user_id": "v", "item_id": "1", "rating": 4}]},
    )  # fmt: skip

    status = await call(client, "GET", "/api/ml/status", 200)
    database = status["database"]
    assert database["reachable"] is True and database["error"] is None
    assert (database["recent_ratings"], database["recent_users"]) == (1, 1)
    assert status["models"]["hybrid"]["artifact"]["decoded"]["rating_scale"] == [1.0, 5.0]
    assert status["models"]["hybrid"]["artifact"]["decoded"]["data_rows"] == 8282
    ready = await call(client, "GET", "/readyz", 200)
    assert ready["database"] == "reachable"


async def test_another_replicas_ratings_count_within_the_reload_interval(
    serve: MakeClient,
) -> None:
    writer = await serve()
    reader = await serve(WISATA_RELOAD_INTERVAL="0.2")
    before = await call(reader, "GET", RECS, 200, params={"user_id": "elsewhere"})
    assert before["cold_start"] is True

    await call(
        writer, "POST", "/api/ratings", 201,
        json={"ratings": [{"user_id": "elsewhere", "item_id": "7", "rating": 5}]},
    )  # fmt: skip

    for _ in range(50):
        after = await call(reader, "GET", RECS, 200, params={"user_id": "elsewhere"})
        if not after["cold_start"]:
            break
        await asyncio.sleep(0.1)
    assert after["cold_start"] is False and "7" not in ids(after)


async def test_missing_tables_stop_the_start_naming_wisata_db_init(tmp_path: Path) -> None:
    bare = tmp_path / "bare.db"
    bare.write_bytes(b"")  # an existing file is not seeded: it is the site's own
    config = Config.from_env(
        {"WISATA_DATA": f"sqlite:///{bare}", "WISATA_STORAGE": str(tmp_path / "models")}
    )
    runner = web.AppRunner(create_app(config))
    try:
        with pytest.raises(DatabaseNotReady, match="wisata-db init") as failed:
            await runner.setup()
    finally:
        await runner.cleanup()
    assert "WISATA_DATA" in str(failed.value)


async def test_a_folder_source_has_no_feedback_routes(aiohttp_client: Any, tmp_path: Path) -> None:
    config = Config.from_env({"WISATA_STORAGE": str(tmp_path / "models")})
    client: Client = await aiohttp_client(create_app(config))
    await call(client, "POST", "/api/ratings", 404, json={"ratings": []})
    document = await call(client, "GET", "/api/openapi.json", 200)
    assert "/api/ratings" not in document["paths"]
