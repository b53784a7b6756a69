"""The dashboard's try-it panel rates a place, on a service whose data is a database.

The service runs on a SQLite database it creates and seeds itself on its first start (what
``make run`` does), with the models trained through the API. Rating a recommended place from
the panel stores the rating (with the admin token the page asks for) and shows the user's next
answer, which counts it: a visitor stops being a cold start at once, without training.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import ADMIN_TOKEN, Browser, ServiceProcess
from tests.e2e.test_dashboard import cards, give_token, model_states


@pytest.fixture(scope="module")
def service(
    s3_server: str, bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """``python -m service`` on a SQLite database it seeds itself, with trained models."""
    folder = tmp_path_factory.mktemp("site")
    env = {
        "WISATA_DATA": f"sqlite:///{folder / 'wisata.db'}",
        "WISATA_STORAGE": f"s3://{bucket}/models",
        "WISATA_S3_ENDPOINT": s3_server,
        "WISATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "WISATA_HYBRID_WEIGHT": "0.6",
        "WISATA_RELOAD_INTERVAL": "0",
    }
    with ServiceProcess(env) as server:
        server.train_all(ADMIN_TOKEN)
        yield server
        server.stop()
        log = server.log()
    assert "Traceback" not in log, log


@pytest.mark.slow
def test_rating_a_place_from_the_panel_changes_the_next_answer(
    page: Browser, service: ServiceProcess, shots: Path
) -> None:
    visitor = f"visitor-{uuid.uuid4().hex[:8]}"
    page.wait_for(lambda: model_states(page).get("hybrid") == "LOADED", "the hybrid LOADED")
    page.type("#try-user", visitor)
    page.click("#try-submit")
    page.wait_for(lambda: page.visible("#try-result .cold-start"), "the cold-start badge")
    first = cards(page)[0]["name"]
    options = page.js(
        "return [...document.querySelector('#try-result .card .rate-value').options]"
        ".map(o => o.value)"
    )
    assert options == ["5", "4", "3", "2", "1"]  # the demo data's scale, from the status
    page.screenshot(shots / "01-cold-start.png", full_page=True)

    page.click("#try-result .card .rate")
    give_token(page, ADMIN_TOKEN)
    page.wait_for(lambda: page.visible("#try-note"), "the note that the rating counts")

    assert not page.visible("#try-result .cold-start")
    assert first not in [card["name"] for card in cards(page)]  # rated: not recommended back
    assert f"{visitor} rated {first} 5" in page.text("#try-note")
    stored = service.json("GET", f"/api/users/{visitor}/ratings")["ratings"]
    assert [r["rating"] for r in stored] == [5.0]
    page.screenshot(shots / "02-rated.png", full_page=True)
