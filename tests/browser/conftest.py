"""End-to-end tests of the Model Reference page in headless Chromium, driven by Playwright.

They need Debian's `chromium` package at /usr/bin/chromium and the `playwright` Python package
(no browser download: Playwright drives the system Chromium). Without either, they skip.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import KEY, Server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STICKY = ".site-header, .pg-result"
UNSTICK_JS = f"""() => {{
  document.querySelectorAll('{STICKY}').forEach(n => {{ n.style.position = 'static'; }});
  document.querySelectorAll('img[loading=lazy]').forEach(i => {{ i.loading = 'eager'; }});
}}"""
RESTICK_JS = f"() => document.querySelectorAll('{STICKY}').forEach(n => n.style.position = '')"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real `imagehub serve` with the demo provider for the whole module."""
    # loopback allow-listed: a test's input image URL on a closed local port must pass the
    # submit's URL check and fail when downloaded
    env = {"IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1/32"}
    hub = Server(tmp_path_factory.mktemp("browser") / "data", env)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab on the hub's page, which records every request the page makes."""

    def __init__(self, tab: Any, server: Server) -> None:
        self.tab = tab
        self.server = server
        self.requests: list[str] = []
        self.errors: list[str] = []
        #: URLs outside the hub the test itself typed in (an input image's own address)
        self.allowed: list[str] = []
        #: where the API key went: every request that carried an Authorization header
        self.authorized: list[str] = []
        tab.on("request", self._record)
        tab.on("pageerror", lambda error: self.errors.append(str(error)))

    def _record(self, request: Any) -> None:
        self.requests.append(request.url)
        if "authorization" in request.headers:
            self.authorized.append(request.url)

    def check_clean(self) -> None:
        """No script error, and nothing loaded from anywhere but the hub: it works offline."""
        assert not self.errors, f"the page raised: {self.errors}"
        elsewhere = [
            url
            for url in self.requests
            if not url.startswith((self.server.url + "/", "data:", "blob:", *self.allowed))
        ]
        assert not elsewhere, f"the page reached beyond the hub: {elsewhere}"
        api = self.server.url + "/hub/v1/"
        leaked = [url for url in self.authorized if not url.startswith(api)]
        assert not leaked, f"the API key went beyond the hub's API: {leaked}"

    def open(self, fragment: str = "") -> Any:
        self.tab.goto(self.server.url + "/" + fragment)
        self.tab.wait_for_selector("html[data-ready=true]")
        return self.tab

    def enter_key(self, key: str = KEY) -> None:
        self.tab.fill("#api-key", key)
        self.tab.press("#api-key", "Tab")

    def screenshot(self, name: str, selector: str | None = None, *, full: bool = True) -> Path:
        """Save a screenshot into test-artifacts/: the page, or one element of it."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # sticky parts would be drawn mid-page in a full-page capture; images must have loaded
        self.tab.evaluate(UNSTICK_JS)
        self.tab.wait_for_function("() => [...document.images].every(i => i.complete)")
        if selector is None:
            self.tab.screenshot(path=str(path), full_page=full)
        else:
            self.tab.locator(selector).screenshot(path=str(path))
        self.tab.evaluate(RESTICK_JS)
        return path


def _context(browser: Any, server: Server, **options: Any) -> Any:
    context = browser.new_context(**options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    context = _context(browser, server, viewport={"width": 1280, "height": 900})
    tab = Page(context.new_page(), server)
    yield tab
    context.close()
    tab.check_clean()


@pytest.fixture
def phone(browser: Any, server: Server) -> Iterator[Page]:
    context = _context(
        browser, server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    tab = Page(context.new_page(), server)
    yield tab
    context.close()
    tab.check_clean()


@pytest.fixture
def zh_page(browser: Any, server: Server) -> Iterator[Page]:
    """A tab of a browser set to Simplified Chinese: it asks for `Accept-Language: zh-CN`."""
    context = _context(browser, server, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = Page(context.new_page(), server)
    yield tab
    context.close()
    tab.check_clean()


@pytest.fixture
def narrow(browser: Any, server: Server) -> Iterator[Page]:
    """A tab on the narrowest common phone screen, 360 CSS pixels wide."""
    context = _context(
        browser, server, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    tab = Page(context.new_page(), server)
    yield tab
    context.close()
    tab.check_clean()


def expect(target: Any) -> Any:
    """Playwright's retrying assertions, imported late so a missing playwright only skips."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)
