"""Missed calls in chromium: a call that rang at the agent and was not answered shows in the
extension's popup page with a badge count; "Call back" places a dial linked to it, "Done" clears
it, and the badge goes back to the connection's state."""

from __future__ import annotations

import pytest

from tests.support import wait_until
from tests.support.hub import TOKENS, post_event, wait_rows

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(module_hubs):
    return module_hubs()


@pytest.fixture(scope="module")
def browser(extension_browser, hub):
    extension_browser.sign_in(hub, TOKENS["noa"], popBehaviour="stay")
    return extension_browser


def missed(hub, call_id: str, caller: str) -> None:
    for type_ in ("ringing", "hangup"):
        r = post_event(hub, call_id=call_id, type=type_, caller=caller, callee="0722776773", extension="201")
        assert r.status_code == 202, r.text


def popup(browser):
    page = browser.ctx.new_page()
    page.goto(f"chrome-extension://{browser.extension_id}/popup/popup.html")
    return page


def test_a_missed_call_shows_in_the_popup_with_a_badge_and_call_back_dials_it(browser, hub):
    missed(hub, "inbox-1", "0722776772")  # John Doe in the sample CRM
    wait_until(lambda: browser.badge() == "1", 20, what="the badge counting one missed call")
    page = popup(browser)
    try:
        item = page.locator("li[data-call-id='inbox-1']")
        item.wait_for(timeout=10000)
        assert item.locator(".title").inner_text() == "John Doe"
        assert item.locator(".detail").inner_text() == "072-277-6772"
        assert item.locator(".label").inner_text() == "Missed call" and item.locator(".when").inner_text()
        assert page.locator("#count").inner_text() == "1"
        missed(hub, "inbox-2", "0545550123")
        wait_until(lambda: browser.badge() == "2", 20, what="the badge counting two")
        page.locator("li[data-call-id='inbox-2']").wait_for(timeout=10000)  # the open popup follows the inbox
        assert page.locator("li").count() == 2

        item.locator("button.callback").click()
        dials = wait_rows(hub, "SELECT * FROM dials WHERE callback_for = 'inbox-1'", timeout=20)
        assert len(dials) == 1 and dials.leg_b_e164[0] == "+972722776772" and dials.source[0] == "extension"
        row = wait_rows(hub, "SELECT * FROM missed_calls WHERE handled_how = 'called_back'", timeout=20).iloc[0]
        assert (row.call_id, row.callback_dial_id) == ("inbox-1", dials.dial_id[0])
        page.locator("li[data-call-id='inbox-1']").wait_for(state="detached", timeout=10000)
        wait_until(lambda: browser.badge() == "1", 20, what="the badge after the call back")

        page.locator("li[data-call-id='inbox-2'] button.done").click()
        page.locator("#empty").wait_for(state="visible", timeout=10000)
        wait_until(lambda: browser.badge() == "on", 20, what="the badge back to the connection's state")
        done = wait_rows(hub, "SELECT * FROM missed_calls WHERE handled_how = 'done'", timeout=20)
        assert done.call_id[0] == "inbox-2"
    finally:
        page.close()
