"""Figure 5: PBX event posted → notification bubble created, in real Chromium with the extension.

Debian's chromium under Playwright (sync API), the extension loaded unpacked from ``extension/``
and configured as its options page does (hub URL and an agent's token), by the same launcher
and helpers as the browser tests (``tests.support.browser``). In the extension's service worker
``chrome.notifications.create`` is wrapped so it records, per notification id, when it was
called (the bubble is asked for) and when Chrome's callback said it was created. The PBX side
stamps each POST just before its request is written. The two clocks (Python's ``time.time`` and
the worker's ``performance.timeOrigin + performance.now()``) are compared first, through the
narrowest of 20 reads of the worker's clock bracketed by two of ours, and the offset is taken
out; its uncertainty is reported beside the figures.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path

from tests.support import browser, procs
from tests.support.stats import percentile

WRAP = """() => {
  if (self.__bench) return "already";
  self.__bench = { created: {}, waiters: {} };
  const now = () => performance.timeOrigin + performance.now();
  const original = chrome.notifications.create.bind(chrome.notifications);
  chrome.notifications.create = (...args) => {
    const called = now();
    const id = typeof args[0] === "string" ? args[0] : "";
    const callback = typeof args[args.length - 1] === "function" ? args.pop() : null;
    return original(...args, (created) => {
      self.__bench.created[id] = { called, created: now() };
      const waiter = self.__bench.waiters[id];
      if (waiter) waiter();
      if (callback) callback(created);
    });
  };
  return "wrapped";
}"""

WAIT = """([id, ms]) => self.__bench.created[id] || new Promise(resolve => {
  const timer = setTimeout(() => resolve(null), ms);
  self.__bench.waiters[id] = () => { clearTimeout(timer); resolve(self.__bench.created[id]); };
})"""


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def clock_offset(worker, reads: int = 20) -> tuple[float, float]:
    """(worker clock − ours, ± uncertainty) in ms, from the narrowest bracketed read."""
    best = None
    for _ in range(reads):
        t0 = time.time() * 1000
        theirs = worker.evaluate("() => performance.timeOrigin + performance.now()")
        t1 = time.time() * 1000
        if best is None or t1 - t0 < best[1] - best[0]:
            best = (t0, t1, theirs)
    t0, t1, theirs = best
    return theirs - (t0 + t1) / 2, (t1 - t0) / 2


class Pbx:
    """Posts events to the hub over one kept-alive connection; stamps each request's write."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def post(self, event: dict) -> tuple[int, float]:
        body = json.dumps(event).encode()
        headers = {"Authorization": f"Bearer {procs.INGEST}", "Content-Type": "application/json"}
        sent = time.time() * 1000
        self.conn.request("POST", "/api/events", body, headers)
        r = self.conn.getresponse()
        r.read()
        return r.status, sent


def run(tmp: Path, agents_csv: Path, agents: list[dict], crm_url: str, calls: int, gap_s: float = 0.3) -> dict:
    from playwright.sync_api import sync_playwright

    if reason := browser.missing(extension=True):
        return {"error": reason}
    agent = agents[0]
    hub = procs.start_hub(tmp / "chromium.duckdb", agents_csv, crm_url, crm_deadline_ms=1500)
    rows, lost = [], 0
    with hub, sync_playwright() as p:
        ctx = browser.launch(p.chromium, tmp / "chromium-profile", browser.EXTENSION)
        try:
            extension = browser.ExtensionBrowser(ctx)
            extension.configure(hubUrl=hub.url, token=agent["token"])
            extension.wait_connected(timeout=30)
            worker = extension.worker
            time.sleep(1)
            offset, uncertainty = clock_offset(worker)
            log(f"chromium: worker clock {offset:+.2f} ms ± {uncertainty:.2f} from ours")
            pbx = Pbx(hub.url)
            for i in range(calls):
                call_id = f"chromium-{i}"
                worker.evaluate(WRAP)  # again each time: a worker Chrome restarted would have lost it
                status, sent = pbx.post({"call_id": call_id, "id": call_id + "-r", "type": "ringing",
                                         "caller": f"0549{i:06d}", "callee": "0722776773",
                                         "extension": agent["extension"]})
                seen = worker.evaluate(WAIT, ["pop:" + call_id, 10000]) if status == 202 else None
                if seen is None:
                    lost += 1
                else:
                    rows.append({"call_id": call_id, "called_ms": seen["called"] - offset - sent,
                                 "created_ms": seen["created"] - offset - sent})
                pbx.post({"call_id": call_id, "id": call_id + "-h", "type": "hangup",
                          "extension": agent["extension"]})
                time.sleep(gap_s)
        finally:
            ctx.close()
    called = [r["called_ms"] for r in rows]
    created = [r["created_ms"] for r in rows]
    q = lambda v, k: round(percentile(v, k), 1)  # noqa: E731
    out = {"calls": calls, "bubbles": len(rows), "lost": lost, "clock_offset_ms": round(offset, 2),
           "clock_uncertainty_ms": round(uncertainty, 2),
           "p50_ms": q(called, 50), "p95_ms": q(called, 95), "p99_ms": q(called, 99),
           "max_ms": round(max(called, default=float("nan")), 1),
           "created_p50_ms": q(created, 50), "created_p99_ms": q(created, 99)}
    log(f"chromium: {out}")
    return out
