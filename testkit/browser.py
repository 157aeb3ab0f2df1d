"""Chromium with the callpop extension loaded unpacked from ``extension/``, under Playwright:
Debian's chromium (never a downloaded browser), one persistent profile, the extension's service
worker. Works with Playwright's sync and async APIs alike (``launch_extension`` returns what
``launch_persistent_context`` returns: a context, or an awaitable of one)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .procs import ROOT

EXTENSION = ROOT / "extension"
VENDOR = EXTENSION / "vendor" / "libphonenumber-max.js"  # `make extension` copies it from npm
WORKER_PATH = "/background/worker.js"
ARGS = ("--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync")


def chromium_path() -> str:
    """Where chromium is: ``CALLPOP_CHROMIUM``, else ``chromium`` on the PATH, else Debian's
    ``/usr/bin/chromium`` (check it with ``os.access(path, os.X_OK)``)."""
    return os.environ.get("CALLPOP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def missing() -> str:
    """Why the extension cannot be run here, or "" when it can."""
    path = chromium_path()
    if not os.access(path, os.X_OK):
        return f"chromium not found at {path}: apt-get install chromium (make test does)"
    if not VENDOR.is_file():
        return f"{VENDOR.relative_to(ROOT)} is missing: run `make extension`"
    return ""


def launch_options(profile: Path | str, executable: str | None = None, extension: Path = EXTENSION,
                   headless: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``browser_type.launch_persistent_context`` for chromium with the
    extension loaded unpacked (and no other)."""
    return {"user_data_dir": str(profile), "executable_path": executable or chromium_path(), "headless": headless,
            "args": [f"--disable-extensions-except={extension}", f"--load-extension={extension}", *ARGS]}


def launch_extension(browser_type, profile: Path | str, executable: str | None = None,
                     extension: Path = EXTENSION, headless: bool = True):
    """``playwright.chromium.launch_persistent_context`` with the extension loaded."""
    return browser_type.launch_persistent_context(**launch_options(profile, executable, extension, headless))


def service_worker(ctx, timeout_ms: float = 15000):
    """The extension's service worker now running in a (sync API) context; waits for it to start."""
    workers = [w for w in ctx.service_workers if w.url.endswith(WORKER_PATH)]
    if workers:
        return workers[-1]
    return ctx.wait_for_event("serviceworker", predicate=lambda w: w.url.endswith(WORKER_PATH), timeout=timeout_ms)
