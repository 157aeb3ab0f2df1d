"""Browser fixtures: Debian's chromium driven by Playwright (never a downloaded browser).

Generic fixtures any browser test can use:
- ``chromium_path``: the chromium executable. Missing: a failure under CI (``CI=true``), a skip
  elsewhere.
- ``sync_playwright_session``: the Playwright driver of a test module (two sync drivers cannot run
  in one thread). Module-scoped on purpose: while a sync driver runs, its event loop counts as
  running in the main thread, and ``asyncio.run`` in any later test would fail.
- ``page_server``: serve HTML pages from 127.0.0.1 on a free port.
- ``module_hubs``: start real hubs that live for a whole test module.

The extension's fixtures (``extension_browser``) launch chromium with the unpacked extension
from ``extension/`` loaded, one browser per test module.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pipelines.server import BackgroundHub
from testkit import browser as chromium
from tests.browser.extension_support import ExtensionBrowser, PageServer
from tests.support import hub_settings

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = chromium.chromium_path()
    if not os.access(path, os.X_OK):
        _unavailable(f"chromium not found at {path}: apt-get install chromium (make test does)")
    return path


@pytest.fixture(scope="module")
def sync_playwright_session():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - requirements-dev.txt pins it
        _unavailable("playwright is not installed: pip install -r requirements-dev.txt")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def page_server():
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def module_hubs(tmp_path_factory):
    """``start(**settings)`` starts a real hub (settings as in tests.support.hub_settings) that
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


@pytest.fixture(scope="module")
def extension_browser(chromium_path, sync_playwright_session, tmp_path_factory):
    if reason := chromium.missing():
        _unavailable(reason)
    profile = tmp_path_factory.mktemp("chromium-profile")
    ctx = chromium.launch_extension(sync_playwright_session.chromium, profile, chromium_path)
    browser = ExtensionBrowser(ctx)
    browser.worker  # noqa: B018 - wait for the worker to exist
    yield browser
    ctx.close()
