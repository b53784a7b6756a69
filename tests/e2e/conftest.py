"""Fixtures for the browser tests: the real service on a real S3 server, and headless Chromium.

The module's tests share one ``wisata-serve`` process (started on an empty bucket of a
``moto_server`` process, with an admin token) and one Chromium; each test gets the dashboard
freshly loaded with no admin token remembered. Screenshots go to ``test-output/e2e/<test>/``
(ignored by git). Without Chromium or Selenium every test is skipped, saying what to install.
"""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import (
    ADMIN_TOKEN,
    Browser,
    BrowserUnavailable,
    ServiceProcess,
    find_chromium,
)
from tests.s3server import S3ServerProcess, repo_root

OUTPUT_DIR = repo_root() / "test-output" / "e2e"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Chromium and chromedriver; skips the test when there is no browser."""
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium is not installed; install the test extras: pip install -e '.[test]'")
    try:
        return find_chromium()
    except BrowserUnavailable as e:
        pytest.skip(f"no headless browser for the dashboard tests: {e}")


@pytest.fixture(scope="module")
def s3_server(aws_credentials: dict[str, str], chromium: tuple[str, str]) -> Iterator[str]:
    """Endpoint of a ``moto_server`` process for this module (after the browser check)."""
    with S3ServerProcess() as server:
        yield server.endpoint


@pytest.fixture(scope="module")
def bucket() -> str:
    """A bucket name no other module uses."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def service(s3_server: str, bucket: str) -> Iterator[ServiceProcess]:
    """``python -m service`` on an empty versioned bucket, with an admin token."""
    env = {
        "WISATA_STORAGE": f"s3://{bucket}/models",
        "WISATA_S3_ENDPOINT": s3_server,
        "WISATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "WISATA_RELOAD_INTERVAL": "0",  # the tests write versions the service must not pick up
        "WISATA_LOG_LEVEL": "INFO",
    }
    with ServiceProcess(env) as server:
        status, _ = server.request("GET", "/")
        if status == 404:
            pytest.fail(
                "GET / answered 404: create_app must call "
                "service.web.dashboard.add_dashboard_routes(app)"
            )
        yield server
        server.stop()  # first, so the log ends with the shutdown
        log = server.log()
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "service.log").write_text(log, encoding="utf-8")
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def browser(
    chromium: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """One headless Chromium with a fresh profile for the module."""
    try:
        opened = Browser(*chromium, tmp_path_factory.mktemp("chromium-profile"))
    except BrowserUnavailable as e:
        pytest.skip(str(e))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def page(browser: Browser, service: ServiceProcess) -> Iterator[Browser]:
    """The dashboard, loaded afresh at desktop size; the page must log no script error."""
    browser.desktop()
    browser.console_errors()  # forget what earlier tests left
    browser.open_fresh(f"{service.base}/")
    yield browser
    errors = browser.console_errors()
    browser.desktop()
    assert not errors, f"the page logged errors: {errors}"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder, emptied: ``test-output/e2e/<test name>/``."""
    folder = OUTPUT_DIR / str(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
