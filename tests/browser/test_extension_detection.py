"""The extension in chromium: numbers marked on a real page (and nothing else), and the
"Click2Call to <number>" action producing a dial at the real hub with progress notifications."""

from __future__ import annotations

import pytest

from tests.support import wait_until
from tests.support.hub import TOKENS, wait_rows

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>CRM</title>
<style>p { margin: 4px } .n::after { content: " 03-1111111"; }</style></head>
<body>
<h1>Contacts</h1>
<p id="il">Noa: <span id="noa">054-555-7777</span>, office 03-1234567, from abroad +972-72-277-6772.</p>
<p id="us">New York desk: +1 (212) 555-0123</p>
<p id="traps">Meeting 2024-11-25, version 2.10.0-2.12.3, price ₪1,299.90, order no. 0722776772,
  server 192.168.100.200, card 4111 1111 1111 1111, ZIP 94105-1234, build 20241125.</p>
<p id="links"><a href="tel:+442079460321">London office</a> · <a href="callto:0545559999">Busy line</a>
  · <a href="https://example.com/072-277-6772">a web link</a></p>
<p><input id="in" value="054-555-8888"> <textarea>052-765-4321</textarea></p>
<div contenteditable="true">Draft: 050-711-2233</div>
<pre>03-9876543</pre> <code>04-8123456</code>
<script>var hidden = "09-9551234";</script>
<p class="n" id="pseudo">After me comes a number drawn by CSS</p>
<p id="late"></p>
<p id="changed">nothing yet</p>
<script>
  setTimeout(() => {
    document.getElementById("late").textContent = "Added later: 08-6401234";
    document.getElementById("changed").firstChild.data = "changed to 04-8123457";
  }, 400);
</script>
</body></html>
"""

EXPECTED_TEXT = {
    ("054-555-7777", "+972545557777"), ("03-1234567", "+97231234567"), ("+972-72-277-6772", "+972722776772"),
    ("+1 (212) 555-0123", "+12125550123"), ("08-6401234", "+97286401234"), ("04-8123457", "+97248123457"),
}
EXPECTED_LINKS = {("tel:+442079460321", "+442079460321"), ("callto:0545559999", "+972545559999")}


@pytest.fixture(scope="module")
def hub(module_hubs):
    return module_hubs(sim_speed=20.0)


@pytest.fixture(scope="module")
def browser(extension_browser, hub):
    extension_browser.sign_in(hub, TOKENS["noa"], defaultCountry="IL", legA="extension", detection=True,
                              detectionOffSites=[])
    return extension_browser


@pytest.fixture
def crm_page(browser, page_server):
    url = page_server.add("/crm.html", PAGE)
    page = browser.ctx.new_page()
    page.goto(url)
    yield page
    page.close()


def test_a_page_with_numbers_and_traps_marks_exactly_the_numbers(browser, crm_page):
    def settled():
        found = browser.numbers_on(crm_page)
        texts = {(n["text"], n["e164"]) for n in found if n["via"] == "text"}
        return found if EXPECTED_TEXT <= texts else None

    found = wait_until(settled, 20, what="the numbers added after load")
    assert {(n["text"], n["e164"]) for n in found if n["via"] == "text"} == EXPECTED_TEXT
    assert {(n["text"], n["e164"]) for n in found if n["via"] == "link"} == EXPECTED_LINKS
    # The marks are CSS highlights the page itself can see; no element was added or changed.
    marked = crm_page.evaluate("() => [...(CSS.highlights.get('callpop-number') || [])].map(r => r.toString()).sort()")
    assert marked == sorted(text for text, _ in EXPECTED_TEXT)
    # The DOM is the served page plus the page's own two changes, nothing of ours.
    assert crm_page.evaluate(r"""html => {
        const d = new DOMParser().parseFromString(html, "text/html");
        d.getElementById("late").textContent = "Added later: 08-6401234";
        d.getElementById("changed").firstChild.data = "changed to 04-8123457";
        return d.body.innerHTML === document.body.innerHTML
            && d.head.innerHTML === document.head.innerHTML.replace(/<title>.*<\/title>/, "<title>CRM</title>");
    }""", PAGE)


def right_click_on(page, text: str) -> None:
    """A real right-click in the middle of the first occurrence of `text` on the page."""
    box = page.evaluate("""t => {
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            const i = n.data.indexOf(t);
            if (i < 0) continue;
            const r = new Range(); r.setStart(n, i); r.setEnd(n, i + t.length);
            const b = r.getBoundingClientRect();
            return {x: b.left + b.width / 2, y: b.top + b.height / 2};
        }
        return null;
    }""", text)
    assert box, text
    page.mouse.click(box["x"], box["y"], button="right")


def menu_after_right_click(browser, page, text):
    before = browser.session("menu") or {}
    right_click_on(page, text)
    page.keyboard.press("Escape")
    wait_until(lambda: (browser.session("menu") or {}).get("menu", {}).get("at") != before.get("menu", {}).get("at"),
               15, what="the content script's report")
    return browser.evaluate("self.callpop.app.menu.shown")


def test_the_menu_item_is_titled_with_the_number_and_hidden_elsewhere(browser, crm_page):
    browser.numbers_on(crm_page)
    assert menu_after_right_click(browser, crm_page, "054-555-7777") == {"visible": True, "title": "Click2Call to 054-555-7777"}
    assert menu_after_right_click(browser, crm_page, "+1 (212) 555-0123") == {
        "visible": True, "title": "Click2Call to +1 212 555 0123"}
    assert menu_after_right_click(browser, crm_page, "2024-11-25")["visible"] is False
    assert menu_after_right_click(browser, crm_page, "Contacts")["visible"] is False
    assert menu_after_right_click(browser, crm_page, "London office") == {
        "visible": True, "title": "Click2Call to +44 20 7946 0321"}
    # A selection: a number shows the item, other text does not.
    crm_page.evaluate("""() => { const r = new Range(); const t = document.getElementById('noa').firstChild;
        r.setStart(t, 0); r.setEnd(t, t.length); getSelection().removeAllRanges(); getSelection().addRange(r); }""")
    assert menu_after_right_click(browser, crm_page, "054-555-7777")["visible"] is True
    crm_page.evaluate("""() => { const r = new Range(); const t = document.querySelector('h1').firstChild;
        r.setStart(t, 0); r.setEnd(t, t.length); getSelection().removeAllRanges(); getSelection().addRange(r); }""")
    assert menu_after_right_click(browser, crm_page, "Contacts")["visible"] is False
    crm_page.evaluate("() => getSelection().removeAllRanges()")


def click2call(browser, page, text):
    """Right-click `text`, then choose the menu item (its handler, called in the worker)."""
    menu_after_right_click(browser, page, text)
    tab = browser.tab_id(page)
    return browser.evaluate("""([tab, url]) => self.callpop.onMenuClicked(
        {menuItemId: 'callpop-dial', frameId: 0, pageUrl: url, editable: false}, {id: tab})""", [tab, page.url])


def test_click2call_on_a_detected_number_dials_through_the_hub(browser, crm_page, hub):
    browser.numbers_on(crm_page)
    dial_id = click2call(browser, crm_page, "054-555-7777")
    assert dial_id
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND outcome IS NOT NULL", [dial_id], timeout=30)
    assert len(row) == 1
    assert (row.source[0], row.agent_id[0], row.leg_a[0], row.leg_a_kind[0], row.leg_b_e164[0], row.outcome[0]) == (
        "extension", "noa", "201", "extension", "+972545557777", "bridged")
    record = wait_until(lambda: (r := browser.bubble(f"dial:{dial_id}")) and r.get("state") == "bridged" and r, 30,
                        what="the bridged notification")
    assert record["states"] == ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged"]
    assert record["title"] == "Connected to 054-555-7777"
    assert f"dial:{dial_id}" in browser.notification_ids()


def test_click2call_with_the_mobile_as_leg_a_and_a_number_that_never_answers(browser, crm_page, hub):
    browser.configure(legA="mobile")
    try:
        browser.numbers_on(crm_page)
        dial_id = click2call(browser, crm_page, "Busy line")  # callto:0545559999: the sim never answers it
        record = wait_until(lambda: (r := browser.bubble(f"dial:{dial_id}")) and r.get("state") == "failed" and r, 30,
                            what="the failed notification")
        assert record["shown"][0]["message"] == (
            "Your mobile (054-812-4567) is about to ring. Answer it and you will be connected to 054-555-9999.")
        assert record["title"] == "Call to 054-555-9999 failed"
        assert record["message"] == "054-555-9999 did not answer (leg_b_no_answer)."
        row = wait_rows(hub, "SELECT leg_a, outcome, error FROM dials WHERE dial_id = ? AND outcome IS NOT NULL",
                        [dial_id], timeout=20)
        assert (row.leg_a[0], row.outcome[0], row.error[0]) == ("+972548124567", "failed", "leg_b_no_answer")
    finally:
        browser.configure(legA="extension")



def test_detection_off_for_a_site_marks_nothing_but_a_selected_number_can_still_be_called(browser, crm_page):
    browser.numbers_on(crm_page)
    browser.configure(detectionOffSites=["127.0.0.1"])
    try:
        wait_until(lambda: crm_page.evaluate("() => !CSS.highlights.has('callpop-number')"), 15,
                   what="the marks to go")
        crm_page.reload()
        state = browser.page_state(crm_page)
        assert (state["active"], state["numbers"]) == (False, [])
        assert crm_page.evaluate("() => !CSS.highlights.has('callpop-number')")
        assert menu_after_right_click(browser, crm_page, "054-555-7777")["visible"] is False
        crm_page.evaluate("""() => { const r = new Range(); const t = document.getElementById('noa').firstChild;
            r.setStart(t, 0); r.setEnd(t, t.length); getSelection().removeAllRanges(); getSelection().addRange(r); }""")
        assert menu_after_right_click(browser, crm_page, "054-555-7777") == {
            "visible": True, "title": "Click2Call to 054-555-7777"}
    finally:
        browser.configure(detectionOffSites=[])
