"""bench/RESULTS.md from one run's figures (``bench/out/<label>.json``) or from several side by
side (``python -m bench compare before after``): every table has the same rows for each run and
one group of columns per run, so a before/after reads across."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

SECOND_RING_MS = 3000  # the second ring starts 3-4 s after the first on the usual cadences


def fmt(x, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{nd}f}"


def rate(r: float) -> str:
    return f"{r:,g}/s"


def ms3(s: dict | None) -> str:
    return "–" if not s else f"{fmt(s['p50_ms'])} / {fmt(s['p95_ms'])} / {fmt(s['p99_ms'])}"


def table(runs: list[tuple[str, dict]], keys: list[tuple[str, Callable]], columns: list[tuple[str, Callable]],
          rows_of: Callable[[dict], list[dict]], key_of: Callable[[dict], tuple]) -> list[str]:
    """A markdown table: the key columns, then ``columns`` once per run (headed by the run's label
    when there are several). A row absent from a run shows dashes there."""
    multi = len(runs) > 1
    by_run = [{key_of(r): r for r in rows_of(res)} for _, res in runs]
    order: list[tuple] = []
    for rows in by_run:
        order += [k for k in rows if k not in order]
    head = [h for h, _ in keys] + [f"{label}: {h}" if multi else h for label, _ in runs for h, _ in columns]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in order:
        first = next(rows[k] for rows in by_run if k in rows)
        cells = [fn(first) for _, fn in keys]
        for rows in by_run:
            row = rows.get(k)
            cells += [fn(row) if row is not None else "–" for _, fn in columns]
        out.append("| " + " | ".join(cells) + " |")
    return out


def has(runs, section: str) -> bool:
    return any(section in res for _, res in runs)


def header(runs: list[tuple[str, dict]]) -> list[str]:
    L = ["# callpop benchmarks", ""]
    for label, res in runs:
        m = res["machine"]
        L.append(f"- **{label}**: run {res['date']} on {m['cpu']}, {m['cores']} cores, {m['memory']}, "
                 f"Python {m['python']}, {m['os']}; checkout at commit {res.get('commit', '?')}; "
                 f"`python -m bench{' --quick' if res['quick'] else ''} --label {label}` took "
                 f"{res['minutes']:.1f} min"
                 + (f"; the host took {res['stolen_pct']:.0f} % of the CPU time (steal) meanwhile"
                    if res.get("stolen_pct") is not None else "") + ".")
    L.append("")
    if len(runs) == 1:
        label = runs[0][0]
        L += [f"This is the **{label}** run alone; the next (*after*) will follow: `python -m bench --label after`, "
              f"then `python -m bench compare {label} after` rewrites this page with both side by side.", ""]
    L += ["Every figure of the hub stands beside a bare baseline (`bench/baseline.py`: uvicorn + Starlette + "
          "httpx, configured like the hub) measured in the same run. Hub, baseline, bare CRM and load generator "
          "share the machine's **2 cores**, so absolute figures are pessimistic for a dedicated server; compare "
          "the hub with the baseline of its own run, and runs with each other through those differences.", ""]
    return L


def latency(runs) -> list[str]:
    L = ["## 1. Pop latency", "",
         "1,000 agent sockets, every event a new call from a new number. Latency: the ringing event's "
         "request written → the `pop` frame received by the agent's socket. "
         "**Target: hub p99 within 5 ms of the baseline's.**", ""]
    L += table(runs, [("CRM", lambda c: f"{c['crm_ms']:g} ms"), ("events/s", lambda c: f"{c['rate']:,g}")],
               [("hub p50 / p95 / p99 ms", lambda c: ms3(c["hub"])),
                ("baseline p50 / p95 / p99 ms", lambda c: ms3(c["baseline"])),
                ("hub − baseline p99 ms [95 % interval] (paired)", lambda c: fmt(c["diff_p99_ms"]) + (
                    f" [{fmt(c['interval_p99_ms'][0])} … {fmt(c['interval_p99_ms'][1])}]"
                    if c.get("interval_p99_ms") else "") + (
                    f" ({fmt(c['paired_diff_p99_ms'])})" if c.get("paired_diff_p99_ms") is not None else "")),
                ("verdict", lambda c: c["verdict"])],
               lambda res: res.get("latency", []), lambda c: (c["crm_ms"], c["rate"]))
    return L + [""]


def burst(runs) -> list[str]:
    L = ["## 2. Burst", "",
         "500 new calls posted within one second, 1,000 agent sockets. **Target: every pop within CRM time + "
         "250 ms, nothing lost** (every event answered 202, every call popped).", ""]
    L += table(runs, [("CRM", lambda r: f"{r['crm_ms']:g} ms"), ("server", lambda r: r["server"])],
               [("202 / posted", lambda r: f"{r['accepted']:,} / {r['sent']:,}"),
                ("lost", lambda r: f"{r['lost']:,}"),
                ("p99 / max ms", lambda r: f"{fmt(r['p99_ms'])} / {fmt(r['max_ms'])}"),
                ("posted within s", lambda r: fmt(r["longest_post_s"], 2)),
                ("verdict", lambda r: f"≤ {r['limit_ms']:g} ms: {r['verdict']}")],
               lambda res: res.get("burst", []), lambda r: (r["crm_ms"], r["server"]))
    return L + [""]


def _best(steps: list[dict]) -> float:
    return max((s["rate"] for s in steps if s["sustained"]), default=0)


def _why(s: dict) -> str:
    """Why a step was not sustained."""
    why = []
    if s["accepted"] < s["sent"]:
        why.append(f"{s['sent'] - s['accepted']:,} events unanswered")
    if s["lost"]:
        why.append(f"{s['lost']:,} pops lost")
    if s["achieved_rate"] < 0.95 * s["rate"]:
        why.append(f"{fmt(s['achieved_rate'], 0)}/s posted")
    if not s["p99_ms"] < 1500:
        why.append(f"p99 {fmt(s['p99_ms'], 0)} ms")
    if s.get("unrecorded"):
        why.append(f"{s['unrecorded']:,} 202s not in the recorder's database")
    return ", ".join(why) or "–"


def sustained(runs) -> list[str]:
    L = ["## 3. Sustained rate", "",
         "Rising event rates, 1,000 agent sockets, CRM instant. A step is sustained when every event got its "
         "202, every call popped, the generator kept ≥ 95 % of the rate and pop p99 stayed under 1,500 ms. "
         "No target (the hub's floor is 200 events/s).", ""]

    def rows(res):
        t = res.get("sustained")
        if not t:
            return []
        out = []
        for name in ("hub", "baseline"):
            steps = t["steps"].get(name, [])
            failed = next((s for s in steps if not s["sustained"]), None)
            out.append({"server": name, "best": _best(steps),
                        "next": f"{rate(failed['rate'])}: {_why(failed)}" if failed else "ladder ended",
                        "confirm": t["confirm"] if name == "hub" else None, "confirm_s": t["confirm_s"]})
        return out

    def confirm(r):
        c = r["confirm"]
        if not c:
            return "–"
        rec = "" if c.get("recorded") is None else f", {c['recorded']:,} in DuckDB"
        return (f"{rate(c['rate'])} × {r['confirm_s']:g} s: {'held' if c['sustained'] else '**not held**'} "
                f"({c['accepted']:,}/{c['sent']:,} accepted, {c['lost']:,} lost{rec}, p99 {fmt(c['p99_ms'], 0)} ms)")

    L += table(runs, [("server", lambda r: r["server"])],
               [("highest sustained step", lambda r: rate(r["best"])), ("next step", lambda r: r["next"]),
                ("longer run", confirm)], rows, lambda r: r["server"])
    L += ["", "Each step:", ""]

    def steps(res):
        t = res.get("sustained")
        if not t:
            return []
        by_rate: dict = {}
        for name in ("hub", "baseline"):
            for s in t["steps"].get(name, []):
                by_rate.setdefault(s["rate"], {"rate": s["rate"]})[name] = s
        return list(by_rate.values())

    def step(name):
        return lambda r: "–" if name not in r else (
            f"{fmt(r[name]['achieved_rate'], 0)}/s, p99 {fmt(r[name]['p99_ms'], 0)} ms, "
            f"{'yes' if r[name]['sustained'] else '**no**'} ({fmt(r[name]['cpu_loop_pct'], 0)} / "
            f"{fmt(r[name]['cpu_rest_pct'], 0)} %)")

    L += table(runs, [("events/s", lambda r: f"{r['rate']:,g}")],
               [("hub: posted, p99, sustained (CPU loop / rest)", step("hub")),
                ("baseline: posted, p99, sustained (CPU loop / rest)", step("baseline"))],
               steps, lambda r: r["rate"])
    return L + [""]


def sockets(runs) -> list[str]:
    n = next((r["sockets"] for _, res in runs for r in res.get("sockets", [])), 10000)
    L = [f"## 4. {n:,} agent sockets on one server", "",
         f"RSS of the server's process before and after {n:,} agents signed in, and the CPU it spends at rest "
         "with them connected (heartbeats, WebSocket pings, housekeeping; hub: its child processes included). "
         "No target.", ""]
    L += table(runs, [("server", lambda r: r["server"])],
               [("RSS before → after MB", lambda r: f"{fmt(r['rss_before_kb'] / 1024, 0)} → "
                                                     f"{fmt(r['rss_after_kb'] / 1024, 0)}"),
                ("KB per socket", lambda r: fmt(r["kb_per_socket"])),
                ("CPU at rest, % of a core", lambda r: f"{fmt(r['cpu_rest_pct'])} over {fmt(r['rest_s'], 0)} s"),
                ("frames/s received", lambda r: fmt(r["frames_per_s"], 0)),
                ("all signed in within s", lambda r: fmt(r["sign_in_s"]))],
               lambda res: res.get("sockets", []), lambda r: r["server"])
    return L + [""]


def chromium(runs) -> list[str]:
    L = ["## 5. In real Chromium", "",
         "PBX event posted → the extension's service worker asks for the notification bubble "
         "(`chrome.notifications.create` called) and Chrome says it is created (its callback); one agent "
         "signed in, CRM instant, one call at a time. No baseline. **Target: the bubble before the second "
         f"ring** (p99 under {SECOND_RING_MS / 1000:g} s).", ""]

    def rows(res):
        c = res.get("chromium")
        return [c] if c else []

    def verdict(c):
        if "error" in c:
            return c["error"]
        ok = c["lost"] == 0 and c["created_p99_ms"] < SECOND_RING_MS
        return "met" if ok else "**missed**"

    L += table(runs, [],
               [("bubbles / calls", lambda c: f"{c.get('bubbles', 0)} / {c.get('calls', 0)}"),
                ("create() called p50 / p95 / p99 ms", lambda c: ms3(c) if "p50_ms" in c else "–"),
                ("created p50 / p99 ms", lambda c: f"{fmt(c.get('created_p50_ms'))} / {fmt(c.get('created_p99_ms'))}"),
                ("clocks ± ms", lambda c: fmt(c.get("clock_uncertainty_ms"), 2)),
                ("verdict", verdict)], rows, lambda c: "chromium")
    return L + [""]


def _cpu_split(c: dict) -> str:
    one, three = c["one hub"], c["three hubs"]
    return (f"{fmt(one.get('cpu_ms_per_event'))}; {fmt(three.get('cpu_ms_per_event'))} = "
            f"{fmt(three.get('hubs_ms_per_event'))} + {fmt(three['redis_us_per_event'] / 1000)} + "
            f"{fmt(three['recorder_us_per_event'] / 1000)}")


def _logged(runs, what: str, rows_of: Callable[[dict], list[tuple[str, dict]]]) -> list[str]:
    """A line per row whose hubs logged warnings or errors: how many of each."""
    out = []
    for label, res in runs:
        for name, row in rows_of(res.get("cluster") or {}):
            if row.get("logged"):
                said = "; ".join(f"{n:,} × “{m}”" for m, n in row["logged"].items())
                out.append(f"- {label + ', ' if len(runs) > 1 else ''}{what}{' ' + name if name else ''}: the hubs "
                           f"logged {said}")
    return ["", *out] if out else []


def cluster(runs) -> list[str]:
    L = ["## 6. Cluster: one hub beside three on Redis", "",
         "Three hubs with `CALLPOP_REDIS_URL` on one Redis (append-only file, `appendfsync everysec`) and one "
         "recorder, beside the normal single hub; both up throughout, CRM instant. The agents sign in round-robin "
         "over the three hubs and each event goes to one of them at random, so about two thirds of the pops cross "
         "from the hub that took the event to the agent's. **Targets: cross-hub delivery adds under 3 ms at p50; "
         "10,000 agent sockets over three hubs with pop p99 under 100 ms at 100 events/s; a hub killed under 50 "
         "events/s loses no pop and no acknowledged event.**", ""]
    for label, res in runs:
        c = res.get("cluster") or {}
        if "loadavg_before" in c:
            L.append(f"{label + ': ' if len(runs) > 1 else ''}load average of the machine (1 / 5 / 15 min) "
                     f"{' / '.join(fmt(x, 1) for x in c['loadavg_before'])} before the section, "
                     f"{' / '.join(fmt(x, 1) for x in c['loadavg_after'])} after (2 cores: above 2, others' work "
                     "competes with the processes measured).")
    L += ["", "**Pop latency**, 1,000 agent sockets on each setup, slices in turns as in section 1. What it means: "
          "the price of sharing the calls through Redis, paid once per pop: the hub that takes the event claims "
          "it, locks and loads the call and asks the shared CRM cache (Redis round trips before the pop), journals "
          "it, then publishes the pop to the agent's hub. The same-hub / cross-hub split tells the first part "
          "from the second (the hop to another hub alone).", ""]

    def rows(key):
        return lambda res: (res.get("cluster") or {}).get(key) or []

    L += table(runs, [("events/s", lambda c: f"{c['rate']:,g}")],
               [("one hub p50 / p95 / p99 ms", lambda c: ms3(c["one hub"])),
                ("three hubs p50 / p95 / p99 ms", lambda c: ms3(c["three hubs"])),
                ("cross-hub share", lambda c: f"{fmt(100 * c['three hubs']['cross_hub_share'], 0)} %"),
                ("three hubs p50: same-hub / cross-hub pops ms",
                 lambda c: f"{fmt(c['three hubs'].get('same_hub_p50_ms'))} / {fmt(c['three hubs'].get('cross_hub_p50_ms'))}"),
                ("three − one p50 ms [95 % interval] (paired)", lambda c: fmt(c["cost_p50_ms"]) + (
                    f" [{fmt(c['interval_p50_ms'][0])} … {fmt(c['interval_p50_ms'][1])}]"
                    if c.get("interval_p50_ms") else "") + (
                    f" ({fmt(c['paired_cost_p50_ms'])})" if c.get("paired_cost_p50_ms") is not None else "")),
                ("verdict", lambda c: c["verdict"]),
                ("Redis µs / commands per event", lambda c: f"{fmt(c['three hubs']['redis_us_per_event'], 0)} / "
                                                            f"{fmt(c['three hubs']['redis_commands_per_event'])}"),
                ("CPU ms per event: one hub; three hubs = their hubs + Redis + recorder", _cpu_split)],
               rows("latency"), lambda c: c["rate"])
    L += _logged(runs, "three hubs at", lambda c: [(f"{x['rate']:g}/s", x["three hubs"]) for x in c.get("latency", [])])

    L += ["", "**Sustained rate**, the ladder of section 3 on each setup (1,000 agents). For the three hubs a step "
          "also needs every 202 in the recorder's database (read through its read API, within 30 s). What it "
          "means: how far one cluster on these cores goes before a pop is late or an event refused.", ""]

    def ladders(res):
        t = (res.get("cluster") or {}).get("sustained")
        if not t:
            return []
        out = []
        for name in ("one hub", "three hubs"):
            steps = t.get(name, [])
            failed = next((s for s in steps if not s["sustained"]), None)
            out.append({"setup": name, "best": _best(steps), "steps": steps,
                        "next": f"{rate(failed['rate'])}: {_why(failed)}" if failed else "ladder ended"})
        return out

    def each(r):
        return "; ".join(f"{rate(s['rate'])} p99 {fmt(s['p99_ms'], 0)} ms{'' if s['sustained'] else ' **no**'}"
                         for s in r["steps"])

    L += table(runs, [("setup", lambda r: r["setup"])],
               [("highest sustained step", lambda r: rate(r["best"])), ("next step", lambda r: r["next"]),
                ("steps", each)], ladders, lambda r: r["setup"])

    L += ["", "**The record**: many agent sockets over the three hubs (a third on each), events at 100/s. What it "
          "means: whether one cluster holds a large contact centre's browsers and still pops in time.", ""]

    def record(res):
        r = (res.get("cluster") or {}).get("record")
        return [r] if r else []

    L += table(runs, [("sockets", lambda r: f"{r['sockets']:,}"), ("events/s", lambda r: f"{r['rate']:,g}")],
               [("signed in within s", lambda r: fmt(r["sign_in_s"])),
                ("p50 / p95 / p99 ms", ms3),
                ("202 / posted, lost, not in DB", lambda r: f"{r['accepted']:,} / {r['sent']:,}, {r['lost']:,}, "
                                                            f"{r['unrecorded']:,}"),
                ("hubs: CPU % of a core, RSS MB", lambda r: f"{fmt(r['hubs_cpu_pct'], 0)}, {fmt(r['hubs_rss_mb'], 0)}"),
                ("Redis µs per event", lambda r: fmt(r["redis_us_per_event"], 0)),
                ("verdict", lambda r: f"p99 < 100 ms: {r['verdict']}")], record, lambda r: r["sockets"])
    L += _logged(runs, "the record", lambda c: [("", c["record"])] if c.get("record") else [])

    L += ["", "**Failover**: a fresh cluster, one of its three hubs killed with SIGKILL under load. Its "
          "agents reconnect as the extension does (its jittered backoff, 0.25–0.5 s before the first try) through "
          "the next hub that takes the connection; the PBX sends an event not answered 202 again to the next hub "
          "(at once after a refused connection, 1 s after a 503). What it means: what agents and the PBX notice "
          "when a hub dies.", ""]

    def failover(res):
        r = (res.get("cluster") or {}).get("failover")
        return [r] if r else []

    L += table(runs, [("agents", lambda r: f"{r['agents']:,}"), ("events/s", lambda r: f"{r['rate']:,g}"),
                      ("killed after s", lambda r: f"{r['kill_at_s']:g}")],
               [("agents moved / reconnected", lambda r: f"{r['on_killed_hub']:,} / {r['reconnected']:,}"
                                                         + (f" ({r['still_down']:,} never)" if r["still_down"] else "")),
                ("longest without a socket ms (p50 / p99)", lambda r: f"{fmt(r['longest_gap_ms'], 0)} "
                                                                      f"({fmt(r['gap_p50_ms'], 0)} / {fmt(r['gap_p99_ms'], 0)})"),
                ("pops lost", lambda r: f"{r['lost']:,} of {r['accepted']:,}"),
                ("acknowledged events lost", lambda r: f"{r['acked_lost']:,}"
                                                       + (f" ({r['recorded_twice']:,} twice)" if r["recorded_twice"] else "")),
                ("requests sent again", lambda r: f"{r['retries']:,}"),
                ("pop p99 / max ms", lambda r: f"{fmt(r['p99_ms'], 0)} / {fmt(r['max_ms'], 0)}"),
                ("verdict", lambda r: r["verdict"])], failover, lambda r: (r["agents"], r["rate"]))
    L += _logged(runs, "the failover", lambda c: [("", c["failover"])] if c.get("failover") else [])
    for label, res in runs:
        f = (res.get("cluster") or {}).get("failover") or {}
        if f.get("lost_calls"):
            L += ["", f"Pops lost in the failover{' of ' + label if len(runs) > 1 else ''}: " + "; ".join(
                f"`{c['call_id']}` answered 202 by hub {c['answered_by'] + 1}"
                f"{' (the one killed)' if c['answered_by'] == f['killed_hub'] else ''}, due "
                f"{fmt(c['due_after_kill_s'], 2)} s from the kill, its agent on hub {c['agent_on'] + 1}"
                for c in f["lost_calls"]) + "."]
    return L + [""]


def analytics(runs) -> list[str]:
    a = next((res["analytics"] for _, res in runs if res.get("analytics")), None)
    if a is None:
        return []
    if "error" in a:
        return ["## Analytics", "", f"Not measured: {a['error']}", ""]
    L = ["## Analytics", "",
         f"The console's named queries (`pipelines/analytics/`) over {a.get('lookups', 0):,} generated lookups, "
         "whole range, best of 3, against a bare DuckDB scan of the same table computing hit rate and exact "
         "p50/p95/p99 (the ratio). No target.", ""]
    L += table(runs, [("query", lambda q: q["name"])],
               [("ms", lambda q: fmt(q["ms"], 0)), ("ratio to bare scan", lambda q: fmt(q["ratio"], 2))],
               lambda res: ([{"name": "(bare scan)", "ms": res["analytics"]["bare_ms"], "ratio": 1.0}]
                            + res["analytics"]["queries"]) if res.get("analytics", {}).get("queries") else [],
               lambda q: q["name"])
    return L + [""]


def profile(runs) -> list[str]:
    if not has(runs, "profile"):
        return []
    L = ["## Profile", "",
         "py-spy, 100 Hz, on each server's event-loop thread during one run (1,000 agent sockets, CRM instant). "
         "No target: it says where the loop goes, e.g. whether the HTTP client to the CRM is what limits it.", ""]
    for label, res in runs:
        for p in res.get("profile") or []:
            who = f"{label}, {p.get('server', 'hub')}" if len(runs) > 1 else p.get("server", "hub")
            if "error" in p:
                L += [f"**{who}**: {p['error']}", ""]
                continue
            L += [f"**{who}** at {p['rate']:g} events/s for {p['seconds']:g} s: {p['samples']:,} samples, the loop "
                  f"busy {fmt(p['cpu_loop_pct'], 0)} % of a core, pop p99 {fmt(p['p99_ms'])} ms. Share of the samples "
                  "with each on the stack: " + "; ".join(f"{g} {fmt(v)} %" for g, v in p["groups"] if v) + ". "
                  "Largest own times (`Runner.run`'s is the C below it: uvloop's I/O and callbacks, C parsers, "
                  "system calls): " + "; ".join(f"{fmt(v)} % {f}" for f, v in p["own"][:6]) + ".", ""]
    return L


HOW = """## How measured

**Baseline.** `bench/baseline.py`: uvicorn configured as the hub's (httptools, websockets-sansio,
uvloop, no per-message deflate, no access log) serving a Starlette app: `POST /api/events` takes
the body through `json.loads`, looks the caller up on the hub's own client
(`pipelines.http_client.client`: 100 connections, no keep-alive), sends the same `pop` frame to the
agent's sockets, answers 202; `/ws` signs agents in with the same hello and welcome and sends each
socket a heartbeat every 15 s (at a random phase per socket). No validation framework, no
database, no cache, no deadline, CPython's stock garbage collector (see `bench/notes.md`).

Processes: the hub (`python -m pipelines serve`, configured by `CALLPOP_*` variables, CRM deadline
1,500 ms), the baseline (`bench/baseline.py`), the bare CRM (`tests/support/barecrm.py`, raw asyncio on
uvloop, optional fixed delay) and the load generator (`tests/support/load.py`, this process, on uvloop)
each on their own; all bind port 0 on 127.0.0.1. The generator stamps each event just before its
request is written and each frame when its socket delivers it, both with its `perf_counter`.
Every event is a new call from a new number, so no lookup is a cache hit.

1. **Pop latency.** For each CRM delay one hub and one baseline run side by side, each with its
   1,000 agent sockets connected throughout. Each rate runs in slices taken in turns (who goes
   first alternates), so a noisy spell falls on both. The table's difference is of the pooled
   p99s; *paired* is the median over the pairs of slices of hub p99 − baseline p99 (one bad slice
   moves it one place); the 95 % interval resamples whole pairs of slices (`tests/support/stats.py`). A
   verdict is *clear* when the interval lies wholly on one side of the 5 ms limit and *within the
   noise* when it spans it. The first pop of a call counts (a `pending` pop too, were the CRM late).
2. **Burst.** On the same processes, after the latency cells: 500 ringing events posted evenly
   over one second, repeated (alternating hub and baseline, 3 s apart); the table pools the
   repeats. "Posted within" is the longest a burst took to write (the generator's own pace).
3. **Sustained.** A fresh hub (then a fresh baseline), sockets connected once, a ladder of rates
   each for a fixed time, stopping at the first step not sustained. The hub's highest step then
   runs longer on another fresh hub, which is stopped gracefully and its DuckDB file read back
   (events recorded of those accepted); if it does not hold, the step below is tried. CPU per
   step: the server's main thread (the event loop) / everything else (its threads and children).
4. **Agent sockets.** A hub (then a baseline) with an agents CSV of that size: RSS of its main
   process after 2 s idle, then after every agent signed in (100 handshakes at a time) and 5 s of
   quiet; then its CPU (all threads and child processes, from `/proc`) over the rest period
   with nothing but heartbeats and pings going.
5. **Chromium.** Debian's chromium under Playwright, the extension loaded unpacked from
   `extension/` exactly as the browser tests load it (`tests/support/browser.py`) and configured
   as its options page does (the hub URL in `chrome.storage.sync`, the agent token in `.local`). A wrapper
   around `chrome.notifications.create`, installed in the service worker with `worker.evaluate`,
   records per notification id when it was called and when Chrome's callback came, on the
   worker's `performance.timeOrigin + performance.now()`. The PBX side stamps each POST with
   `time.time()` just before writing it. The clocks are compared through the narrowest of 20
   reads of the worker's clock bracketed by two of ours; the offset is taken out and its
   uncertainty shown ("clocks ±"). Calls go one at a time, each followed by its hangup.

6. **Cluster.** Redis is Debian's `redis-server` (`tests/support/redis.py`: AOF on, `appendfsync
   everysec`), the recorder `callpop record` writing its own DuckDB file, the three hubs
   `callpop serve` with `CALLPOP_REDIS_URL`, the recorder's URL and token; the single hub as in
   the other sections. All share one agents CSV (10,000 rows). The generator signs agent i in at
   hub i mod 3 and posts each event to a hub picked at random (`Spread` in `tests/support/load.py`);
   the share of pops that crossed hubs is counted from where each 202 came from and where the
   agent's socket was. The cost is the three hubs' pooled p50 minus the single hub's, with the
   paired median and the interval of section 1 taken at the 50th percentile. Redis CPU is its
   own `INFO cpu` (user + system) and its command count `INFO stats` before and after each of the
   three hubs' slices (drains included, idle work such as presence too), over their events; the
   recorder's CPU is all its threads from `/proc`; "CPU per event" adds up everything a setup
   runs (its hubs' threads and children, Redis and the recorder) over its events. "Not in DB": 202s whose event id the
   recorder's database lacks 30 s after the run, read through its read API (`POST /read`). The
   record signs its sockets in 100 at a time, waits 3 s, then posts. The failover runs on a
   fresh Redis, recorder and three hubs: agents' sockets reconnect with the extension's backoff
   (`reconnectDelay` in `extension/background/connection.js`: before attempt n, between half and
   all of min(30 s, 0.5 s × 2ⁿ)), each attempt trying the hubs in round-robin order until one
   takes the connection, as a balancer passing over a dead upstream; "without a socket" is from
   the moment a socket's reader saw it close to the welcome on the next. The PBX sends an event
   again for up to 30 s (beyond the 10 s claim a dead hub leaves on an event it had in hand). A
   pop counts as delivered if any socket of the agent got it, the welcome's replay of a ringing
   call included; no call is hung up during the run.

**Analytics.** `python -m pipelines seed` writes 100 days of history; each named query runs over
the whole range through `pipelines.analytics.run`, best of 3, beside one bare scan of `lookups`.

**Profile.** `py-spy record --nonblocking -r 100 -f raw` on the server's process during one run;
only its main thread's stacks are counted, and only what lies below asyncio's `Runner.run` (what
the loop runs). A group's share is of the samples with one of its frames anywhere on the stack.
"""


def write(runs: list[tuple[str, dict]], path: Path) -> None:
    L = header(runs)
    for section in (latency, burst, sustained, sockets, chromium, cluster, analytics, profile):
        name = section.__name__
        if name in ("analytics", "profile") or has(runs, name):
            L += section(runs)
    L += [HOW]
    path.write_text("\n".join(L).rstrip() + "\n", encoding="utf-8")
