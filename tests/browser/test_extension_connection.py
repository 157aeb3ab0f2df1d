"""The extension's connection to the hub in chromium: the badge, a hub restarted under it, a
refused token, and a service worker stopped by Chrome that comes back and reconnects."""

from __future__ import annotations

import time

import pytest

from tests.support import free_port, wait_until
from tests.support.hub import TOKENS, post_event

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def port():
    return free_port()


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("restarted-hub")


def start_hub(module_hubs, port, db_dir):
    """A hub on a fixed port (so a restart is the same address), its database kept across restarts."""
    return module_hubs(port=port, db_path=str(db_dir / "callpop.duckdb"))


def ring_and_see_bubble(browser, hub, call_id, timeout=20.0):
    r = post_event(hub, call_id=call_id, type="ringing", caller="0722776772", callee="0722776773", extension="201")
    assert r.status_code == 202, r.text
    return wait_until(lambda: f"pop:{call_id}" in browser.notification_ids() and browser.bubble(f"pop:{call_id}"),
                      timeout, what=f"the bubble of {call_id}")


def test_a_refused_token_shows_signed_out(extension_browser, module_hubs, port, db_dir):
    hub = start_hub(module_hubs, port, db_dir)
    try:
        extension_browser.configure(hubUrl=hub.url, token="not-a-token")

        def refused():
            # The badge alone may still be the "!" of an earlier state (no token configured yet):
            # wait for the hub's refusal itself.
            status = extension_browser.session("status") or {}
            return (status.get("state") == "signed_out" and "token" in status.get("detail", "")
                    and "no agent token" not in status["detail"])
        wait_until(refused, 20, what="the hub's refusal of the token")
        assert extension_browser.badge() == "!"
        title = extension_browser.evaluate("new Promise(r => chrome.action.getTitle({}, r))")
        assert "signed out" in title
        assert not hub.hub.sessions.online()
    finally:
        hub.stop()  # the next tests reuse the port


def test_the_hub_restarted_under_the_extension(extension_browser, module_hubs, port, db_dir):
    hub = start_hub(module_hubs, port, db_dir)
    try:
        extension_browser.sign_in(hub, TOKENS["noa"])
        ring_and_see_bubble(extension_browser, hub, "before-restart")

        hub.stop()
        wait_until(lambda: extension_browser.badge() == "off", 20, what="the disconnected badge")
        assert "not connected" in extension_browser.evaluate("new Promise(r => chrome.action.getTitle({}, r))")
        time.sleep(1.5)  # the hub stays down a while: the extension keeps retrying

        started = time.monotonic()
        hub = start_hub(module_hubs, port, db_dir)
        extension_browser.wait_connected(hub, timeout=30)
        reconnect_s = time.monotonic() - started
        print(f"\nreconnected {reconnect_s:.2f} s after the hub came back")
        record = ring_and_see_bubble(extension_browser, hub, "after-restart")
        assert record["title"] == "John Doe"
    finally:
        hub.stop()  # the next tests reuse the port


def test_a_stopped_worker_comes_back_and_reconnects(extension_browser, module_hubs, port, db_dir):
    hub = start_hub(module_hubs, port, db_dir)
    try:
        extension_browser.sign_in(hub, TOKENS["noa"])
        extension_browser.evaluate("self.beforeTheStop = true")
        page = extension_browser.ctx.new_page()
        cdp = extension_browser.ctx.new_cdp_session(page)
        cdp.send("ServiceWorker.enable")
        started = time.monotonic()
        cdp.send("ServiceWorker.stopAllWorkers")
        wait_until(lambda: not hub.hub.sessions.online(), 15, what="the stopped worker's socket to close")

        # Nothing else happens in the browser: the keep-alive alarm (every 30 s) starts it again.
        wait_until(lambda: hub.hub.sessions.online().get("noa"), 60, every=0.25, what="a new worker connected to the hub")
        assert extension_browser.evaluate("self.beforeTheStop === undefined"), "a new worker, not the old one"
        print(f"\nworker back and connected {time.monotonic() - started:.1f} s after it was stopped")
        extension_browser.wait_connected(hub)
        record = ring_and_see_bubble(extension_browser, hub, "after-worker-stop")
        assert record["title"] == "John Doe"
        cdp.detach()
        page.close()
    finally:
        hub.stop()  # the next tests reuse the port
