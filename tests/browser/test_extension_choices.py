"""Several matches in chromium: a pop with the CRM's CONTACTS shows the choice as the bubble's
buttons (or "More…", a page listing them all); choosing sends the ack with `chosen`, opens the
contact, and the next call from that number pops the chosen contact."""

from __future__ import annotations

import pytest

from tests.support import wait_until
from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, post_event, wait_rows

pytestmark = pytest.mark.browser

TWO, FOUR = "0535551000", "0535552000"


@pytest.fixture(scope="module")
def crm(page_server):
    pages = [page_server.add(f"/contacts/{i}", f"<h1>Person {i}</h1>") for i in range(4)]
    candidates = [{"NAME": f"Person {i}", "COMPANY": "Law", "URL": url} for i, url in enumerate(pages)]
    with FakeCrm() as server:
        for number, n in ((TWO, 2), (FOUR, 4)):
            server.respond(number, contract("Several", "Law", n, page_server.url + "/search") |
                           {"CONTACTS": candidates[:n]})
        server.pages = pages
        yield server


@pytest.fixture(scope="module")
def hub(module_hubs, crm):
    return module_hubs(crm_url=crm.url, crm_phone_format="national")


@pytest.fixture(scope="module")
def browser(extension_browser, hub):
    extension_browser.sign_in(hub, TOKENS["noa"], popBehaviour="stay")
    return extension_browser


def ring(hub, caller: str, call_id: str) -> str:
    r = post_event(hub, call_id=call_id, type="ringing", caller=caller, callee="0722776773", extension="201")
    assert r.status_code == 202, r.text
    return call_id


def hang_up(hub, caller: str, call_id: str) -> None:
    assert post_event(hub, call_id=call_id, type="hangup", caller=caller).status_code == 202


def bubble(browser, call_id: str, where=lambda r: True) -> dict:
    nid = f"pop:{call_id}"
    return wait_until(lambda: (r := browser.bubble(nid)) and where(r) and nid in browser.notification_ids() and r,
                      20, what=f"the bubble of {call_id}")


def tab_with(browser, url: str) -> dict:
    return wait_until(lambda: next((t for t in browser.tabs() if t["url"].startswith(url)), None), 10,
                      what=f"a tab on {url}")


def test_two_contacts_are_two_buttons_and_a_click_chooses_one(browser, hub, crm):
    record = bubble(browser, ring(hub, TWO, "ch-1"))
    assert record["title"] == "2 matches" and [b["title"] for b in record["buttons"]] == [
        "Person 0 (Law)", "Person 1 (Law)"]
    browser.evaluate("([id, i]) => self.callpop.app.popups.buttonClicked(id, i)", ["pop:ch-1", 1])
    tab = tab_with(browser, crm.pages[1])
    browser.evaluate("id => chrome.tabs.remove(id)", tab["id"])
    row = wait_rows(hub, "SELECT * FROM contact_choices WHERE call_id = 'ch-1'", timeout=20).iloc[0]
    assert row.url == crm.pages[1] and row.agent_id == "noa" and row.candidates == 2
    assert "pop:ch-1" not in browser.notification_ids()
    hang_up(hub, TWO, "ch-1")

    again = bubble(browser, ring(hub, TWO, "ch-2"))  # the next call: the chosen contact, directly
    assert again["title"] == "Person 1" and again["url"] == crm.pages[1] and [b["title"] for b in again["buttons"]] == ["Add note"]
    hang_up(hub, TWO, "ch-2")


def test_more_than_two_open_the_choice_page(browser, hub, crm):
    record = bubble(browser, ring(hub, FOUR, "ch-3"))
    assert [b["title"] for b in record["buttons"]] == ["Person 0 (Law)", "More… (4 contacts)"]
    before = len(browser.tabs())
    browser.evaluate("([id, i]) => self.callpop.app.popups.buttonClicked(id, i)", ["pop:ch-3", 1])
    wait_until(lambda: len(browser.tabs()) == before + 1, 10, what="More… to open a tab")
    assert len(wait_rows(hub, "SELECT * FROM contact_choices WHERE call_id = 'ch-3'", timeout=0.3)) == 0
    # The page it opened (Playwright does not list a tab the extension opened on its own page:
    # the same page is opened here).
    page = browser.ctx.new_page()
    page.goto(f"chrome-extension://{browser.extension_id}/choose/choose.html?call=ch-3")
    page.wait_for_selector("#contacts button")
    assert page.locator("#contacts button").all_inner_texts() == [f"Person {i}Law" for i in range(4)]
    page.click("#contacts button[data-index='3']")
    tab_with(browser, crm.pages[3])
    row = wait_rows(hub, "SELECT * FROM contact_choices WHERE call_id = 'ch-3'", timeout=20).iloc[0]
    assert row.url == crm.pages[3] and row.candidates == 4
    wait_until(lambda: page.is_closed(), 10, what="the choice page to close")
    hang_up(hub, FOUR, "ch-3")
