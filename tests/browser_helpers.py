"""A real headless browser for the status page's tests: Debian's chromium, driven by Selenium
through Debian's chromedriver. Nothing is installed here: without them the tests skip, saying
what is missing (.ci/run installs both).

The browser resolves no host name but the loopback address (--host-resolver-rules), and
`requests()` lists every URL the page asked for (from the DevTools performance log), so a test
proves the page needs no network but the daemon's address.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOT_ENV = "RUNWATCHD_WRITE_SCREENSHOT"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "status-page.png"


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401 - only asking whether it is there
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no chromium here (apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver here (apt-get install chromium-driver)"
    return None


class Browser:
    """One headless chromium page, with waits and the list of URLs it requested."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._log: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args: object) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll `predicate` (JavaScript errors count as not yet) until truthy or timeout."""
        def attempt() -> Any:
            try:
                return predicate()
            except Exception:  # noqa: BLE001 - the page may be between two renders
                return None
        return wait_for(attempt, timeout, interval=0.1)

    def rows(self) -> dict[str, dict[str, Any]]:
        """The files the page shows now: name -> its display state, texts and buttons."""
        return self.js("""
            const out = {};
            for (const row of document.querySelectorAll('article.file')) {
              const text = (sel) => {
                const n = row.querySelector(sel);
                return n ? n.textContent : null;
              };
              out[text('.name')] = {display: row.dataset.display, badge: text('.badge'),
                reason: text('.reason'), advice: text('.advice'),
                outputs: [...row.querySelectorAll('a.output')].map((a) => a.textContent),
                retry: row.querySelector('button.retry') !== null};
            }
            return out;""")

    def alert_text(self) -> str | None:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            return str(self.driver.switch_to.alert.text)
        except NoAlertPresentException:
            return None

    def requests(self) -> list[str]:
        """Every URL the page has requested so far (DevTools' Network.requestWillBeSent)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self._log.append(message["params"]["request"])
        return [r["url"] for r in self._log]

    def screenshot(self, path: Path, width: int = 1280) -> None:
        """The whole page, however long, as a PNG."""
        height = int(self.js("return document.documentElement.scrollHeight"))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless chromium that can reach nothing but 127.0.0.1; skips the test without one."""
    why = missing()
    if why is not None:
        pytest.skip(f"browser test: {why}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(p for b in BROWSERS if (p := shutil.which(b)))
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                "--disable-component-update", f"--window-size={width},{height}",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # chromium refuses to run as root with it
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # Keep a dialog open, so that a test sees an alert() a hostile name might have raised.
    options.set_capability("unhandledPromptBehavior", "ignore")
    service = Service(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


def write_screenshot(page: Browser) -> None:
    """docs/status-page.png for the README, only when RUNWATCHD_WRITE_SCREENSHOT=1."""
    if os.environ.get(SCREENSHOT_ENV) == "1":
        page.screenshot(SCREENSHOT)
