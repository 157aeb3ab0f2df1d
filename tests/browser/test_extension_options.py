"""The options page in chromium: "Test connection" names the agent or says exactly what failed;
saving validates first (a hub on another machine must be https://), then the worker signs in with
what was saved. The token is kept in chrome.storage.local, out of sync and out of the content
scripts' reach."""

from __future__ import annotations

import time

import pytest

from tests.support import ROOT, free_port, wait_until
from tests.support.hub import TOKENS, api, post_event

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def hub(module_hubs):
    return module_hubs()


@pytest.fixture
def options(extension_browser):
    extension_browser.configure(hubUrl="http://127.0.0.1:8765", token="", legA="extension", legANumber="",
                                defaultCountry="IL", popBehaviour="stay", detection=True, detectionOffSites=[])
    page = extension_browser.ctx.new_page()
    page.goto(f"chrome-extension://{extension_browser.extension_id}/options/options.html")
    # A locator, not wait_for_function: polling a JS string is eval, which the page's CSP refuses
    # (the first options.js read waits for chrome.storage.managed, slow while the browser starts).
    page.locator("#defaultCountry option").nth(200).wait_for(state="attached")
    yield page
    page.close()


def test_test_connection_shows_the_agent_or_the_exact_error(options, hub):
    options.fill("#hubUrl", hub.url)
    options.fill("#token", TOKENS["noa"])
    options.click("#test")
    result = options.locator("#test-result")
    result.filter(has_text="Connected as").wait_for()
    assert result.inner_text() == "Connected as Noa Levi (extension 201, mobile 054-812-4567, home 03-987-6543)."
    assert options.locator("#legA-mobile").inner_text() == "My mobile (054-812-4567)"

    options.fill("#token", "wrong-token")
    options.click("#test")
    result.filter(has_text="401").wait_for()
    assert result.inner_text().startswith("The hub answered 401 (unauthorized: ")

    options.fill("#hubUrl", f"http://127.0.0.1:{free_port()}")
    options.click("#test")
    result.filter(has_text="Could not reach").wait_for()
    assert "Is the hub running" in result.inner_text()


def test_saving_validates_and_the_worker_signs_in_with_the_saved_settings(options, hub, extension_browser):
    options.fill("#hubUrl", "ftp://nowhere")
    options.fill("#token", "")
    options.check("input[name=legA][value=other]")
    options.fill("#legANumber", "12")
    options.fill("#detectionOffSites", "mail.example.com\nnot a site!")
    options.click("#save")
    options.locator("#saved", has_text="Not saved").wait_for()
    errors = {el.get_attribute("data-for"): el.inner_text() for el in options.locator(".error[data-for]").all()
              if el.inner_text()}
    assert set(errors) == {"hubUrl", "token", "legANumber", "detectionOffSites"}
    stored = extension_browser.stored()
    assert stored["local"]["token"] == "" and "token" not in stored["sync"], "nothing was saved"

    options.fill("#hubUrl", hub.url + "/")
    options.fill("#token", TOKENS["noa"])
    options.fill("#legANumber", "+972 50-711-2200")  # the country chosen below is GB
    options.fill("#detectionOffSites", "https://Mail.Example.com/inbox")
    options.select_option("#defaultCountry", "GB")
    options.check("input[name=popBehaviour][value=fade]")
    options.click("#save")
    options.locator("#saved", has_text="Saved.").wait_for()
    stored = extension_browser.stored()
    saved = stored["sync"]
    assert {k: saved[k] for k in ("hubUrl", "legA", "legANumber", "defaultCountry", "popBehaviour",
                                  "detectionOffSites")} == {
        "hubUrl": hub.url, "legA": "other", "legANumber": "+972507112200",
        "defaultCountry": "GB", "popBehaviour": "fade", "detectionOffSites": ["mail.example.com"]}
    assert stored["local"] == {"token": TOKENS["noa"]}, "the token is kept in this browser only"
    assert "token" not in saved, "and never synced"
    extension_browser.wait_connected(hub)
    options.locator("#status.connected").wait_for()
    assert "Noa Levi" in options.locator("#status").inner_text()


def test_a_one_time_code_signs_the_extension_in_and_it_gets_pops(options, extension_browser, module_hubs,
                                                                  tmp_path):
    agents = tmp_path / "agents.csv"  # the code adds a token to the agent's row: a copy of the demo's file
    agents.write_text((ROOT / "data" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    hub = module_hubs(agents_csv=str(agents), signin_try_every_s=0.01)
    made = api(hub, "POST", "/api/agents/avi/signin-code", TOKENS["dana"]).json()
    options.fill("#hubUrl", "http://127.0.0.1:1")  # the link names the hub: it wins over the field
    options.fill("#signinCode", made["link"])
    options.click("#signin")
    result = options.locator("#signin-result")
    result.filter(has_text="Signed in as").wait_for()
    assert result.inner_text() == "Signed in as Avi Cohen."
    stored = extension_browser.stored()
    token = stored["local"]["token"]
    assert token != TOKENS["avi"] and api(hub, "GET", "/api/me", token).json()["id"] == "avi"
    assert stored["sync"]["hubUrl"] == hub.url and "token" not in stored["sync"]
    assert token not in options.locator("body").inner_text() and options.input_value("#signinCode") == ""
    extension_browser.wait_connected(hub)
    assert post_event(hub, call_id="code-pop-1", type="ringing", caller="0722776772", extension="202").status_code == 202
    wait_until(lambda: "pop:code-pop-1" in extension_browser.notification_ids(), 15, what="the pop's bubble")

    options.fill("#signinCode", made["code"])  # used already
    options.click("#signin")
    result.filter(has_text="used already").wait_for()
    assert extension_browser.stored()["local"]["token"] == token, "a refused code changes nothing"

    # A supervisor disables the agent: the extension is signed out at once, and says why.
    assert api(hub, "POST", "/api/agents/avi/disable", TOKENS["dana"]).json()["sockets_closed"] == 1
    options.locator("#status.signed_out", has_text="agent disabled by a supervisor").wait_for(timeout=5000)


def test_an_http_hub_on_another_machine_is_refused_and_nothing_saved(options, extension_browser):
    before = extension_browser.stored()
    options.fill("#hubUrl", "http://callpop.example.com:8765")
    options.fill("#token", TOKENS["noa"])
    options.click("#save")
    options.locator("#saved", has_text="Not saved").wait_for()
    why = options.locator(".error[data-for=hubUrl]").inner_text()
    assert "needs https://" in why and "token would cross the network in clear" in why, why
    options.click("#test")  # refused the same way, without asking Chrome for access to that host
    options.locator("#test-result", has_text="in clear").wait_for()
    time.sleep(0.3)  # a save would have been written by now
    assert extension_browser.stored() == before, "nothing was saved"


def test_content_scripts_cannot_read_the_token(extension_browser, page_server):
    """The content script's isolated world (found through CDP) reads its preferences from sync,
    where the token is not, and is refused local storage, where it is."""
    extension_browser.configure(token=TOKENS["noa"], detection=True)
    page = extension_browser.ctx.new_page()
    cdp = extension_browser.ctx.new_cdp_session(page)
    worlds = []
    cdp.on("Runtime.executionContextCreated", lambda e: worlds.append(e["context"]))
    cdp.send("Runtime.enable")
    page.goto(page_server.add("/token-probe", "<p>Call 072-277-6772</p>"))
    manifest_name = extension_browser.evaluate("chrome.runtime.getManifest().name")
    world = wait_until(lambda: next((w["id"] for w in worlds if w["name"] == manifest_name), None), 20,
                       what="the content script's isolated world")

    def in_content_script(expression: str):
        reply = cdp.send("Runtime.evaluate", {"expression": expression, "contextId": world, "awaitPromise": True,
                                              "returnByValue": True})
        return reply["result"].get("value")

    local = in_content_script("chrome.storage.local.get(null).then(v => JSON.stringify(v), e => 'refused: ' + e.message)")
    assert local.startswith("refused: ") and TOKENS["noa"] not in local, local
    synced = in_content_script("chrome.storage.sync.get(null).then(v => JSON.stringify(v))")
    assert '"detection":true' in synced and TOKENS["noa"] not in synced and '"token"' not in synced, synced
    cdp.detach()
    page.close()


def test_the_privacy_note_explains_the_warning(options):
    note = options.locator("#privacy").inner_text()
    assert "Read and change all your data on all websites" in note
    assert "Page text stays in your browser" in note
    assert "Only the number you choose leaves it" in note
    assert "Your agent token stays in this browser" in note


def test_the_manifest_asks_for_the_fewest_permissions(extension_browser):
    manifest = extension_browser.evaluate("chrome.runtime.getManifest()")
    assert sorted(manifest["permissions"]) == ["alarms", "contextMenus", "notifications", "storage"]
    assert manifest["host_permissions"] == ["http://127.0.0.1/*", "http://localhost/*"]
    assert manifest["minimum_chrome_version"] == "116"
    granted = extension_browser.evaluate("chrome.permissions.getAll()")
    assert sorted(granted["permissions"]) == ["alarms", "contextMenus", "notifications", "storage"]
