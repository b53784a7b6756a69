"""The admin dashboard: its files over HTTP, then the page in headless Chromium.

The browser tests do what an operator does, against a real service process on a moto server:
open the page on an empty bucket, train everything (giving the admin token once), ask for
recommendations, roll a model back, read the metrics chart, and do it all on a 360 px phone
with the keyboard. Screenshots of each step go to ``test-output/e2e/<test>/``.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from service import artifacts
from service.config import Config
from service.ml.datasets import load_dataset
from service.ml.recommenders import MODEL_NAMES
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import Registry
from service.serving.trainer import build_artifacts
from service.web.app import create_app
from service.web.dashboard import STATIC_DIR, DashboardMissing, add_dashboard_routes
from storage import StoreSettings, open_store
from tests.e2e.browser import ADMIN_TOKEN, Browser, ServiceProcess
from tests.interrupted import interrupt_publish

TOKEN_KEY = "wisata.adminToken"  # where the page keeps the token (sessionStorage)
PHONE_WIDTH = 360


# --- reading the page -----------------------------------------------------------------------------


def model_states(page: Browser) -> dict[str, str]:
    """Model name -> the state badge its row shows."""
    found: dict[str, str] = page.js(
        "const found = {};"
        "for (const row of document.querySelectorAll('#models-body tr[data-model]'))"
        "  found[row.dataset.model] = row.querySelector('.badge.state').textContent;"
        "return found;"
    )
    return found


def model_row(page: Browser, name: str) -> dict[str, str]:
    """The text of a model's row, its version cell and the trained-at time it shows."""
    row: dict[str, str] = page.js(
        "const row = document.querySelector(`#models-body tr[data-model='${arguments[0]}']`);"
        "const time = row.querySelector('time');"
        "return {text: row.innerText, version: row.querySelector('.version-cell').innerText,"
        "        trained_at: time ? time.getAttribute('datetime') : ''};",
        name,
    )
    return row


def cards(page: Browser) -> list[dict[str, Any]]:
    """The recommendation cards as shown: name, city, categories and score text."""
    found: list[dict[str, Any]] = page.js(
        "return [...document.querySelectorAll('#try-result .card')].map(card => ({"
        "  name: card.querySelector('h3').lastChild.textContent,"
        "  city: card.querySelector('.city').textContent,"
        "  categories: [...card.querySelectorAll('.tags li')].map(li => li.textContent),"
        "  score: card.querySelector('.score b').textContent}));"
    )
    return found


def version_items(page: Browser) -> list[dict[str, str]]:
    """The listed versions, newest first: version id and text."""
    found: list[dict[str, str]] = page.js(
        "return [...document.querySelectorAll('#versions li.version')].map(li => ({"
        "  id: li.dataset.versionId, text: li.innerText}));"
    )
    return found


def ensure_trained(service: ServiceProcess, versions: int = 1) -> None:
    """Train through the API until the three models are loaded with ``versions`` stored."""
    status = service.json("GET", "/api/ml/status")
    if any(model["state"] != "loaded" for model in status["models"].values()):
        service.train_all(ADMIN_TOKEN)
    stored = service.json("GET", "/api/ml/models/content_based/versions")["versions"]
    for _ in range(versions - len(stored)):
        service.train_all(ADMIN_TOKEN)


def give_token(page: Browser, token: str) -> None:
    """Answer the token dialog as a user: type into the password field, press Enter."""
    page.wait_for(lambda: page.visible("#token-dialog[open]"), "the admin token dialog")
    assert page.js("return document.activeElement.id") == "token-input"
    assert page.js("return document.getElementById('token-input').type") == "password"
    page.type("#token-input", token)
    page.press("ENTER")


def recommendations(service: ServiceProcess, user: str, algorithm: str, lam: str) -> Any:
    """What the API answers for the query the page sends by default (10 items)."""
    query = urllib.parse.urlencode(
        {"user_id": user, "algorithm": algorithm, "limit": 10, "lambda": lam}
    )
    return service.json("GET", f"/api/frontend/recommendations?{query}")


def shown(value: float) -> str:
    """A number as the page writes it (``formatNumber``): whole, or with three decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def point_titles(page: Browser) -> list[str]:
    """The titles of the chart's points (``#<version> <metric> <value>``)."""
    found: list[str] = page.js(
        "return [...document.querySelectorAll('#chart circle title')].map(t => t.textContent)"
    )
    return found


def chart_points(versions: list[dict[str, Any]]) -> set[str]:
    """The point titles the chart must show for ``versions`` (newest first, as the API lists
    them): NDCG@10 and coverage of each version that records them, numbered oldest first."""
    titles = set()
    for number, version in enumerate(reversed(versions), start=1):
        if version["ndcg_at_10"] is not None:
            titles.add(f"#{number} NDCG@10 {shown(version['ndcg_at_10'])}")
        coverage = version["decoded"]["metrics"].get("coverage")
        if coverage is not None:
            titles.add(f"#{number} coverage {shown(coverage)}")
    return titles


def api_error_line(answer: tuple[int, Any]) -> str:
    """How the page must show an API error: status, error code and message as given."""
    status, body = answer
    return f"{status} {body['error']}: {body['message']}"


# --- the files, over HTTP -------------------------------------------------------------------------


def routes_root(app: web.Application) -> bool:
    """Whether ``GET /`` is routed already (once create_app adds the dashboard itself)."""
    return any(
        route.method == "GET" and route.resource is not None and route.resource.canonical == "/"
        for route in app.router.routes()
    )


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    """The service app on an empty folder store, with the dashboard."""
    config = Config.from_env(
        {"WISATA_STORAGE": str(tmp_path / "models"), "WISATA_RELOAD_INTERVAL": "0"}
    )
    app = create_app(config)
    if not routes_root(app):
        add_dashboard_routes(app)
    return await aiohttp_client(app)


async def test_the_page_and_every_file_it_loads_are_served(client: Any) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    loaded = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert len(loaded) >= 2, html  # the stylesheet and the script at least
    kinds = {".css": "text/css", ".js": "text/javascript"}
    for path in loaded:
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kinds[Path(path).suffix], path
        assert response.headers["Cache-Control"] == "no-cache"
        assert await response.read() == (STATIC_DIR / Path(path).name).read_bytes()
        # Revalidation costs a 304, not the file again.
        again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304, path


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static",
        "/static/missing.js",
        "/static/..%2Fdashboard.py",
        "/static/%2e%2e/dashboard.py",
        "/static/../dashboard.py",
        "/static/.%2F..%2F..%2Fsetup.cfg",
    ],
)
async def test_nothing_but_the_dashboard_files_is_served(client: Any, path: str) -> None:
    response = await client.get(URL(path, encoded=True))
    assert response.status == 404
    body = await response.json()
    assert body["error"] == "not_found"


def test_missing_files_stop_the_service_at_start(tmp_path: Path) -> None:
    with pytest.raises(DashboardMissing, match=r"index\.html does not exist.*package_data"):
        add_dashboard_routes(web.Application(), static_dir=tmp_path)


# --- the dashboard in a browser -------------------------------------------------------------------


@pytest.mark.slow
def test_train_all_from_nothing_trained(
    page: Browser, service: ServiceProcess, shots: Path
) -> None:
    everything = dict.fromkeys(MODEL_NAMES, "NOT TRAINED")
    page.wait_for(lambda: model_states(page) == everything, "three NOT TRAINED models")
    storage = service.json("GET", "/api/ml/status")["storage"]
    assert storage["location"] in page.text("#storage")
    assert "reachable" in page.text("#storage")
    assert "no artifact in the store yet" in model_row(page, "hybrid")["text"]
    page.screenshot(shots / "01-nothing-trained.png", full_page=True)

    # A wrong token: the API's 401 shows as the API words it, and the token is asked again.
    refused = service.request("POST", "/api/ml/train-all", token="not-the-token")
    assert refused[0] == 401
    page.click("#train-all")
    give_token(page, "not-the-token")
    page.wait_for(lambda: page.visible("#train-error"), "the 401 error")
    assert api_error_line(refused) in page.text("#train-error")
    assert page.js(f"return sessionStorage.getItem('{TOKEN_KEY}')") is None
    page.screenshot(shots / "02-wrong-token.png")

    page.click("#train-all")
    page.wait_for(lambda: page.visible("#token-dialog[open]"), "the token asked again")
    page.screenshot(shots / "03-token-dialog.png")
    give_token(page, ADMIN_TOKEN)
    page.wait_for(lambda: page.visible("#job"), "the training job's progress")
    assert not page.visible("#train-error")
    page.screenshot(shots / "04-training.png")

    loaded = dict.fromkeys(MODEL_NAMES, "LOADED")
    page.wait_for(lambda: model_states(page) == loaded, "three LOADED models", timeout=90)
    page.wait_for(lambda: "succeeded" in page.text("#job-summary"), "the job to show succeeded")
    progress = page.js(
        "const bar = document.getElementById('job-progress'); return [bar.value, bar.max]"
    )
    assert progress == [len(MODEL_NAMES), len(MODEL_NAMES)]
    status = service.json("GET", "/api/ml/status")
    for name in MODEL_NAMES:
        row = model_row(page, name)
        served = status["models"][name]
        assert served["checksum"][:12] in row["version"]
        assert served["artifact"]["etag"][:10] in row["version"]
        assert row["trained_at"] == served["trained_at"]
        # The intended change of item 8: the dashboard's training records the holdout metrics.
        recorded = served["artifact"]["decoded"]["metrics"]  # intended change (item 8)
        assert served["artifact"]["ndcg_at_10"] == recorded["ndcg_at_10"]  # intended (item 8)
        for metric, value in recorded.items():  # intended change (item 8)
            assert f"{metric} {shown(value)}" in row["text"]  # intended change (item 8)
    # Kept for the tab: the next admin action does not ask again.
    assert page.js(f"return sessionStorage.getItem('{TOKEN_KEY}')") == ADMIN_TOKEN
    page.screenshot(shots / "05-loaded.png", full_page=True)


@pytest.mark.slow
def test_try_it_shows_the_api_answer_and_cold_start(
    page: Browser, service: ServiceProcess, shots: Path
) -> None:
    ensure_trained(service)
    page.reload()
    page.wait_for(lambda: model_states(page).get("hybrid") == "LOADED", "the hybrid LOADED")

    # Keyboard only: two steps down on the slider, then Enter in the user field submits.
    page.js("document.getElementById('try-lambda').focus()")
    page.press("ARROW_LEFT", "ARROW_LEFT")
    lam = page.js("return document.getElementById('try-lambda').value")
    assert float(lam) == pytest.approx(0.6)
    assert page.text("#try-lambda-value") == "0.60"
    page.type("#try-user", "u001")
    page.press("ENTER")
    page.wait_for(lambda: cards(page), "recommendation cards for u001")

    expected = recommendations(service, "u001", "hybrid", lam)
    assert expected["cold_start"] is False
    shown = cards(page)
    assert [card["name"] for card in shown] == [item["name"] for item in expected["items"]]
    for card, item in zip(shown, expected["items"], strict=True):
        assert card["city"] == item["city"]
        assert card["categories"] == item["categories"]
        assert float(card["score"]) == pytest.approx(item["score"], abs=5e-4)
    assert expected["model_version"] in page.text("#try-result")
    assert not page.visible("#try-result .cold-start")
    page.screenshot(shots / "01-known-user.png", full_page=True)

    page.type("#try-user", "someone-new-e2e")
    page.click("#try-submit")
    page.wait_for(lambda: page.visible("#try-result .cold-start"), "the cold-start badge")
    cold = recommendations(service, "someone-new-e2e", "hybrid", lam)
    assert cold["cold_start"] is True
    assert [card["name"] for card in cards(page)] == [item["name"] for item in cold["items"]]
    page.screenshot(shots / "02-cold-start.png", full_page=True)

    # Only the hybrid uses lambda; an out-of-range limit shows the API's 400 as it is.
    page.select("#try-algorithm", "content")
    assert page.js("return document.getElementById('try-lambda').disabled") is True
    page.type("#try-limit", "500")
    page.click("#try-submit")
    page.wait_for(lambda: page.visible("#try-error"), "the 400 error")
    refused = service.request(
        "GET", "/api/frontend/recommendations?user_id=someone-new-e2e&algorithm=content&limit=500"
    )
    assert refused[0] == 400
    assert api_error_line(refused) in page.text("#try-error")
    assert cards(page) == []
    page.screenshot(shots / "03-bad-limit.png")


@pytest.mark.slow
def test_rollback_serves_the_older_version(
    page: Browser, service: ServiceProcess, shots: Path
) -> None:
    ensure_trained(service)
    service.train_all(ADMIN_TOKEN)  # a second stored version of each model
    versions = service.json("GET", "/api/ml/models/content_based/versions")["versions"]
    assert len(versions) >= 2
    newest, older = versions[0], versions[1]
    older_number = len(versions) - 1
    page.click("#refresh")
    page.select("#versions-model", "content_based")
    page.wait_for(lambda: len(version_items(page)) == len(versions), "every stored version")
    listed = version_items(page)
    assert [item["id"] for item in listed] == [v["version_id"] for v in versions]
    assert "serving" in listed[0]["text"]
    assert "serving" not in listed[1]["text"]
    page.wait_for(
        lambda: newest["etag"][:10] in model_row(page, "content_based")["version"],
        "the newest version in the table",
    )
    page.screenshot(shots / "01-two-versions.png", full_page=True)

    button = f"#versions button[data-version-id='{older['version_id']}']"
    # Cancelling the confirmation changes nothing.
    page.click(button)
    page.wait_for(lambda: page.visible("#confirm-dialog[open]"), "the rollback confirmation")
    assert f"#{older_number}" in page.text("#confirm-text")
    assert "content_based" in page.text("#confirm-title")
    page.screenshot(shots / "02-confirm.png")
    page.click("#confirm-cancel")
    page.wait_for(lambda: not page.visible("#confirm-dialog[open]"), "the dialog to close")
    current = service.json("GET", "/api/ml/status")["models"]["content_based"]
    assert current["artifact"]["etag"] == newest["etag"]

    page.click(button)
    page.wait_for(lambda: page.visible("#confirm-dialog[open]"), "the confirmation again")
    page.click("#confirm-ok")
    give_token(page, ADMIN_TOKEN)
    page.wait_for(lambda: page.visible("#rollback-note"), "the rollback result")
    page.wait_for(
        lambda: older["etag"][:10] in model_row(page, "content_based")["version"],
        "the table to show the older version's ETag",
    )
    served = service.json("GET", "/api/ml/status")["models"]["content_based"]
    assert served["state"] == "loaded"
    assert served["artifact"]["etag"] == older["etag"]
    assert served["trained_at"] == artifacts.from_metadata(older["metadata"]).trained_at
    assert model_row(page, "content_based")["trained_at"] == served["trained_at"]
    # Restored as a new version on top, which is the one serving now.
    page.wait_for(lambda: len(version_items(page)) == len(versions) + 1, "the restored version")
    listed = version_items(page)
    assert listed[0]["id"] == served["artifact"]["version_id"]
    assert "serving" in listed[0]["text"]
    assert not page.visible("#versions-error")
    page.screenshot(shots / "03-rolled-back.png", full_page=True)


async def publish_with_metrics(
    endpoint: str, bucket: str, model: str, recorded: list[dict[str, float]]
) -> None:
    """Store new versions of ``model`` recording ``recorded`` metrics, as wisata-retrain does."""
    async with open_store(f"s3://{bucket}/models", StoreSettings(endpoint=endpoint)) as store:
        for metrics in recorded:
            built = await asyncio.to_thread(
                build_artifacts, SAMPLE_DATA_DIR, [model], metrics={model: metrics}
            )
            data = built.artifacts[model]
            header = artifacts.read_header(data)
            await store.put(f"{model}.pkl", data, artifacts.to_metadata(header))


@pytest.mark.slow
def test_chart_plots_the_metrics_the_versions_recorded(
    page: Browser, service: ServiceProcess, s3_server: str, bucket: str, shots: Path
) -> None:
    ensure_trained(service)
    page.reload()
    page.select("#versions-model", "collaborative")
    page.wait_for(lambda: version_items(page), "the collaborative versions")
    trained = service.json("GET", "/api/ml/models/collaborative/versions")["versions"]
    before = len(trained)
    # The intended change of item 8: trainings record metrics, so the chart already plots them.
    points = chart_points(trained)  # intended change (item 8)
    assert points  # intended change (item 8)
    assert set(point_titles(page)) == points  # intended change (item 8)

    recorded = [{"ndcg@10": 0.21, "coverage": 0.48}, {"ndcg@10": 0.26, "coverage": 0.55}]
    asyncio.run(publish_with_metrics(s3_server, bucket, "collaborative", recorded))
    versions = service.json("GET", "/api/ml/models/collaborative/versions")["versions"]
    assert len(versions) == before + len(recorded)
    assert "metric-ndcg.4010" in versions[0]["metadata"]

    page.click("#refresh")
    # Intended change (item 8): the chart is drawn already, so wait for the new versions.
    page.wait_for(lambda: len(version_items(page)) == len(versions), "the published versions")
    page.wait_for(lambda: page.visible("#chart svg"), "the chart")
    titles = page.js(
        "return [...document.querySelectorAll('#chart circle title')].map(t => t.textContent)"
    )
    expected = set()
    for offset, metrics in enumerate(recorded):
        number = before + offset + 1
        expected.add(f"#{number} NDCG@10 {metrics['ndcg@10']:.3f}")
        expected.add(f"#{number} coverage {metrics['coverage']:.3f}")
    assert set(titles) == points | expected  # intended change (item 8): the trained ones too
    # One line per metric, drawn through the points of the trained and the published versions.
    assert page.js("return document.querySelectorAll('#chart polyline').length") == 2
    label = page.js("return document.querySelector('#chart svg').getAttribute('aria-label')")
    last = recorded[-1]
    assert f"#{before + 2}: NDCG@10 {last['ndcg@10']:.3f}, coverage {last['coverage']:.3f}" in label
    assert f"ndcg@10 {recorded[-1]['ndcg@10']:.3f}" in version_items(page)[0]["text"]
    page.screenshot(shots / "01-chart.png", full_page=True)


async def publish_collaborative_alone(endpoint: str, bucket: str) -> None:
    """A collaborative model fitted on nine tenths of the demo ratings, published alone."""
    demo = load_dataset(SAMPLE_DATA_DIR)
    newer = demo.with_interactions(demo.interactions.iloc[: int(demo.n_interactions * 0.9)])
    built = await asyncio.to_thread(build_artifacts, newer, ["collaborative"])
    async with open_store(f"s3://{bucket}/models", StoreSettings(endpoint=endpoint)) as store:
        assert (await Registry(store).install(built.artifacts)) == {"collaborative": None}


@pytest.mark.slow
def test_a_running_job_answers_409_and_a_lone_sub_model_makes_the_hybrid_stale(
    page: Browser, service: ServiceProcess, s3_server: str, bucket: str, shots: Path
) -> None:
    ensure_trained(service)
    page.reload()
    # Another operator's training is running: the page shows the API's 409 and follows that job.
    running = service.json("POST", "/api/ml/train-all", token=ADMIN_TOKEN)["job_id"]
    page.click("#train-all")
    give_token(page, ADMIN_TOKEN)
    page.wait_for(lambda: page.visible("#train-error"), "the 409 error")
    assert "409 training_in_progress" in page.text("#train-error")
    assert running in page.text("#train-error")
    page.wait_for(lambda: running[:8] in page.text("#job-summary"), "the running job followed")
    page.screenshot(shots / "01-conflict.png")
    assert service.wait_job(running, 120)["status"] == "succeeded"
    page.wait_for(lambda: "succeeded" in page.text("#job-summary"), "the job shown succeeded")

    # A collaborative model retrained alone on newer ratings, by the retrain job: the hybrid
    # keeps its own pair and says so.
    asyncio.run(publish_collaborative_alone(s3_server, bucket))
    service.json("POST", "/api/ml/reload", token=ADMIN_TOKEN)
    page.click("#refresh")
    page.wait_for(lambda: model_states(page).get("hybrid") == "STALE", "the hybrid STALE")
    reason = service.json("GET", "/api/ml/status")["models"]["hybrid"]["reason"]
    assert "collaborative retrained since it was built" in reason
    assert reason in model_row(page, "hybrid")["text"]
    assert model_states(page)["collaborative"] == "LOADED"
    page.screenshot(shots / "02-stale-hybrid.png", full_page=True)
    service.train_all(ADMIN_TOKEN)  # the next tests start from a consistent set


async def interrupt_a_publish(endpoint: str, bucket: str, finish: bool) -> None:
    """Leave what a training killed after its content model leaves, or finish that publish."""
    async with open_store(f"s3://{bucket}/models", StoreSettings(endpoint=endpoint)) as store:
        if finish:  # the next training publishes a whole set, replacing the journal
            registry = Registry(store)
            await registry.load_all()
            built = await asyncio.to_thread(build_artifacts, SAMPLE_DATA_DIR)
            assert not any((await registry.install(built.artifacts)).values())
            return
        built = await asyncio.to_thread(build_artifacts, SAMPLE_DATA_DIR)
        await interrupt_publish(store, built.artifacts, "content_based")


@pytest.mark.slow
def test_an_unfinished_publish_is_shown_with_the_set_still_served(
    page: Browser, service: ServiceProcess, s3_server: str, bucket: str, shots: Path
) -> None:
    ensure_trained(service)
    served = service.json("GET", "/api/ml/status")["models"]["content_based"]["checksum"]
    asyncio.run(interrupt_a_publish(s3_server, bucket, finish=False))
    service.json("POST", "/api/ml/reload", token=ADMIN_TOKEN)

    page.click("#refresh")
    page.wait_for(lambda: "unfinished publish" in page.text("#storage"), "the unfinished publish")
    assert "served for content_based" in page.text("#storage")
    assert model_states(page) == dict.fromkeys(MODEL_NAMES, "LOADED")
    assert service.json("GET", "/api/ml/status")["models"]["content_based"]["checksum"] == served
    assert page.js("return document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(shots / "01-unfinished-publish.png", full_page=True)

    asyncio.run(interrupt_a_publish(s3_server, bucket, finish=True))
    service.json("POST", "/api/ml/reload", token=ADMIN_TOKEN)
    page.click("#refresh")
    page.wait_for(lambda: "unfinished" not in page.text("#storage"), "the publish completed")
    assert service.json("GET", "/api/ml/status")["unfinished_publish"] is None


@pytest.mark.slow
def test_phone_layout_labels_and_keyboard(
    page: Browser, service: ServiceProcess, shots: Path
) -> None:
    ensure_trained(service, versions=2)  # so that there is a rollback button to reach
    page.phone(PHONE_WIDTH)
    page.reload()
    page.wait_for(lambda: set(model_states(page).values()) == {"LOADED"}, "LOADED models")
    page.wait_for(lambda: version_items(page), "the versions list")
    page.click("#try-submit")
    page.wait_for(lambda: cards(page), "recommendation cards")
    width = page.js("return document.scrollingElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page scrolls sideways on a phone: {width} px wide"
    # A phone browser zooms out to fit a page wider than the screen: the viewport must not grow.
    assert page.js("return window.innerWidth") == PHONE_WIDTH
    page.js("window.scrollTo(0, 0)")
    page.screenshot(shots / "01-phone-top.png")
    page.screenshot(shots / "02-phone-full.png", full_page=True)

    unlabelled = page.js(
        "return [...document.querySelectorAll('input, select, textarea, button')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
        "             && !e.textContent.trim()).map(e => e.outerHTML)"
    )
    assert unlabelled == []

    # Tab alone reaches every control an operator needs, in page order.
    page.js("document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    for _ in range(60):
        page.press("TAB")
        reached.append(page.focused())
    wanted = [
        "refresh",
        "train-all",
        "versions-model",
        "try-user",
        "try-algorithm",
        "try-limit",
        "try-lambda",
        "try-submit",
    ]
    assert [name for name in reached if name in wanted][: len(wanted)] == wanted
    assert any(name.startswith("button:Roll back to #") for name in reached), reached
