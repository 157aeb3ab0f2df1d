"""The console in a real browser: Debian's chromium (Playwright) against `streamlit run` and a
live hub whose simulated PBX places about a call a second.

Signs in, waits for a live call on the Live page, dials from the contact grid, runs the CRM
check, and leaves a screenshot of each page in test-output/console/ (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest

from pipelines.server import BackgroundHub
from tests.support import ROOT, free_port
from tests.support.hub import TOKENS, Agent, hub_settings, wait_rows

OUT = ROOT / "test-output" / "console"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory):
    """The hub in demo mode: the simulated PBX 5x faster than life (12 calls a minute of sim time:
    about one call a second), calls ringing and being answered all the time."""
    hub = BackgroundHub(hub_settings(tmp_path_factory.mktemp("hub"), sim_calls_per_minute=12.0,
                                     sim_speed=5.0, sim_seed="console-browser")).__enter__()
    browsers = [ExtensionLike(hub, TOKENS[name]) for name in ("noa", "avi", "sarah")]
    for b in browsers:
        b.start()
    yield hub
    for b in browsers:
        b.close()
    hub.stop()


class ExtensionLike(threading.Thread):
    """An agent's browser as the extension behaves: signed in over the hub's WebSocket, it acks
    every pop as shown and clicks every other one (so the pop funnel has something to show)."""

    def __init__(self, hub: BackgroundHub, token: str):
        super().__init__(daemon=True)
        self.agent, self.stop = Agent(hub, token, client="extension"), threading.Event()
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pop = self.agent.recv("pop", timeout=0.5)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the hub went away at the end of the module
                return
            if pop["call_id"] in self.seen:
                continue
            self.seen.add(pop["call_id"])
            self.agent.send({"type": "ack", "call_id": pop["call_id"], "event": "shown"})
            if len(self.seen) % 2:
                self.agent.send({"type": "ack", "call_id": pop["call_id"], "event": "clicked"})

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.agent.close()


@pytest.fixture(scope="module")
def console_url(demo_hub, tmp_path_factory):
    """`streamlit run console/app.py` as `make run` starts it, pointed at the demo hub."""
    port = free_port()
    log = (tmp_path_factory.mktemp("streamlit") / "streamlit.log").open("w+")
    env = {**os.environ, "CALLPOP_HUB_URL": demo_hub.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            proc.kill()
            pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def settled(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished the current run (the running indicator is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout)
    page.wait_for_timeout(300)


def shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main area, so the viewport is stretched to
    the content's height for the picture (full_page alone would cut at the window)."""
    settled(page)
    OUT.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=30_000)
    settled(page)


def test_console_in_a_real_browser(plain_browser, console_url, demo_hub):
    page = plain_browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(console_url)
    page.get_by_role("heading", name="Live", exact=True).wait_for(timeout=30_000)
    settled(page)

    # Sign in: a password field; afterwards the name shows, never the token.
    token = page.get_by_role("textbox", name="Agent token")
    assert token.get_attribute("type") == "password"
    token.fill(TOKENS["dana"])  # a supervisor sees every live call
    page.get_by_role("button", name="Sign in").click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Dana Katz").wait_for(timeout=30_000)
    assert TOKENS["dana"] not in page.content()

    # A live call appears by itself (the fragment polls; no reload, no click).
    heading = page.get_by_text(re.compile(r"^Calls now · \d+ ringing · \d+ in progress$"))
    heading.wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while heading.inner_text().strip() == "Calls now · 0 ringing · 0 in progress":
        assert time.monotonic() < deadline, "no live call appeared within 30 s"
        page.wait_for_timeout(500)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=10_000)
    assert page.locator('[data-testid="stMetricValue"]').first.is_visible()
    shot(page, "live")

    # Contacts: search, select the first row by its row marker, Dial; the progress shows beside.
    go(page, "Contacts")
    search = page.get_by_role("textbox", name="Search contacts")
    search.fill("voicenter")
    search.press("Enter")
    settled(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)  # header row ~35 px, then the first row's marker
    dial = page.get_by_role("button", name=re.compile("Dial"))
    dial.wait_for()
    deadline = time.monotonic() + 10
    while dial.is_disabled():
        assert time.monotonic() < deadline, "selecting a row did not enable Dial"
        page.wait_for_timeout(200)
    dial.click()
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stProgress"], [data-testid="stAlert"]').first.wait_for(timeout=15_000)
    assert len(wait_rows(demo_hub, "SELECT source FROM dials WHERE source = 'console'", timeout=15)) == 1
    # The dial ends (bridged, or failed with its reason) and the panel says so.
    main.get_by_text(re.compile(r"^(Connected: talk on your phone|Failed: .+|The call ended)")).first.wait_for(
        timeout=30_000)
    shot(page, "contacts")

    go(page, "Analytics")
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    shot(page, "analytics")
    for tab, name in (("Pops", "analytics-pops"), ("Click-to-call", "analytics-dials"),
                      ("By agent, extension, hour", "analytics-by")):
        page.get_by_role("tab", name=tab).click()
        shot(page, name)

    # CRM check against the hub's sample CRM (the default URL).
    go(page, "CRM check")
    page.get_by_role("button", name="Run lookup").click()
    page.get_by_text("The answer follows the CRM contract.").wait_for(timeout=30_000)
    shot(page, "crm")

    assert not errors, errors
    for name in ("live", "contacts", "analytics", "crm"):
        assert (OUT / f"{name}.png").stat().st_size > 10_000


def _session_cookie(context) -> dict | None:
    from console.signins import COOKIE
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def test_a_sign_in_survives_a_reload_and_a_new_tab_and_sign_out_ends_it(plain_browser, console_url):
    from console.signins import COOKIE
    context = plain_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(console_url)
    sidebar = page.locator('[data-testid="stSidebar"]')
    asks = sidebar.get_by_role("textbox", name="Agent token")
    asks.wait_for(timeout=30_000)
    asks.fill(TOKENS["noa"])
    sidebar.get_by_role("button", name="Sign in").click()
    sidebar.get_by_text("Noa Levi").wait_for(timeout=30_000)
    deadline = time.monotonic() + 10
    while (cookie := _session_cookie(context)) is None:
        assert time.monotonic() < deadline, "no session cookie was set"
        page.wait_for_timeout(200)
    # Only an opaque id reaches the browser: not the token, in no cookie, page or URL.
    assert all(TOKENS["noa"] not in c["value"] for c in context.cookies())
    assert cookie["sameSite"] == "Strict" and cookie["expires"] > time.time() + 11 * 3600
    assert TOKENS["noa"] not in page.url and TOKENS["noa"] not in page.content()

    page.reload()
    sidebar.get_by_text("Noa Levi").wait_for(timeout=30_000)
    other = context.new_page()  # a new tab of the same browser
    other.goto(console_url)
    other.locator('[data-testid="stSidebar"]').get_by_text("Noa Levi").wait_for(timeout=30_000)
    other.close()

    settled(page)
    sidebar.get_by_role("button", name="Sign out").click()
    asks.wait_for(timeout=30_000)
    page.reload()
    asks.wait_for(timeout=30_000)
    settled(page)
    assert sidebar.get_by_text("Noa Levi").count() == 0

    # The revoked id, put back by hand, and a forged one: both ask for a sign-in.
    for value in (cookie["value"], "forged-" + "x" * 40):
        context.add_cookies([{"name": COOKIE, "value": value, "url": console_url}])
        page.reload()
        asks.wait_for(timeout=30_000)
        settled(page)
        assert sidebar.get_by_text("Noa Levi").count() == 0
    context.close()
