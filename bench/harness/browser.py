"""A real headless browser for the tests: Debian's chromium driven by its chromedriver through
selenium (no browser download). The machine's network is closed: every background service of
the browser is switched off and each browser gets a new empty profile."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1100")


class BrowserMissing(RuntimeError):
    """No headless browser here: says what to install (a test skips, a benchmark goes on without)."""


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver); BrowserMissing naming what to install where they are not here."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise BrowserMissing("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserMissing("selenium is not installed (pip install -e '.[test]')") from None
    return browser, driver


def open_browser():
    """A new headless chromium with an empty profile; quit() it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='folk-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (the log is drained)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_until(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def artifact(name: str, fallback: Path) -> Path:
    """Where a test writes a file for its log: $FOLK_TEST_ARTIFACTS, else ``fallback``."""
    folder = Path(os.environ.get("FOLK_TEST_ARTIFACTS") or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
