"""Helpers for the browser tests: the service as a real process, and headless Chromium.

- :class:`ServiceProcess`: ``python -m service`` (what ``wisata-serve`` runs) on a free port,
  its log kept in a file, stopped with SIGTERM as an orchestrator would.
- :class:`Browser`: Debian's Chromium driven by Selenium through Debian's chromedriver (the
  two always match); no browser is ever downloaded.
- :func:`find_chromium`: where Chromium and its driver are, or why the tests cannot run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.serving import ServeProcess

__all__ = ["ADMIN_TOKEN", "Browser", "BrowserUnavailable", "ServiceProcess", "find_chromium"]

_T = TypeVar("_T")

ADMIN_TOKEN = "e2e-admin-token"
"""The admin token the service under test is started with."""
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root in CI, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
INSTALL_HINT = "run `bash tests/e2e/install_browser.sh` (Debian's chromium and chromium-driver)"


class BrowserUnavailable(RuntimeError):
    """No headless Chromium (or no Selenium) on this machine: the browser tests cannot run."""


def find_chromium() -> tuple[str, str]:
    """Return the paths of Chromium and chromedriver.

    Raises
    ------
    BrowserUnavailable
        If either is missing, with what to install.
    """
    browser = _executable("chromium", "/usr/bin/chromium")
    driver = _executable("chromedriver", "/usr/bin/chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found on PATH; {INSTALL_HINT}")
    assert browser is not None and driver is not None
    return browser, driver


def _executable(name: str, default: str) -> str | None:
    if os.access(default, os.X_OK):
        return default
    return shutil.which(name)


class ServiceProcess(ServeProcess):
    """``python -m service`` on 127.0.0.1 for the browser tests."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__({**env, "WISATA_HOST": "127.0.0.1"})

    def train_all(self, token: str, timeout: float = 120.0) -> dict[str, Any]:
        """Train the three models through the API and wait for the job; return the job."""
        job_id = self.json("POST", "/api/ml/train-all", token=token)["job_id"]
        job = self.wait_job(job_id, timeout)
        assert job["status"] == "succeeded", (job, self.log())
        return job


class Browser:
    """One headless Chromium window driven by Selenium."""

    def __init__(self, chromium: str, chromedriver: str, profile: Path) -> None:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as e:
            raise BrowserUnavailable(
                "selenium is not installed; install the test extras: pip install -e '.[test]'"
            ) from e
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path keeps Selenium Manager from looking for (or fetching) one.
        self.driver = webdriver.Chrome(options=options, service=Service(chromedriver))
        self.driver.set_script_timeout(10)

    def close(self) -> None:
        """Quit Chromium and its driver."""
        self.driver.quit()

    # --- pages -----------------------------------------------------------------------------------

    def open_fresh(self, url: str) -> None:
        """Load ``url`` with an empty ``sessionStorage`` (no admin token remembered)."""
        self.driver.get(url)
        self.driver.execute_script("window.sessionStorage.clear()")
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the page (``arguments[i]`` are ``args``); return its value."""
        return self.driver.execute_script(script, *args)

    def wait_for(self, check: Callable[[], _T], what: str, timeout: float = 20.0) -> _T:
        """Poll ``check`` until it returns something true; fail naming ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        last: _T | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # an element may be replaced while read
                last = check()
                if last:
                    return last
            time.sleep(0.1)
        raise AssertionError(f"waited {timeout:g} s for {what}; last seen: {last!r}")

    def text(self, css: str) -> str:
        """The visible text of the first element matching ``css`` ("" when there is none)."""
        found = self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css
        )
        return str(found)

    def visible(self, css: str) -> bool:
        """Whether an element matching ``css`` is on the page and shown."""
        return bool(
            self.js(
                "const e = document.querySelector(arguments[0]);"
                "return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0",
                css,
            )
        )

    def click(self, css: str) -> None:
        """Click the element matching ``css`` as a user would (scrolled into view)."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def type(self, css: str, text: str, *, clear: bool = True) -> None:
        """Type ``text`` into the field matching ``css`` (after emptying it)."""
        from selenium.webdriver.common.by import By

        field = self.driver.find_element(By.CSS_SELECTOR, css)
        if clear:
            field.clear()
        field.send_keys(text)

    def press(self, *names: str) -> None:
        """Press keys named as Selenium names them (``"TAB"``, ``"ENTER"``) on the focus."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(self.driver).send_keys(*(getattr(Keys, name) for name in names)).perform()

    def select(self, css: str, value: str) -> None:
        """Choose the option with ``value`` in the select matching ``css``."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.select import Select

        Select(self.driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)

    def reload(self) -> None:
        """Load the page again (sessionStorage stays)."""
        self.driver.refresh()

    def focused(self) -> str:
        """A short description of the focused element: its id, or its tag and text."""
        return str(
            self.js(
                "const e = document.activeElement;"
                "return e.id || `${e.tagName.toLowerCase()}:${(e.innerText || '').trim()}`"
            )
        )

    # --- viewport, screenshots and the console ---------------------------------------------------

    def phone(self, width: int, height: int = 780) -> None:
        """Emulate a phone screen ``width`` CSS pixels wide (touch, mobile viewport)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )

    def desktop(self) -> None:
        """Back to the window's own size."""
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or of the whole page) to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not full_page:
            self.driver.save_screenshot(str(path))
            return path
        import base64

        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def console_errors(self) -> list[str]:
        """Script errors and refused loads (CSP) logged since the last call.

        Failed requests are left out: the API answers 4xx on purpose in some tests, and the
        page shows those answers itself.
        """
        get_log: Callable[[str], list[dict[str, Any]]] = self.driver.get_log  # untyped upstream
        entries = get_log("browser")
        return [
            str(entry["message"])
            for entry in entries
            if entry.get("level") == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]
