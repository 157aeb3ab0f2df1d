"""Helpers for browser tests: a page server, polling, and the extension's browser and worker."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from pipelines.server import BackgroundHub

SECRET_KEYS = ("token",)  # kept in chrome.storage.local, never in sync (extension/background/storage.js)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PageServer:
    """Serves ``pages[path] = html`` on 127.0.0.1 (any other path is a 404)."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05, what: str = "condition"):
    """Poll ``check`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = check()
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class ExtensionBrowser:
    """Chromium with the callpop extension loaded, and ways to reach into its service worker."""

    def __init__(self, ctx):
        self.ctx = ctx

    @property
    def worker(self):
        """The extension's service worker now running (a new one after it was stopped)."""
        workers = [w for w in self.ctx.service_workers if w.url.endswith("/background/worker.js")]
        if workers:
            return workers[-1]
        return self.ctx.wait_for_event("serviceworker", timeout=15000)

    @property
    def extension_id(self) -> str:
        return self.worker.url.split("/")[2]

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self.worker.evaluate(script, arg)

    def configure(self, **settings: Any) -> None:
        """Write the options as the options page would: the token to chrome.storage.local, the
        rest to chrome.storage.sync."""
        secrets = {k: settings.pop(k) for k in SECRET_KEYS if k in settings}
        self.evaluate("([prefs, secrets]) => Promise.all([chrome.storage.local.set(secrets), chrome.storage.sync.set(prefs)])",
                      [settings, secrets])

    def stored(self) -> dict[str, dict]:
        """Everything the extension keeps in chrome.storage.sync and .local."""
        return self.evaluate("Promise.all([chrome.storage.sync.get(null), chrome.storage.local.get(null)])"
                             ".then(([sync, local]) => ({sync, local}))")

    def sign_in(self, hub: BackgroundHub, token: str, **settings: Any) -> None:
        self.configure(hubUrl=hub.url, token=token, **settings)
        self.wait_connected(hub, token)

    def wait_connected(self, hub: BackgroundHub, token: str | None = None, timeout: float = 20.0) -> None:
        def connected():
            status = self.session("status") or {}
            agents = hub.hub.sessions.online()
            return status.get("state") == "connected" and self.badge() == "on" and agents
        wait_until(connected, timeout, what=f"the extension connected to {hub.url}")

    def badge(self) -> str:
        return self.evaluate("new Promise(r => chrome.action.getBadgeText({}, r))")

    def session(self, key: str) -> Any:
        return self.evaluate("k => chrome.storage.session.get(k).then(v => v[k])", key)

    def notification_ids(self) -> list[str]:
        return sorted(self.evaluate("new Promise(r => chrome.notifications.getAll(r))").keys())

    def bubble(self, notification_id: str) -> dict | None:
        """What the worker recorded about a bubble it shows (title, message, times...)."""
        kind = "dials" if notification_id.startswith("dial:") else "bubbles"
        return (self.session(kind) or {}).get(notification_id)

    def tabs(self) -> list[dict]:
        """Every tab, as the extension sees it (URLs of 127.0.0.1 pages only: its host permission)."""
        return self.evaluate("new Promise(r => chrome.tabs.query({}, t => r(t.map(x => ({id: x.id, url: x.url || ''})))))")

    def tab_id(self, page) -> int:
        """Chrome's id of a Playwright page's tab (asked through the page's content script)."""
        marker = f"callpop-tab-{time.monotonic_ns()}"
        page.evaluate("m => { document.title = m; }", marker)
        return wait_until(lambda: self.evaluate(
            "m => new Promise(r => chrome.tabs.query({}, tabs => r((tabs.find(t => t.title === m) || {}).id)))", marker),
            20, what="the tab of the page")

    def page_state(self, page, settle: float = 0.3) -> dict:
        """The content script's state on a page once it read its settings and has nothing pending:
        {numbers: [{text, e164, via}], active: marking on or off}."""
        tab = self.tab_id(page)

        def listed():
            reply = self.evaluate("t => chrome.tabs.sendMessage(t, {type: 'list-numbers'}, {frameId: 0})", tab)
            return reply if reply and reply["ready"] and reply["pending"] == 0 else None

        time.sleep(settle)
        return wait_until(listed, 20, what="the page's numbers")

    def numbers_on(self, page, settle: float = 0.3) -> list[dict]:
        """What the content script marked on a page (marking must be on there)."""
        state = self.page_state(page, settle)
        assert state["active"], "number marking is off on this page"
        return state["numbers"]


def hub_sent_at_ms(hub: BackgroundHub, call_id: str, agent_id: str) -> float:
    """When the hub sent a pop (pops.sent_at, UTC), in ms since the epoch."""
    from tests.support import wait_rows

    df = wait_rows(hub, "SELECT epoch_us(sent_at) / 1000.0 AS ms FROM pops WHERE call_id = ? AND agent_id = ?",
                   [call_id, agent_id], timeout=20)
    return float(df.ms.iloc[0])

