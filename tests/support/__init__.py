"""What the tests and the benchmarks share, one module per thing it owns:

- ``hub``: the real hub in this process (settings, signed-in agents, HTTP, polling its database);
- ``procs``: the real hub and the bare CRM as processes, and what the kernel says about them;
- ``crm``: a customer's CRM scripted per number; ``rawhttp``: a server that misbehaves on purpose;
  ``barecrm``: the cheapest CRM there is, for load (``python -m tests.support.barecrm``);
- ``pbx``: a PBX's dial endpoint for the webhook provider; ``httpserver``: what these stand-in
  servers are built on;
- ``load``: the load generator (agent sockets, a PBX posting events); ``wire``: its raw HTTP;
- ``stats``: percentiles and the verdicts of the benchmarks;
- ``browser``: Debian's chromium under Playwright, plain or with the extension loaded;
- ``disk``: a real small disk that fills up.

``bench/`` imports from here; nothing under ``tests/`` imports ``bench``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

ROOT = Path(__file__).resolve().parents[2]
INGEST = "test-ingest-token"  # the ingest token of every hub a test or a benchmark starts
METRICS = "test-metrics-token"  # and its metrics token
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """A test that cannot run here: skipped, but a failure under ``CI=true`` (there it must run)."""
    import pytest  # here, not at the top: the benchmarks import this package too

    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run, not skip)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (for a server that must be given one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
