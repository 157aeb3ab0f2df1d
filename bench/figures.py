"""The figures that need a server under load: pop latency, bursts, the sustained rate, 10,000
agent sockets on one server, and a py-spy profile of the hub during one cell.

The hub (``python -m pipelines serve``), the bare baseline (``bench/baseline.py``) and the bare
CRM (``tests/support/barecrm.py``) each run in a process of their own; the load generator (agent
sockets and the PBX posting events, ``tests/support/load.py``) runs on this process's event loop. Every
figure of the hub stands beside the baseline's, measured in the same run.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

from tests.support import procs
from tests.support.load import AgentSockets, LoadResult, Poster, run_load
from tests.support.stats import difference_interval, paired_difference, verdict

DEADLINE_MS = 1500
LATENCY_LIMIT_MS = 5.0       # hub p99 within this of the baseline's
BURST_MARGIN_MS = 250.0      # every pop of a burst within CRM time + this
MIN_SLICES_FOR_INTERVAL = 4  # fewer pairs of slices cannot be resampled into a useful interval


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class Target:
    """The hub or the baseline, as the generator sees it: one port for HTTP and WebSocket."""

    def __init__(self, name: str, proc: procs.Proc):
        self.name, self.proc = name, proc
        self.events_url = proc.url + "/api/events"
        self.ws_url = proc.ws_url

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: the main thread (the event loop) and the rest (threads, children)."""
        c = procs.thread_cpu(self.proc.pid)
        return c["main"], c["other"]


def start_baseline(agents_csv: Path, crm_url: str) -> procs.Proc:
    return procs.Proc([sys.executable, "-m", "bench.baseline", "--agents", str(agents_csv), "--crm", crm_url,
                       "--token", procs.INGEST], name="baseline")


def start(name: str, tmp: Path, agents_csv: Path, crm_url: str, tag: str) -> Target:
    if name == "hub":
        return Target("hub", procs.start_hub(tmp / f"{tag}.duckdb", agents_csv, crm_url, crm_deadline_ms=DEADLINE_MS))
    return Target("baseline", start_baseline(agents_csv, crm_url))


def sustained(result: LoadResult) -> bool:
    return (result.accepted == result.sent and result.lost == 0 and result.wrong == 0
            and result.achieved_rate >= 0.95 * result.rate and result.p(99) < DEADLINE_MS)


class Side:
    """One target's sockets, poster and CPU and latency tallies within a figure."""

    def __init__(self, target: Target, agents: list[dict]):
        self.target = target
        self.sockets = AgentSockets(target.ws_url, agents)
        self.poster = Poster(target.events_url, procs.INGEST)

    async def run(self, rate: float, seconds: float, tag: str, drain_s: float = 10) -> tuple[LoadResult, float, float]:
        """One run at ``rate``; with the CPU seconds the target spent in it (loop, rest)."""
        m0, o0 = self.target.cpu()
        result = await run_load(self.poster, self.sockets, rate, seconds, tag=tag, drain_s=drain_s)
        m1, o1 = self.target.cpu()
        await self.poster.close()  # each run opens its own connections: the same start for both sides
        return result, m1 - m0, o1 - o0


def _cpu_pct(seconds: float, wall: float) -> float:
    return round(100 * seconds / wall, 1) if wall else 0.0


# --- 1 and 2: pop latency and bursts, one hub and one baseline per CRM delay
async def latency_and_burst(hub: Target, baseline: Target, agents: list[dict], crm_ms: float, plan: dict,
                            do_latency: bool, do_burst: bool) -> tuple[list[dict], list[dict]]:
    sides = [Side(hub, agents), Side(baseline, agents)]
    for s in sides:
        t0 = time.perf_counter()
        await s.sockets.connect()
        log(f"{s.target.name}: {len(agents):,} agents signed in in {time.perf_counter() - t0:.1f} s")
    cells, bursts = [], []
    try:
        if do_latency:
            for rate in plan["rates"]:
                cells.append(await latency_cell(sides, crm_ms, rate, plan["seconds"][str(rate)],
                                                plan["slices"][str(rate)]))
                await asyncio.sleep(2)
        if do_burst:
            bursts = await burst(sides, crm_ms, plan["burst_calls"], plan["burst_repeats"])
    finally:
        for s in sides:
            await s.poster.close()
            await s.sockets.close()
    return cells, bursts


async def alternate(sides: list[Side], rate: float, seconds: float, slices: int, tag: str
                    ) -> tuple[dict[str, dict], dict[str, list[list[float]]]]:
    """Each side ``seconds`` at ``rate`` in ``slices`` turns taken in alternation (who goes first
    alternates too), every side's sockets connected throughout: a noisy spell of the shared
    machine then falls on both sides alike instead of on whichever ran during it. Returns per
    side its pooled summary (with its CPU) and the latencies of each of its slices."""
    merged = {s.target.name: LoadResult(rate, 0.0) for s in sides}
    parts: dict[str, list[list[float]]] = {s.target.name: [] for s in sides}
    cpu = {s.target.name: [0.0, 0.0, 0.0] for s in sides}  # loop, rest, wall
    for k in range(slices):
        for s in (sides if k % 2 == 0 else sides[::-1]):
            name = s.target.name
            t0 = time.perf_counter()
            part, loop_s, rest_s = await s.run(rate, seconds / slices, f"{tag}-{name.replace(' ', '')}-{k}")
            merged[name].add(part)
            parts[name].append(part.latencies_ms)
            cpu[name][0] += loop_s
            cpu[name][1] += rest_s
            cpu[name][2] += time.perf_counter() - t0
    pooled = {name: result.summary() | {"cpu_loop_pct": _cpu_pct(cpu[name][0], cpu[name][2]),
                                        "cpu_rest_pct": _cpu_pct(cpu[name][1], cpu[name][2])}
              for name, result in merged.items()}
    return pooled, parts


async def latency_cell(sides: list[Side], crm_ms: float, rate: float, seconds: float, slices: int) -> dict:
    """The hub and the baseline in alternating slices (``alternate``), and the verdict."""
    pooled, parts = await alternate(sides, rate, seconds, slices, f"lat{crm_ms:g}-{rate:g}")
    cell: dict = {"crm_ms": crm_ms, "rate": rate, "seconds": seconds, "slices": slices}
    for name, summary in pooled.items():
        cell[name] = summary
        log(f"latency CRM {crm_ms:g} ms, {rate:g}/s, {name}: {cell[name]}")
    hub, base = cell["hub"], cell["baseline"]
    cell["diff_p99_ms"] = round(hub["p99_ms"] - base["p99_ms"], 2)
    # Slices without pops (a wedged server) cannot be paired; the verdict then is a miss anyway.
    if all(parts["hub"]) and all(parts["baseline"]):
        cell["paired_diff_p99_ms"] = round(paired_difference(parts["hub"], parts["baseline"]), 2)
        if slices >= MIN_SLICES_FOR_INTERVAL:
            cell["interval_p99_ms"] = [round(x, 2) for x in difference_interval(parts["hub"], parts["baseline"])]
    complete = hub["lost"] == 0 and hub["failed"] == 0 and hub["accepted"] == hub["sent"]
    cell["verdict"] = (verdict(cell["diff_p99_ms"], LATENCY_LIMIT_MS, cell.get("interval_p99_ms"))
                       if complete else "**missed** (pops lost or events refused)")
    return cell


async def burst(sides: list[Side], crm_ms: float, calls: int, repeats: int) -> list[dict]:
    """``calls`` new calls posted evenly within one second, ``repeats`` times per side in
    alternation, a few seconds apart."""
    merged = {s.target.name: LoadResult(calls, 0.0) for s in sides}
    longest_post = {s.target.name: 0.0 for s in sides}
    for k in range(repeats):
        for s in (sides if k % 2 == 0 else sides[::-1]):
            await asyncio.sleep(3)
            part, _, _ = await s.run(calls, 1.0, f"burst{crm_ms:g}-{s.target.name}-{k}", drain_s=20)
            merged[s.target.name].add(part)
            longest_post[s.target.name] = max(longest_post[s.target.name], part.post_s)
    out = []
    limit = crm_ms + BURST_MARGIN_MS
    for name, result in merged.items():
        s = result.summary()
        ok = result.accepted == result.sent and result.lost == 0 and result.wrong == 0 and s["max_ms"] <= limit
        row = {"crm_ms": crm_ms, "server": name, "calls": calls, "repeats": repeats, "limit_ms": limit,
               "longest_post_s": round(longest_post[name], 3), **s,
               "verdict": "met" if ok else "**missed**"}
        log(f"burst CRM {crm_ms:g} ms {name}: {row}")
        out.append(row)
    return out


# --- 3: the sustained rate
async def ladder(side: Side, steps: list[float], step_s: float,
                 unrecorded: Callable[[LoadResult, str], Awaitable[int]] | None = None) -> list[dict]:
    """Rising rates on one server, its sockets connected throughout, until a step is not
    sustained. ``unrecorded(result, tag)``: how many of the step's 202s its database lacks once
    it caught up (a step with any is not sustained)."""
    name = side.target.name
    await side.sockets.connect()
    out = []
    try:
        for rate in steps:
            t0 = time.perf_counter()
            tag = f"tp{rate:g}-{name.replace(' ', '')}"
            result, loop_s, rest_s = await side.run(rate, step_s, tag)
            wall = time.perf_counter() - t0
            s = result.summary() | {"sustained": sustained(result), "cpu_loop_pct": _cpu_pct(loop_s, wall),
                                    "cpu_rest_pct": _cpu_pct(rest_s, wall)}
            if unrecorded is not None:
                s["unrecorded"] = await unrecorded(result, tag)
                s["sustained"] = s["sustained"] and s["unrecorded"] == 0
            log(f"sustained {name} {rate:g}/s: {s}")
            out.append(s)
            if not s["sustained"]:
                break
            await asyncio.sleep(3)
    finally:
        await side.sockets.close()
    return out


def sustained_rate(tmp: Path, agents_csv: Path, agents: list[dict], crm_url: str, plan: dict, run) -> dict:
    out: dict = {"step_s": plan["step_s"], "confirm_s": plan["confirm_s"], "steps": {}, "confirm": None}
    for name in ("hub", "baseline"):
        target = start(name, tmp, agents_csv, crm_url, f"ladder-{name}")
        with target.proc:
            out["steps"][name] = run(ladder(Side(target, agents), plan["steps"], plan["step_s"]))
    best = max((s["rate"] for s in out["steps"]["hub"] if s["sustained"]), default=0)
    # The hub's best step again, longer, on a fresh hub; one step down if it does not hold.
    for rate in [r for r in sorted(plan["steps"], reverse=True) if r <= best][:2]:
        target = start("hub", tmp, agents_csv, crm_url, f"confirm-{rate:g}")
        with target.proc:
            (s,) = run(ladder(Side(target, agents), [rate], plan["confirm_s"]))
            code = target.proc.terminate()
        s["exit_code"] = code
        s["recorded"] = count_events(tmp / f"confirm-{rate:g}.duckdb", f"tp{rate:g}-hub-")
        log(f"sustained: confirmation {rate:g}/s x {plan['confirm_s']} s: {s}")
        out["confirm"] = s
        if s["sustained"]:
            break
    return out


def count_events(db: Path, prefix: str) -> int | None:
    """Events of these calls in the hub's database after it stopped (None if it cannot be read)."""
    try:
        import duckdb
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("SELECT count(DISTINCT event_id) FROM events WHERE call_id LIKE ?",
                               [prefix + "%"]).fetchone()[0]
        finally:
            con.close()
    except Exception as e:  # noqa: BLE001 - a report line, not a failure of the run
        log(f"could not count the recorded events: {e}")
        return None


# --- 4: many agent sockets on one server
async def hold_sockets(target: Target, agents: list[dict], rest_s: float) -> dict:
    await asyncio.sleep(2)
    before = target.proc.rss_kb()
    sockets = AgentSockets(target.ws_url, agents)
    t0 = time.perf_counter()
    await sockets.connect(concurrency=100)
    sign_in_s = time.perf_counter() - t0
    await asyncio.sleep(5)
    after = target.proc.rss_kb()
    m0, o0 = target.cpu()
    frames0, t0 = sockets.frames, time.perf_counter()
    await asyncio.sleep(rest_s)
    m1, o1 = target.cpu()
    wall, frames = time.perf_counter() - t0, sockets.frames - frames0
    await sockets.close()
    n = len(agents)
    return {"server": target.name, "sockets": n, "sign_in_s": round(sign_in_s, 1), "rss_before_kb": before,
            "rss_after_kb": after, "kb_per_socket": round((after - before) / n, 1), "rest_s": round(wall, 1),
            "cpu_rest_pct": _cpu_pct((m1 - m0) + (o1 - o0), wall), "cpu_rest_loop_pct": _cpu_pct(m1 - m0, wall),
            "frames_per_s": round(frames / wall, 1)}


def many_sockets(tmp: Path, n: int, rest_s: float, crm_url: str, run) -> list[dict]:
    agents_csv = tmp / f"agents-{n}.csv"
    agents = procs.write_agents_csv(agents_csv, n)
    out = []
    for name in ("hub", "baseline"):
        target = start(name, tmp, agents_csv, crm_url, f"sockets-{name}")
        with target.proc:
            row = run(hold_sockets(target, agents, rest_s))
        log(f"sockets: {row}")
        out.append(row)
    return out


# --- the profile: where a server's event loop goes during one cell
# py-spy names a frame "function (package/module.py:line)", paths relative to site-packages.
GROUPS = (("httpx / httpcore", ("(httpx/", "(httpcore/")), ("the hub's own HTTP pool", ("(pipelines/http_pool",)),
          ("uvicorn", ("(uvicorn/",)), ("starlette / fastapi", ("(starlette/", "(fastapi/")),
          ("pydantic", ("(pydantic",)), ("websockets", ("(websockets/",)), ("json", ("(json/",)),
          ("duckdb / pyarrow", ("(duckdb", "(pyarrow")), ("phonenumbers", ("(phonenumbers/",)),
          ("anyio", ("(anyio/",)), ("the hub's code", ("(pipelines/",)), ("the baseline's code", ("(bench/",)))


def profile(tmp: Path, agents_csv: Path, agents: list[dict], crm_url: str, rate: float, seconds: float,
            run, name: str = "hub") -> dict:
    """py-spy (100 Hz, non-blocking) on one server during one run: its main thread's own time per
    frame, and the share of samples with a library on the stack."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = tmp / f"profile-{name}.txt"
    target = start(name, tmp, agents_csv, crm_url, f"profile-{name}")
    with target.proc:
        side = Side(target, agents)

        async def load():
            await side.sockets.connect()
            rec = subprocess.Popen([spy, "record", "-p", str(target.proc.pid), "-o", str(raw), "-f", "raw",
                                    "-d", str(int(seconds) + 1), "-r", "100", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.5)
            result, loop_s, _ = await side.run(rate, seconds, f"profile-{name}")
            await asyncio.get_running_loop().run_in_executor(None, rec.wait, 60)
            await side.sockets.close()
            return result, loop_s

        result, loop_s = run(load())
    if not raw.is_file():
        return {"error": "py-spy recorded nothing (is ptrace allowed?)"}
    own: collections.Counter = collections.Counter()
    groups: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or "_run_module_as_main" not in frames[0]:
            continue  # the main thread (the event loop) only
        k = int(n)
        total += k
        own[frames[-1]] += k
        # What the loop runs sits below asyncio's Runner.run; what is above it is on every stack.
        top = max((i for i, f in enumerate(frames) if "(asyncio/runners.py" in f), default=-1)
        inner = frames[top + 1:]
        for group, needles in GROUPS:
            if any(needle in f for f in inner for needle in needles):
                groups[group] += k
    pct = lambda k: round(100 * k / total, 1) if total else 0.0  # noqa: E731
    return {"server": name, "rate": rate, "seconds": seconds, "samples": total, "p99_ms": round(result.p(99), 2),
            "cpu_loop_pct": _cpu_pct(loop_s, seconds),
            "own": [(f, pct(k)) for f, k in own.most_common(12)],
            "groups": [(g, pct(groups[g])) for g, _ in GROUPS]}
