"""Debian's chromium under Playwright (never a downloaded browser), launched in one place for
every test and benchmark: plain (a ``Browser``, for pages such as the console) or with the
callpop extension loaded unpacked from ``extension/`` (a persistent context: an extension needs a
profile). Works with Playwright's sync and async APIs alike (``launch`` returns what Playwright
returns, or an awaitable of it). Also the extension's service worker and ways to reach into it,
and a server of test pages."""

from __future__ import annotations

import os
import shutil
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ROOT, wait_until
from .httpserver import LocalServer

if TYPE_CHECKING:
    from pipelines.server import BackgroundHub

EXTENSION = ROOT / "extension"
VENDOR = EXTENSION / "vendor" / "libphonenumber-max.js"  # `make extension` copies it from npm
WORKER_PATH = "/background/worker.js"
SECRET_KEYS = ("token",)  # kept in chrome.storage.local, never in sync (extension/background/storage.js)
ARGS = ("--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync")


def chromium_path() -> str:
    """Where chromium is: ``CALLPOP_CHROMIUM``, else ``chromium`` on the PATH, else Debian's
    ``/usr/bin/chromium``."""
    return os.environ.get("CALLPOP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def missing(extension: bool = False) -> str:
    """Why chromium (with the extension, if asked) cannot be run here, or "" when it can."""
    path = chromium_path()
    if not os.access(path, os.X_OK):
        return f"chromium not found at {path}: apt-get install chromium (make test does)"
    if extension and not VENDOR.is_file():
        return f"{VENDOR.relative_to(ROOT)} is missing: run `make extension`"
    return ""


def launch_options(profile: Path | str | None = None, extension: Path | None = None,
                   headless: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``browser_type.launch`` (no profile) or of
    ``browser_type.launch_persistent_context`` (a profile; ``extension`` loaded unpacked, and no other)."""
    args = list(ARGS)
    if extension is not None:
        args[:0] = [f"--disable-extensions-except={extension}", f"--load-extension={extension}"]
    options: dict[str, Any] = {"executable_path": chromium_path(), "headless": headless, "args": args}
    if profile is not None:
        options["user_data_dir"] = str(profile)
    return options


def launch(browser_type, profile: Path | str | None = None, extension: Path | None = None, headless: bool = True):
    """Chromium: without a profile a ``Browser``; with one a persistent context, the extension
    in ``extension`` loaded (the callpop one is ``EXTENSION``)."""
    if extension is not None and profile is None:
        raise ValueError("an extension needs a profile")
    options = launch_options(profile, extension, headless)
    if profile is None:
        return browser_type.launch(**options)
    return browser_type.launch_persistent_context(**options)


def service_worker(ctx, timeout_ms: float = 15000):
    """The extension's service worker now running in a (sync API) context (a new one after it was
    stopped); waits for it to start."""
    workers = [w for w in ctx.service_workers if w.url.endswith(WORKER_PATH)]
    if workers:
        return workers[-1]
    return ctx.wait_for_event("serviceworker", predicate=lambda w: w.url.endswith(WORKER_PATH), timeout=timeout_ms)


class ExtensionBrowser:
    """Chromium with the callpop extension loaded, and ways to reach into its service worker."""

    def __init__(self, ctx):
        self.ctx = ctx

    @property
    def worker(self):
        return service_worker(self.ctx)

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
        self.wait_connected(hub)

    def wait_connected(self, hub: BackgroundHub | None = None, timeout: float = 20.0) -> None:
        """Until the extension says it is connected (and, given a hub of this process, the hub
        has an agent online)."""
        def connected():
            status = self.session("status") or {}
            online = hub.hub.sessions.online() if hub is not None else True
            # "on", or the inbox's count of missed calls (shown instead while connected)
            badge = self.badge()
            return status.get("state") == "connected" and (badge == "on" or badge[:2].isdigit()) and online
        wait_until(connected, timeout, what=f"the extension connected to {hub.url if hub else 'the hub'}")

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


class PageServer(LocalServer):
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

        super().__init__(Handler)
        self.url = self.origin
        self.start()

    def add(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path
