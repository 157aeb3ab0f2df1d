"""Browser fixtures, the only ones every browser test uses: Debian's chromium driven by Playwright
(never a downloaded browser), launched by ``tests.support.browser.launch``.

- ``playwright``: the sync Playwright driver of a test module (two sync drivers cannot run in one
  thread). Module-scoped on purpose: while a sync driver runs, its event loop counts as running
  in the main thread, and ``asyncio.run`` in any later test would fail.
- ``plain_browser``: chromium without extensions, one per module (new contexts and pages from it).
- ``extension_browser``: chromium with the unpacked extension from ``extension/`` loaded, one per
  module (an ``ExtensionBrowser``).
- ``page_server``: serve HTML pages from 127.0.0.1 on a free port.
- ``module_hubs``: start real hubs that live for a whole test module.

What is missing (chromium, Playwright, the extension's vendored library) skips a test here, and
fails it under ``CI=true``, where browser tests must run.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.server import BackgroundHub
from tests.support import browser as chromium
from tests.support import unavailable
from tests.support.hub import hub_settings


@pytest.fixture(scope="module")
def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - requirements-dev.txt pins it
        unavailable("playwright is not installed: pip install -r requirements-dev.txt")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def plain_browser(playwright):
    if reason := chromium.missing():
        unavailable(reason)
    b = chromium.launch(playwright.chromium)
    yield b
    b.close()


@pytest.fixture(scope="module")
def extension_browser(playwright, tmp_path_factory):
    if reason := chromium.missing(extension=True):
        unavailable(reason)
    ctx = chromium.launch(playwright.chromium, tmp_path_factory.mktemp("chromium-profile"), chromium.EXTENSION)
    browser = chromium.ExtensionBrowser(ctx)
    browser.worker  # noqa: B018 - wait for the worker to exist
    yield browser
    ctx.close()


@pytest.fixture(scope="module")
def page_server():
    server = chromium.PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def module_hubs(tmp_path_factory):
    """``start(**settings)`` starts a real hub (settings as in tests.support.hub.hub_settings) that
    lives until the end of the module; each gets its own directory unless ``db_path`` is given."""
    hubs: list[BackgroundHub] = []

    def start(**overrides: Any) -> BackgroundHub:
        settings = hub_settings(tmp_path_factory.mktemp("hub"), **overrides)
        bg = BackgroundHub(settings).__enter__()
        hubs.append(bg)
        return bg

    yield start
    for bg in hubs:
        bg.stop()
