"""A real headless Chromium for the console's tests: Debian's `chromium` and
`chromium-driver`, installed with apt when missing (CI runs as root on a machine with nothing
preinstalled), driven by selenium; and what its DevTools performance log saw on the network."""

import json
import os
import shutil
import subprocess

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

PACKAGES = ("chromium", "chromium-driver")  # Debian's
BINARIES = {"chromium": "chromium", "chromedriver": "chromium-driver"}
WAIT = 30.0
"""Seconds an explicit wait gives the page (a demo job trains in a few)."""


def install_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver, installed once with apt if missing. Without
    them the tests fail, saying why: they are never skipped."""
    missing = [package for binary, package in BINARIES.items() if not shutil.which(binary)]
    if missing:
        if os.geteuid() != 0:
            pytest.fail(f"{' and '.join(missing)} missing: `apt-get install {' '.join(PACKAGES)}`")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]  # another install may hold the lock
        for command in ([*apt, "update"], [*apt, "install", "-y", *PACKAGES]):
            run = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if run.returncode != 0:
                stderr = run.stderr[-2000:]
                pytest.fail(f"`{' '.join(command)}` failed ({run.returncode}):\n{stderr}")
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if not all(found):
        pytest.fail(f"{' and '.join(PACKAGES)} were installed but are not on PATH")
    return found[0], found[1]


def start_chromium(binary: str, driver: str, downloads: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option(
        "prefs", {"download.default_directory": downloads, "download.prompt_for_download": False}
    )
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads}
    )
    return browser


class NetworkLog:
    """Every request the browser made and the bytes each page load received, from the
    DevTools performance log (which `get_log` drains: read it through here only)."""

    def __init__(self, browser: webdriver.Chrome) -> None:
        self.browser = browser
        self.urls: list[str] = []
        self.received: dict[str, int] = {}  # request id -> encoded bytes
        self.url_of: dict[str, str] = {}

    def drain(self) -> None:
        for entry in self.browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                self.urls.append(params["request"]["url"])
                self.url_of[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.loadingFinished":
                self.received[params["requestId"]] = int(params["encodedDataLength"])

    def reset_bytes(self) -> None:
        self.drain()
        self.received.clear()

    def bytes_by_url(self) -> dict[str, int]:
        self.drain()
        return {self.url_of.get(rid, rid): size for rid, size in self.received.items()}

    def bytes_from(self, fragment: str) -> list[int]:
        """The bytes of every response whose URL holds `fragment` (one per request)."""
        self.drain()
        return [size for rid, size in self.received.items() if fragment in self.url_of.get(rid, "")]


def wait_for(browser: webdriver.Chrome, condition, timeout: float = WAIT):
    """An explicit wait: condition(browser) truthy, or a TimeoutException naming it."""
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)
