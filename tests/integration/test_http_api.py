"""The HTTP API, through pytest-aiohttp's client against ``create_app`` on a real store.

Stores are a local folder under ``tmp_path`` or a bucket on the session's moto server; where
storage has to fail and come back, the service reaches moto through a TCP proxy on a fixed port
that the test closes and reopens. Models are the demo artifacts, built once per module.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_openapi

from service import artifacts
from service.config import Config
from service.ml.datasets import load_dataset
from service.ml.recommenders import MODEL_NAMES, Hybrid, Recommender
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import artifact_key
from service.serving.trainer import build_artifacts
from service.web.app import CLIENT_MAX_SIZE, create_app
from service.web.middlewares import error_middleware
from storage import StoreSettings, open_store
from tests.s3server import CuttableProxy, free_port

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
TOKEN = "s3cret-admin-token"
KNOWN_USER = "u001"


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> dict[str, bytes]:
    """The three demo artifacts, as a training job would publish them."""
    return build_artifacts(SAMPLE_DATA_DIR).artifacts


@pytest.fixture(scope="module")
def other_content() -> bytes:
    """A content model other than the demo's (trained on half of the ratings)."""
    dataset = load_dataset(SAMPLE_DATA_DIR)
    half = dataset.with_interactions(dataset.interactions.iloc[::2])
    return build_artifacts(half, ["content_based"]).artifacts["content_based"]


@pytest.fixture(scope="module")
def models(demo: dict[str, bytes]) -> dict[str, Recommender]:
    """The demo models loaded here, to compute what the service must answer."""
    loaded = {name: artifacts.load(data)[0] for name, data in demo.items()}
    hybrid = loaded["hybrid"]
    assert isinstance(hybrid, Hybrid)
    hybrid.attach(loaded["content_based"], loaded["collaborative"])  # type: ignore[arg-type]
    return loaded  # type: ignore[return-value]


def sha(data: bytes) -> str:
    return artifacts.read_header(data).payload_sha256


async def seed(url: str, items: Mapping[str, bytes], endpoint: str | None = None) -> None:
    """Publish artifacts as another writer (the retrain job, another replica) would."""
    async with open_store(
        url, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True)
    ) as store:
        await store.ensure_ready()
        for name, data in items.items():
            header = artifacts.read_header(data)
            await store.put(artifact_key(name), data, artifacts.to_metadata(header))


async def write_raw(url: str, name: str, data: bytes, endpoint: str | None = None) -> None:
    async with open_store(
        url, StoreSettings(endpoint=endpoint, create_bucket=True, versioning=True)
    ) as store:
        await store.ensure_ready()
        await store.put(artifact_key(name), data, {"model": name})


def s3_url() -> str:
    return f"s3://test-{uuid.uuid4().hex[:16]}/wisata"


def versioned_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, str | None, dict[str, str]]:
    """A new versioned store on ``backend`` ("local" or "s3"): URL, S3 endpoint, variables."""
    if backend == "s3":
        endpoint: str = request.getfixturevalue("s3_endpoint")
        return s3_url(), endpoint, {"WISATA_S3_ENDPOINT": endpoint}
    return (tmp_path / "models").as_uri(), None, {}


@pytest.fixture
def serve(aiohttp_client: Any) -> MakeClient:
    """Start the service on a store URL with extra ``WISATA_*`` variables; return its client."""

    async def make(storage: str, **env: str) -> Client:
        variables = {"WISATA_STORAGE": storage, "WISATA_RELOAD_INTERVAL": "0", **env}
        client: Client = await aiohttp_client(create_app(Config.from_env(variables)))
        return client

    return make


@pytest.fixture
async def local(tmp_path: Path, demo: dict[str, bytes]) -> str:
    """A local store holding the three demo artifacts."""
    url = (tmp_path / "models").as_uri()
    await seed(url, demo)
    return url


async def call(
    client: Client, method: str, path: str, status: int, **kwargs: Any
) -> dict[str, Any]:
    """Send a request, check its status and that the answer is JSON; return the body."""
    async with client.request(method, path, **kwargs) as response:
        text = await response.text()
        assert response.status == status, text
        assert response.content_type == "application/json", text
        body: dict[str, Any] = json.loads(text)
        return body


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def state_of(client: Client, name: str) -> dict[str, Any]:
    status = await call(client, "GET", "/api/ml/status", 200)
    model: dict[str, Any] = status["models"][name]
    return model


class FixedPortProxy(CuttableProxy):
    """The shared TCP proxy, but on a port chosen in advance, so it can stop and start again."""

    def __init__(self, upstream: str, port: int) -> None:
        super().__init__(upstream)
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    async def start(self) -> str:
        self.was_cut = False
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self.endpoint


@pytest.fixture
async def proxy(s3_endpoint: str) -> AsyncIterator[FixedPortProxy]:
    """A proxy to the moto server on a free port; not listening until the test starts it."""
    server = FixedPortProxy(s3_endpoint, free_port())
    yield server
    await server.close()


@pytest.fixture
def no_unexpected_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail the test if the error middleware logged an unexpected exception (a 500)."""
    caplog.set_level(logging.WARNING, logger="service.web.middlewares")
    yield
    unexpected = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert not unexpected, [r.getMessage() for r in unexpected]


# --- recommendations ----------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["2048", "0"])
async def test_recommendations_are_the_served_models_answers(
    serve: MakeClient,
    local: str,
    demo: dict[str, bytes],
    models: dict[str, Recommender],
    cache: str,
) -> None:
    client = await serve(local, WISATA_RESPONSE_CACHE=cache)
    # Twice: the second round is answered from the cache when there is one.
    for algorithm, name in 2 * (
        ("content", "content_based"),
        ("collaborative", "collaborative"),
        ("hybrid", "hybrid"),
    ):
        body = await call(
            client,
            "GET",
            "/api/frontend/recommendations",
            200,
            params={"user_id": KNOWN_USER, "algorithm": algorithm, "limit": "7"},
        )
        expected = models[name].recommend(KNOWN_USER, n=7)
        assert body["user_id"] == KNOWN_USER
        assert body["algorithm"] == algorithm
        if name == "hybrid":  # its version also names its sub-models: see test_registry.py
            assert len(body["model_version"]) == 12
        else:
            assert body["model_version"] == sha(demo[name])[:12]
        assert body["cold_start"] is False
        assert [(i["id"], i["score"]) for i in body["items"]] == expected.items
        for item in body["items"]:
            assert item == {**models[name].catalogue_.describe(item["id"]), "score": item["score"]}

    default = await call(
        client, "GET", "/api/frontend/recommendations", 200, params={"user_id": KNOWN_USER}
    )
    assert default["algorithm"] == "hybrid"
    assert len(default["items"]) == 10

    stranger = await call(
        client, "GET", "/api/frontend/recommendations", 200, params={"user_id": "nobody-999"}
    )
    assert stranger["cold_start"] is True
    assert len(stranger["items"]) == 10
    text = await (await client.get("/metrics")).text()
    hits = 3 if cache != "0" else 0
    assert f'wisata_response_cache_lookups_total{{outcome="hit"}} {hits}.0' in text


async def test_lambda_reaches_the_hybrid_only(
    serve: MakeClient, local: str, models: dict[str, Recommender]
) -> None:
    client = await serve(local)
    for lam in (0.0, 1.0):
        body = await call(
            client,
            "GET",
            "/api/frontend/recommendations",
            200,
            params={"user_id": KNOWN_USER, "lambda": str(lam), "limit": "10"},
        )
        expected = models["hybrid"].recommend(KNOWN_USER, n=10, mmr_lambda=lam)
        assert [(i["id"], i["score"]) for i in body["items"]] == expected.items
    content = await call(
        client,
        "GET",
        "/api/frontend/recommendations",
        200,
        params={"user_id": KNOWN_USER, "algorithm": "content", "lambda": "0"},
    )
    plain = models["content_based"].recommend(KNOWN_USER, n=10)
    assert [(i["id"], i["score"]) for i in content["items"]] == plain.items


async def test_fold_in_for_a_visitor_without_an_account(
    serve: MakeClient, local: str, models: dict[str, Recommender]
) -> None:
    client = await serve(local)
    ratings = [{"item_id": "1", "rating": 5}, {"item_id": "24", "rating": 4.5}]
    body = await call(
        client,
        "POST",
        "/api/recommendations",
        200,
        json={"ratings": ratings, "algorithm": "collaborative", "limit": 5},
    )
    expected = models["collaborative"].recommend_for_ratings([("1", 5.0), ("24", 4.5)], n=5)
    assert body["user_id"] is None
    assert body["cold_start"] is False
    assert [(i["id"], i["score"]) for i in body["items"]] == expected.items
    assert not {"1", "24"} & {i["id"] for i in body["items"]}

    # Numeric ids are accepted as the strings they stand for; no ratings -> popular items.
    numeric = await call(
        client, "POST", "/api/recommendations", 200, json={"ratings": [{"item_id": 1, "rating": 5}]}
    )
    assert numeric["algorithm"] == "hybrid" and numeric["cold_start"] is False
    empty = await call(client, "POST", "/api/recommendations", 200, json={"ratings": []})
    assert empty["cold_start"] is True


async def test_similar_items(serve: MakeClient, local: str, models: dict[str, Recommender]) -> None:
    client = await serve(local)
    body = await call(
        client, "GET", "/api/items/24/similar", 200, params={"limit": "4", "algorithm": "content"}
    )
    assert body["item"] == models["content_based"].catalogue_.describe("24")
    expected = models["content_based"].similar_items("24", n=4)
    assert [(i["id"], i["score"]) for i in body["items"]] == expected
    assert "24" not in {i["id"] for i in body["items"]}


# --- bad input ----------------------------------------------------------------------------------

RECS = "/api/frontend/recommendations"
BAD_QUERIES = [
    ({}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "u" * 300}, "user_id"),
    ({"user_id": "u001", "algorithm": "neural"}, "algorithm"),
    ({"user_id": "u001", "limit": "0"}, "limit"),
    ({"user_id": "u001", "limit": "101"}, "limit"),
    ({"user_id": "u001", "limit": "-1"}, "limit"),
    ({"user_id": "u001", "limit": "2.5"}, "limit"),
    ({"user_id": "u001", "limit": "ten"}, "limit"),
    ({"user_id": "u001", "limit": "9" * 40}, "limit"),
    ({"user_id": "u001", "lambda": "1.5"}, "lambda"),
    ({"user_id": "u001", "lambda": "-0.1"}, "lambda"),
    ({"user_id": "u001", "lambda": "nan"}, "lambda"),
    ({"user_id": "u001", "lambda": "inf"}, "lambda"),
    ({"user_id": "u001", "lambda": "half"}, "lambda"),
]
DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES: list[tuple[str | bytes, str]] = [
    (b"", "body"),
    (b"{not json", "body"),
    (b"\xff\xfe\x00garbage", "body"),
    (DEEP, "body"),
    ("[1, 2]", "body"),
    ("{}", "ratings"),
    ('{"ratings": {"1": 5}}', "ratings"),
    (json.dumps({"ratings": [{"item_id": "1", "rating": 5}] * 1001}), "ratings"),
    ('{"ratings": [5]}', "ratings[0]"),
    ('{"ratings": [{"rating": 5}]}', "ratings[0].item_id"),
    ('{"ratings": [{"item_id": true, "rating": 5}]}', "ratings[0].item_id"),
    ('{"ratings": [{"item_id": "1", "rating": 5}, {"item_id": "2"}]}', "ratings[1].rating"),
    ('{"ratings": [{"item_id": "1", "rating": "5"}]}', "ratings[0].rating"),
    ('{"ratings": [{"item_id": "1", "rating": -1}]}', "ratings[0].rating"),
    ('{"ratings": [{"item_id": "1", "rating": 1e400}]}', "ratings[0].rating"),
    ('{"ratings": [{"item_id": "1", "rating": ' + "9" * 400 + "}]}", "ratings[0].rating"),
    ('{"ratings": [{"item_id": "1", "rating": NaN}]}', "ratings[0].rating"),
    ('{"ratings": [], "limit": "5"}', "limit"),
    ('{"ratings": [], "limit": true}', "limit"),
    ('{"ratings": [], "limit": 500}', "limit"),
    ('{"ratings": [], "lambda": 3}', "lambda"),
    ('{"ratings": [], "lambda": ' + "9" * 400 + "}", "lambda"),
    ('{"ratings": [], "algorithm": 7}', "algorithm"),
    ('{"ratings": [], "algorithm": "svd"}', "algorithm"),
]


async def test_every_bad_parameter_is_a_400_naming_it(
    serve: MakeClient, local: str, no_unexpected_errors: None
) -> None:
    client = await serve(local)
    for query, parameter in BAD_QUERIES:
        body = await call(client, "GET", RECS, 400, params=query)
        assert body["error"] == "bad_parameter", query
        assert body["parameter"] == parameter, (query, body)
        assert parameter in body["message"]
    for raw, parameter in BAD_BODIES:
        headers = {"Content-Type": "application/json"}
        body = await call(client, "POST", "/api/recommendations", 400, data=raw, headers=headers)
        assert (body["error"], body["parameter"]) == ("bad_parameter", parameter), (raw[:80], body)
    twice = await call(client, "GET", f"{RECS}?user_id=u001&limit=3&limit=4", 400)
    assert twice["parameter"] == "limit"
    for query, parameter in (({"limit": "0"}, "limit"), ({"algorithm": "x"}, "algorithm")):
        body = await call(client, "GET", "/api/items/1/similar", 400, params=query)
        assert body["parameter"] == parameter
    for raw, parameter in (("{}", "version_id"), ('{"version_id": 5}', "version_id")):
        body = await call(client, "POST", "/api/ml/models/content_based/rollback", 400, data=raw)
        assert body["parameter"] == parameter


async def test_a_bogus_charset_does_not_matter(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    headers = {"Content-Type": "application/json; charset=no-such-charset"}
    body = await call(
        client, "POST", "/api/recommendations", 200, data='{"ratings": []}', headers=headers
    )
    assert body["cold_start"] is True


async def test_a_body_over_one_mebibyte_is_a_413(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    start = b'{"ratings": []}'
    # Valid JSON either way: only the size decides. (BytesIO: aiohttp warns about big bytes.)
    too_big = io.BytesIO(start + b" " * (CLIENT_MAX_SIZE + 1 - len(start)))
    body = await call(client, "POST", "/api/recommendations", 413, data=too_big)
    assert body["error"] == "request_too_large"
    assert str(CLIENT_MAX_SIZE) in body["message"]
    just_fits = io.BytesIO(start + b" " * (CLIENT_MAX_SIZE - len(start)))
    await call(client, "POST", "/api/recommendations", 200, data=just_fits)


async def test_unknown_things_are_404s(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    body = await call(client, "GET", "/no/such/route", 404)
    assert body["error"] == "not_found" and "/no/such/route" in body["message"]
    body = await call(client, "GET", "/api/items/no-such-item/similar", 404)
    assert (body["error"], body["item_id"]) == ("unknown_item", "no-such-item")
    body = await call(
        client,
        "POST",
        "/api/recommendations",
        404,
        json={"ratings": [{"item_id": "1", "rating": 4}, {"item_id": "zzz", "rating": 4}]},
    )
    assert (body["error"], body["item_id"]) == ("unknown_item", "zzz")
    for method, path in (
        ("POST", "/api/ml/train/deep_learning"),
        ("GET", "/api/ml/models/deep_learning/versions"),
        ("POST", "/api/ml/models/deep_learning/rollback"),
    ):
        body = await call(client, method, path, 404, json={"version_id": "v"})
        assert (body["error"], body["model"]) == ("unknown_model", "deep_learning")
        assert "content_based" in body["message"]  # says which models exist
    body = await call(client, "GET", "/api/ml/jobs/0123456789ab", 404)
    assert (body["error"], body["job_id"]) == ("unknown_job", "0123456789ab")
    body = await call(
        client,
        "POST",
        "/api/ml/models/content_based/rollback",
        404,
        json={"version_id": "20200101T000000000000Z-deadbeef"},
    )
    assert body["error"] == "not_found"


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_a_rollback_to_a_version_the_store_lacks_names_it_and_where_to_look(
    serve: MakeClient,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    demo: dict[str, bytes],
    backend: str,
) -> None:
    url, endpoint, env = versioned_store(backend, request, tmp_path)
    await seed(url, demo, endpoint=endpoint)
    client = await serve(url, **env)
    before = await state_of(client, "content_based")

    missing = "20200101T000000000000Z-deadbeef"
    body = await call(
        client, "POST", "/api/ml/models/content_based/rollback", 404, json={"version_id": missing}
    )
    assert (body["error"], body["model"], body["version_id"]) == (
        "not_found",
        "content_based",
        missing,
    )
    assert "GET /api/ml/models/content_based/versions" in body["message"]
    assert "versions()" not in body["message"]  # the API's words, not the storage library's
    assert await state_of(client, "content_based") == before  # still serving what it served


async def test_wrong_method_is_a_405_listing_the_allowed_ones(
    serve: MakeClient, local: str
) -> None:
    client = await serve(local)
    for method, path, allowed in (
        ("DELETE", "/healthz", ["GET"]),
        ("GET", "/api/ml/train-all", ["POST"]),
        ("PUT", "/api/recommendations", ["POST"]),
    ):
        async with client.request(method, path) as response:
            assert response.status == 405
            assert response.headers["Allow"] == ",".join(allowed)
            body = await response.json()
        assert body["error"] == "method_not_allowed"
        assert body["allowed"] == allowed


async def test_untrained_models_are_503s_that_say_how_to_train(
    serve: MakeClient, tmp_path: Path
) -> None:
    client = await serve((tmp_path / "empty").as_uri())
    for algorithm, name in (("content", "content_based"), ("hybrid", "hybrid")):
        body = await call(
            client, "GET", RECS, 503, params={"user_id": KNOWN_USER, "algorithm": algorithm}
        )
        assert (body["error"], body["model"]) == ("model_not_trained", name)
        assert "POST /api/ml/train-all" in body["message"]
    body = await call(client, "GET", "/api/items/1/similar", 503)
    assert body["model"] == "hybrid"
    body = await call(client, "POST", "/api/recommendations", 503, json={"ratings": []})
    assert body["error"] == "model_not_trained"
    assert (await call(client, "GET", "/healthz", 200)) == {"status": "ok"}
    ready = await call(client, "GET", "/readyz", 503)
    assert set(ready["missing"]) == set(MODEL_NAMES)


# --- startup ------------------------------------------------------------------------------------


async def test_a_corrupt_artifact_fails_alone(
    serve: MakeClient, local: str, demo: dict[str, bytes]
) -> None:
    damaged = bytearray(demo["hybrid"])
    damaged[-1] ^= 0xFF
    await write_raw(local, "hybrid", bytes(damaged))
    client = await serve(local)

    hybrid = await state_of(client, "hybrid")
    assert hybrid["state"] == "failed"
    assert "ChecksumMismatch" in hybrid["reason"]
    for name in ("content_based", "collaborative"):
        assert (await state_of(client, name))["checksum"] == sha(demo[name])
    await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER, "algorithm": "content"})
    body = await call(client, "GET", RECS, 503, params={"user_id": KNOWN_USER})
    assert body["model"] == "hybrid"
    assert (await call(client, "GET", "/healthz", 200))["status"] == "ok"
    ready = await call(client, "GET", "/readyz", 503)
    assert list(ready["missing"]) == ["hybrid"]
    assert ready["models"]["content_based"] == "loaded"
    text = await (await client.get("/metrics")).text()
    assert 'wisata_model_loads_total{model="hybrid",outcome="failed"} 1.0' in text
    assert 'wisata_model_loads_total{model="content_based",outcome="loaded"} 1.0' in text


async def test_storage_down_at_startup_then_up(
    serve: MakeClient, proxy: FixedPortProxy, demo: dict[str, bytes]
) -> None:
    url = s3_url()
    client = await serve(url, WISATA_S3_ENDPOINT=proxy.endpoint, WISATA_RELOAD_INTERVAL="0.2")

    status = await call(client, "GET", "/api/ml/status", 200)
    assert status["storage"]["reachable"] is False
    assert status["storage"]["error"]
    assert status["storage"]["backend"] == "s3"
    assert {m["state"] for m in status["models"].values()} == {"not_trained"}
    assert (await call(client, "GET", "/healthz", 200))["status"] == "ok"
    ready = await call(client, "GET", "/readyz", 503)
    assert ready["message"].startswith("the artifact store is unreachable")
    body = await call(client, "POST", "/api/ml/reload", 503)
    assert body["error"] == "storage_unavailable"
    body = await call(client, "GET", "/api/ml/models/hybrid/versions", 503)
    assert body["error"] == "storage_unavailable"
    body = await call(
        client, "POST", "/api/ml/models/hybrid/rollback", 503, json={"version_id": "v1"}
    )
    assert body["error"] == "storage_unavailable"

    await proxy.start()
    await seed(url, demo, endpoint=proxy.endpoint)

    async def ready() -> bool:
        async with client.get("/readyz") as response:
            return response.status == 200

    await eventually(ready, "the models to load once storage is up")
    status = await call(client, "GET", "/api/ml/status", 200)
    assert status["storage"]["reachable"] is True and status["storage"]["error"] is None
    assert status["models"]["hybrid"]["checksum"] == sha(demo["hybrid"])


async def test_serving_goes_on_while_storage_is_away(
    serve: MakeClient, proxy: FixedPortProxy, demo: dict[str, bytes], other_content: bytes
) -> None:
    url = s3_url()
    await proxy.start()
    await seed(url, demo, endpoint=proxy.endpoint)
    client = await serve(url, WISATA_S3_ENDPOINT=proxy.endpoint, WISATA_RELOAD_INTERVAL="0.2")
    await call(client, "GET", "/readyz", 200)

    proxy.cut()

    async def unreachable() -> bool:
        status = await call(client, "GET", "/api/ml/status", 200)
        return status["storage"]["reachable"] is False

    await eventually(unreachable, "the reloader to notice storage is away")
    await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER})
    await call(client, "GET", "/readyz", 200)
    body = await call(client, "POST", "/api/ml/reload", 503)
    assert body["error"] == "storage_unavailable" and body["message"]

    await proxy.start()
    await seed(url, {"content_based": other_content}, endpoint=proxy.endpoint)

    async def reloaded() -> bool:
        checksum = (await state_of(client, "content_based"))["checksum"]
        return bool(checksum == sha(other_content))

    await eventually(reloaded, "the reloader, still running, to load the new version")
    status = await call(client, "GET", "/api/ml/status", 200)
    assert status["storage"]["reachable"] is True


# --- new versions without a restart -------------------------------------------------------------


async def test_hot_reload_after_another_writer(
    serve: MakeClient, s3_endpoint: str, demo: dict[str, bytes], other_content: bytes
) -> None:
    url = s3_url()
    await seed(url, demo, endpoint=s3_endpoint)
    client = await serve(url, WISATA_S3_ENDPOINT=s3_endpoint, WISATA_RELOAD_INTERVAL="0.2")
    before = await state_of(client, "content_based")
    query = {"user_id": KNOWN_USER, "algorithm": "content"}
    old = await call(client, "GET", RECS, 200, params=query)
    assert old["model_version"] == sha(demo["content_based"])[:12]

    await seed(url, {"content_based": other_content}, endpoint=s3_endpoint)

    async def swapped() -> bool:
        checksum = (await state_of(client, "content_based"))["checksum"]
        return bool(checksum == sha(other_content))

    await eventually(swapped, "the reloader to swap in the new content model")
    after = await state_of(client, "content_based")
    assert after["artifact"]["etag"] != before["artifact"]["etag"]
    assert after["artifact"]["version_id"] != before["artifact"]["version_id"]
    # The same query is answered by the new model, not from an answer kept for the old one.
    body = await call(client, "GET", RECS, 200, params=query)
    assert body["model_version"] == sha(other_content)[:12]
    assert body["items"] != old["items"]
    # The hybrid keeps serving with the sub-models it was built with, and says it is stale.
    hybrid = await state_of(client, "hybrid")
    assert hybrid["state"] == "stale" and "content_based" in hybrid["reason"]
    await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER})
    ready = await call(client, "GET", "/readyz", 503)
    assert list(ready["missing"]) == ["hybrid"]

    async def counted() -> bool:
        # The swap shows before the check that made it has finished (and been counted).
        text = await (await client.get("/metrics")).text()
        return 'wisata_model_reloads_total{model="content_based"} 1.0' in text

    await eventually(counted, "the reload to be counted")


async def test_forced_reload_and_a_bad_new_version(
    serve: MakeClient, local: str, demo: dict[str, bytes], other_content: bytes
) -> None:
    client = await serve(local)
    body = await call(client, "POST", "/api/ml/reload", 200)
    assert body["reloaded"] == []

    await seed(local, {"content_based": other_content})
    await write_raw(local, "collaborative", b"not an artifact at all")
    body = await call(client, "POST", "/api/ml/reload", 200)
    assert body["reloaded"] == ["content_based"]
    assert body["models"]["content_based"]["checksum"] == sha(other_content)
    # The refused version leaves the old model serving, and status says why.
    collaborative = body["models"]["collaborative"]
    assert collaborative["checksum"] == sha(demo["collaborative"])
    assert collaborative["last_error"] and "NotAnArtifact" in collaborative["last_error"]
    served = await call(
        client, "GET", RECS, 200, params={"user_id": KNOWN_USER, "algorithm": "collaborative"}
    )
    assert served["model_version"] == sha(demo["collaborative"])[:12]


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_rollback_restores_and_serves_an_older_version(
    serve: MakeClient,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    demo: dict[str, bytes],
    other_content: bytes,
    backend: str,
) -> None:
    url, endpoint, env = versioned_store(backend, request, tmp_path)
    await seed(url, demo, endpoint=endpoint)
    await seed(url, {"content_based": other_content}, endpoint=endpoint)
    client = await serve(url, **env)
    assert (await state_of(client, "content_based"))["checksum"] == sha(other_content)

    listed = await call(client, "GET", "/api/ml/models/content_based/versions", 200)
    versions = listed["versions"]
    assert [v["metadata"]["sha256"] for v in versions] == [
        sha(other_content),
        sha(demo["content_based"]),
    ]
    old = versions[1]["version_id"]
    body = await call(
        client, "POST", "/api/ml/models/content_based/rollback", 200, json={"version_id": old}
    )
    assert body["model"]["checksum"] == sha(demo["content_based"])
    assert body["model"]["state"] == "loaded"
    served = await call(
        client, "GET", RECS, 200, params={"user_id": KNOWN_USER, "algorithm": "content"}
    )
    assert served["model_version"] == sha(demo["content_based"])[:12]
    after = await call(client, "GET", "/api/ml/models/content_based/versions", 200)
    assert after["versions"][0]["metadata"]["sha256"] == sha(demo["content_based"])
    assert len(after["versions"]) == 3
    # The hybrid was built with exactly this content model: it is no longer stale.
    assert (await state_of(client, "hybrid"))["state"] == "loaded"


async def test_rollback_to_a_version_that_cannot_be_served(
    serve: MakeClient, local: str, demo: dict[str, bytes]
) -> None:
    await write_raw(local, "collaborative", b"garbage written by mistake")
    await seed(local, {"collaborative": demo["collaborative"]})
    client = await serve(local)
    versions = (await call(client, "GET", "/api/ml/models/collaborative/versions", 200))["versions"]
    body = await call(
        client,
        "POST",
        "/api/ml/models/collaborative/rollback",
        422,
        json={"version_id": versions[1]["version_id"]},
    )
    assert body["error"] == "rollback_not_served"
    assert body["model"]["checksum"] == sha(demo["collaborative"])
    await call(client, "GET", RECS, 200, params={"user_id": "u001", "algorithm": "collaborative"})


# --- training -----------------------------------------------------------------------------------


async def test_training_runs_beside_requests(
    serve: MakeClient, local: str, demo: dict[str, bytes]
) -> None:
    client = await serve(local)
    old = await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER})
    async with client.post("/api/ml/train-all") as response:
        assert response.status == 202
        accepted = await response.json()
        assert response.headers["Location"] == accepted["links"]["self"]
    job_id = accepted["job_id"]
    assert accepted["links"]["self"] == f"/api/ml/jobs/{job_id}"
    assert accepted["status"] in ("queued", "running")

    # The service answers while the job runs: the GET completes before the job does.
    served = await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER})
    assert served["model_version"] == old["model_version"]
    running = await call(client, "GET", f"/api/ml/jobs/{job_id}", 200)
    assert running["status"] in ("queued", "running") and running["finished_at"] is None
    assert (await call(client, "GET", "/api/ml/status", 200))["job"]["job_id"] == job_id

    for path in ("/api/ml/train-all", "/api/ml/train/collaborative"):
        conflict = await call(client, "POST", path, 409)
        assert (conflict["error"], conflict["job_id"]) == ("training_in_progress", job_id)
        assert job_id in conflict["message"]

    async def finished() -> bool:
        job = await call(client, "GET", f"/api/ml/jobs/{job_id}", 200)
        return job["status"] not in ("queued", "running")

    await eventually(finished, "the training job", within=60)
    job = await call(client, "GET", f"/api/ml/jobs/{job_id}", 200)
    assert job["status"] == "succeeded", job
    assert set(job["seconds"]) == set(MODEL_NAMES)
    assert job["started_at"] <= job["finished_at"]
    status = await call(client, "GET", "/api/ml/status", 200)
    assert status["job"] is None
    assert status["unfinished_publish"] is None  # the set went in whole
    for name in MODEL_NAMES:
        assert status["models"][name]["state"] == "loaded"
        assert status["models"][name]["trained_at"] >= artifacts.read_header(demo[name]).trained_at
    text = await (await client.get("/metrics")).text()
    assert 'wisata_training_jobs_total{state="succeeded"} 1.0' in text
    assert 'wisata_training_seconds_count{model="hybrid"} 1.0' in text

    # One model alone: only it is fitted.
    single = await call(client, "POST", "/api/ml/train/content_based", 202)
    single_id = single["job_id"]
    assert single["models"] == ["content_based"]

    async def single_done() -> bool:
        job = await call(client, "GET", f"/api/ml/jobs/{single_id}", 200)
        return job["status"] not in ("queued", "running")

    await eventually(single_done, "the content_based job", within=60)
    job = await call(client, "GET", f"/api/ml/jobs/{single_id}", 200)
    assert job["status"] == "succeeded" and set(job["seconds"]) == {"content_based"}


# --- access -------------------------------------------------------------------------------------


async def test_admin_routes_need_the_token(serve: MakeClient, local: str) -> None:
    client = await serve(local, WISATA_ADMIN_TOKEN=TOKEN)
    admin = [
        ("POST", "/api/ml/train-all"),
        ("POST", "/api/ml/train/hybrid"),
        ("POST", "/api/ml/reload"),
        ("POST", "/api/ml/models/hybrid/rollback"),
    ]
    wrong = [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer s3crét"},
    ]
    for method, path in admin:
        for headers in wrong:
            async with client.request(method, path, headers=headers) as response:
                assert response.status == 401, (path, headers)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.json()
            assert body["error"] == "unauthorized"
            assert "WISATA_ADMIN_TOKEN" in body["message"]
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert (await call(client, "POST", "/api/ml/reload", 200, headers=good))["reloaded"] == []
    lower = {"Authorization": f"bearer {TOKEN}"}
    await call(client, "POST", "/api/ml/reload", 200, headers=lower)
    # Reads stay open.
    await call(client, "GET", RECS, 200, params={"user_id": KNOWN_USER})
    await call(client, "GET", "/api/ml/status", 200)
    await call(client, "GET", "/api/ml/models/hybrid/versions", 200)


async def test_admin_routes_are_open_on_loopback_without_a_token(
    serve: MakeClient, local: str
) -> None:
    client = await serve(local)
    await call(client, "POST", "/api/ml/reload", 200)


async def test_cors_for_public_read_routes_only(serve: MakeClient, local: str) -> None:
    allowed = "https://app.example.com"
    client = await serve(local, WISATA_CORS_ORIGINS=f"{allowed}, http://localhost:3000")

    async def headers_of(method: str, path: str, origin: str, **kwargs: Any) -> Any:
        async with client.request(method, path, headers={"Origin": origin}, **kwargs) as r:
            await r.read()
            return r.status, r.headers

    status, headers = await headers_of("GET", f"{RECS}?user_id=u001", allowed)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == allowed
    assert "Origin" in headers.getall("Vary")
    _, headers = await headers_of("GET", "/api/items/1/similar", allowed)
    assert headers["Access-Control-Allow-Origin"] == allowed
    _, headers = await headers_of("POST", "/api/recommendations", allowed, json={"ratings": []})
    assert headers["Access-Control-Allow-Origin"] == allowed
    # Errors on a public route are readable by the page too.
    status, headers = await headers_of("GET", f"{RECS}?limit=0", allowed)
    assert status == 400 and headers["Access-Control-Allow-Origin"] == allowed
    # Another origin, and the admin or status routes, get no CORS headers.
    _, headers = await headers_of("GET", f"{RECS}?user_id=u001", "https://evil.example")
    assert "Access-Control-Allow-Origin" not in headers
    for method, path in (("GET", "/api/ml/status"), ("POST", "/api/ml/reload")):
        _, headers = await headers_of(method, path, allowed)
        assert "Access-Control-Allow-Origin" not in headers

    async def preflight(path: str, method: str, origin: str) -> Any:
        request_headers = {
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type",
        }
        async with client.options(path, headers=request_headers) as r:
            await r.read()
            return r.status, r.headers

    status, headers = await preflight("/api/recommendations", "POST", allowed)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == allowed
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert headers["Access-Control-Allow-Headers"].lower() == "content-type"
    status, headers = await preflight("/api/items/7/similar", "GET", "http://localhost:3000")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    for path, method, origin, expected in (
        ("/api/recommendations", "POST", "https://evil.example", 403),
        ("/api/ml/train-all", "POST", allowed, 403),
        ("/api/recommendations", "DELETE", allowed, 403),
        ("/no/such/route", "GET", allowed, 404),
    ):
        status, headers = await preflight(path, method, origin)
        assert status == expected, (path, method, origin)
        assert "Access-Control-Allow-Origin" not in headers


async def test_no_cors_headers_by_default(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    async with client.get(RECS, params={"user_id": "u001"}, headers={"Origin": "https://a.b"}) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers


# --- operations ---------------------------------------------------------------------------------


async def test_openapi_document_matches_the_router(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    document = await call(client, "GET", "/api/openapi.json", 200)
    validate_openapi(document)
    app = client.app
    assert app is not None
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert registered == documented
    assert "text/html" in document["paths"]["/"]["get"]["responses"]["200"]["content"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert declared == in_path, (method, path)
    secured = {
        path for path, item in document["paths"].items() for op in item.values() if "security" in op
    }
    assert secured == {
        "/api/ml/train-all",
        "/api/ml/train/{model}",
        "/api/ml/reload",
        "/api/ml/models/{name}/rollback",
    }


async def test_metrics_label_requests_by_route_template(serve: MakeClient, local: str) -> None:
    client = await serve(local)
    for item in ("1", "2", "3"):
        await call(client, "GET", f"/api/items/{item}/similar", 200)
    await call(client, "GET", "/no/such/route", 404)
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    route = 'route="/api/items/{id}/similar"'
    assert f'wisata_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    assert f'wisata_http_request_duration_seconds_count{{method="GET",{route}}} 3.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/api/items/1/" not in text
    for name in MODEL_NAMES:
        assert f'wisata_model_info{{model="{name}",state="loaded"' in text
        assert f'wisata_model_age_seconds{{model="{name}"}}' in text
    assert "wisata_storage_reachable 1.0" in text
    assert "wisata_training_in_progress 0.0" in text


async def test_an_unexpected_error_is_a_logged_500_in_json(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="service.web.middlewares"):
        body = await call(client, "GET", "/broken", 500)
    assert body["error"] == "internal_error"
    assert "a bug" not in body["message"]  # details stay in the log, not in the answer
    [record] = caplog.records
    assert record.exc_info is not None and "GET /broken" in record.getMessage()
