"""The Agents page in a real browser (the console's streamlit run, Debian's chromium): a
supervisor adds an agent and sees its token once, makes a sign-in code, and the agent signs in to
the console with that code. The hub has an agents file of its own (never the repository's)."""

from __future__ import annotations

import re

import pytest

from pipelines.server import BackgroundHub
from tests.browser.test_console_browser import console_url, go, settled, shot  # noqa: F401
from tests.support import ROOT
from tests.support.hub import TOKENS, api, hub_settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory):  # the hub console_url points the console at
    folder = tmp_path_factory.mktemp("agents-hub")
    agents = folder / "agents.csv"
    agents.write_text((ROOT / "data" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    hub = BackgroundHub(hub_settings(folder, agents_csv=str(agents), signin_try_every_s=0.01)).__enter__()
    yield hub
    hub.stop()


def sign_in(page, console_url, secret: str, name: str) -> None:
    page.goto(console_url)
    page.get_by_role("heading", name="Live", exact=True).wait_for(timeout=30_000)
    settled(page)
    page.get_by_role("textbox", name="Agent token or sign-in code").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebar"]').get_by_text(name).wait_for(timeout=30_000)


def test_a_supervisor_adds_an_agent_who_signs_in_with_a_code(plain_browser, console_url, demo_hub):
    page = plain_browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, console_url, TOKENS["dana"], "Dana Katz")
    go(page, "Agents")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Add an agent").click()
    main.get_by_role("textbox", name="Id (letters, digits, . _ -)").fill("maya")
    main.get_by_role("textbox", name="Name").last.fill("Maya Ben")
    main.get_by_role("textbox", name="Extension").last.fill("206")
    main.get_by_role("button", name="Add").click()
    main.get_by_text("shown this once").wait_for(timeout=30_000)
    token = main.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert api(demo_hub, "GET", "/api/me", token).json()["id"] == "maya"
    shot(page, "agents")

    main.get_by_role("button", name="Done: hide it").click()
    settled(page)
    assert token not in page.content()
    main.get_by_role("button", name="Sign-in code").click()
    main.get_by_text("One-time sign-in code for").wait_for(timeout=30_000)
    code = main.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code), code
    shot(page, "agents-code")

    agent = plain_browser.new_page(viewport={"width": 1440, "height": 900})
    sign_in(agent, console_url, code, "Maya Ben")
    assert not agent.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Agents").count()
    assert not errors, errors
    agent.close()
    page.close()
