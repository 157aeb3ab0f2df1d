"""Cluster mode (docs/CLUSTER.md) beside one hub, in one run: three hubs with ``CALLPOP_REDIS_URL``
on one Redis (AOF, ``appendfsync everysec``) and a recorder (``callpop record``), against the
normal single hub, both up throughout and driven in alternating slices.

- pop latency at fixed rates, 1,000 agents: the agents signed in round-robin over the three
  hubs, each event posted to a hub picked at random, so most pops cross from one hub to
  another; the cost of that is the three hubs' p50 minus the single hub's;
- Redis CPU per event (``INFO cpu`` before and after, over the events of those slices);
- the sustained rate of each, stepped up as the sustained section does; for the cluster a step
  counts only if every 202 is also in the recorder's database (read through its read API);
- the record: many agent sockets over the three hubs at 100 events/s;
- a failover, on a fresh cluster: one of the three hubs SIGKILLed under load; its agents come
  back through the others as the extension does (``AgentSockets(reconnect=True)``) and the PBX
  sends what was not answered 202 again (``Spread(retry_for_s=...)``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import math
import os
import re
import time
from pathlib import Path
from typing import Iterator

from pipelines import settings as settings_mod
from pipelines.cluster.reads import RemoteReads
from tests.support import procs
from tests.support.load import AgentSockets, LoadResult, Spread, run_load
from tests.support.redis import RedisServer
from tests.support.stats import difference_interval, paired_difference, percentile, verdict

from .figures import DEADLINE_MS, MIN_SLICES_FOR_INTERVAL, Side, alternate, ladder, log

ONE, THREE = "one hub", "three hubs"
HUBS = 3
CROSS_HUB_LIMIT_MS = 3.0  # three hubs' pop p50 within this of one hub's
RECORD_P99_MS = 100.0  # the record's pop p99 at 100 events/s
RECORDER_TOKEN = "bench-recorder-token"
CATCH_UP_S = 30.0  # how long the recorder may take to have every 202 of a run
PBX_RETRY_S = 30.0  # the failover's PBX retries an event this long (beyond the 10 s claim of a dead hub)


class Hubs:
    """The single hub, or the three hubs with their Redis and recorder, as the generator sees them."""

    def __init__(self, name: str, hubs: list[procs.Proc], redis: RedisServer | None = None,
                 recorder: procs.Proc | None = None):
        self.name, self.hubs, self.redis, self.recorder = name, hubs, redis, recorder
        self.reads = RemoteReads(settings_mod.load(env_file=None, recorder_url=recorder.url,
                                                   recorder_token=RECORDER_TOKEN)) if recorder else None

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the hubs: their event loops, and the rest (their threads and children)."""
        loop = rest = 0.0
        for h in self.hubs:
            c = procs.thread_cpu(h.pid)
            loop, rest = loop + c["main"], rest + c["other"]
        return loop, rest

    def backing(self) -> tuple[float, float, int]:
        """CPU seconds of Redis and of the recorder (all its threads), and the commands Redis ran."""
        if self.redis is None:
            return 0.0, 0.0, 0
        c = procs.thread_cpu(self.recorder.pid)
        return self.redis.cpu_s(), c["main"] + c["other"], self.redis.commands()


class Group(Side):
    """One setup's agent sockets, spread over its hubs, and its PBX, posting to them at random;
    it adds up, over its runs, the CPU its processes spend (hubs, Redis, recorder), the calls
    answered 202, and the latencies of pops of events posted to the agent's own hub and to
    another."""

    def __init__(self, target: Hubs, agents: list[dict], reconnect: bool = False, retry_for_s: float = 0.0):
        self.target = target
        self.sockets = AgentSockets([h.ws_url for h in target.hubs], agents, reconnect=reconnect)
        self.poster = Spread([h.url + "/api/events" for h in target.hubs], procs.INGEST, retry_for_s=retry_for_s)
        self.tally()

    def tally(self) -> None:
        """Start the sums again."""
        self.hubs_s = self.redis_s = self.recorder_s = 0.0
        self.events = self.commands = 0
        self.accepted_ids: list[str] = []
        self.same_ms: list[float] = []  # pops of events posted to the agent's own hub
        self.cross_ms: list[float] = []  # and to another hub

    async def run(self, rate: float, seconds: float, tag: str, drain_s: float = 10):
        r0, c0, n0 = self.target.backing()
        out = await super().run(rate, seconds, tag, drain_s)
        r1, c1, n1 = self.target.backing()
        result, loop_s, rest_s = out
        self.hubs_s += loop_s + rest_s
        self.redis_s += r1 - r0
        self.recorder_s += c1 - c0
        self.commands += n1 - n0
        self.events += result.sent
        self.accepted_ids += result.accepted_ids
        n, hub_of = len(self.sockets.agents), self.poster.answered_by
        for i, c in enumerate(result.call_ids):  # run_load rings agents[i % n] for its i-th call
            if c in result.latency_of:
                (self.same_ms if hub_of[c] == self.sockets.at[i % n] else self.cross_ms).append(result.latency_of[c])
        return out

    def summary(self) -> dict:
        n = max(1, self.events)
        return {"cpu_ms_per_event": round(1e3 * (self.hubs_s + self.redis_s + self.recorder_s) / n, 2),
                "hubs_ms_per_event": round(1e3 * self.hubs_s / n, 2),
                "redis_us_per_event": round(1e6 * self.redis_s / n, 1),
                "redis_commands_per_event": round(self.commands / n, 1),
                "recorder_us_per_event": round(1e6 * self.recorder_s / n, 1),
                "cross_hub_share": round(len(self.cross_ms) / max(1, len(self.cross_ms) + len(self.same_ms)), 3),
                "same_hub_p50_ms": round(percentile(self.same_ms, 50), 2),
                "cross_hub_p50_ms": round(percentile(self.cross_ms, 50), 2)}


def marks(hubs: Hubs) -> list[int]:
    """Where each hub's log stands now (``troubles`` reads from there)."""
    return [len(h.log) for h in hubs.hubs]


def troubles(hubs: Hubs, since: list[int]) -> dict[str, int]:
    """The warnings and errors the hubs logged since ``marks``, by kind (numbers taken out)."""
    found: collections.Counter = collections.Counter()
    for h, start in zip(hubs.hubs, since):
        for line in h.log[start:]:
            m = re.search(r" (WARNING|ERROR) +\S+: (.*)", line)
            if m and "plaintext token" not in m.group(2):
                found[re.sub(r"\d+", "N", m.group(2))[:90]] += 1
    return dict(found.most_common(6))


# --- the processes
def start_hubs(n: int, make) -> list[procs.Proc]:
    """n hubs started at once (each takes seconds to import and open)."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(make, range(n)))


@contextlib.contextmanager
def cluster(tmp: Path, agents_csv: Path, crm_url: str, tag: str) -> Iterator[Hubs]:
    """Redis (AOF everysec), a recorder and three hubs, stopped (Redis killed) at the end."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer(tmp / f"redis-{tag}", fsync="everysec"))
        recorder = stack.enter_context(procs.start_recorder(tmp / f"{tag}.duckdb", redis.url,
                                                            recorder_token=RECORDER_TOKEN))
        hubs = start_hubs(HUBS, lambda i: procs.start_hub(
            tmp / f"{tag}-unused{i}.duckdb", agents_csv, crm_url, crm_deadline_ms=DEADLINE_MS, redis_url=redis.url,
            hub_name=f"{tag}-hub{i + 1}", recorder_url=recorder.url, recorder_token=RECORDER_TOKEN))
        for h in hubs:
            stack.enter_context(h)
        yield Hubs(THREE, hubs, redis, recorder)


async def unrecorded(hubs: Hubs, accepted_ids: list[str], prefix: str) -> int:
    """How many of these calls' 202s (their call ids start with ``prefix``) the recorder's
    database lacks once it caught up (waiting up to ``CATCH_UP_S`` for it)."""
    want = {c + "-r" for c in accepted_ids}  # run_load's event ids
    end = time.perf_counter() + CATCH_UP_S
    while True:
        try:
            rows = await asyncio.to_thread(hubs.reads.query, "SELECT DISTINCT event_id FROM events WHERE event_id "
                                                             "LIKE ?", [prefix + "%"])
            missing = len(want - set(rows.event_id))
        except Exception as e:  # noqa: BLE001 - a slow or busy recorder: try again until the time is up
            log(f"cluster: reading the recorder: {e}")
            missing = len(want)
        if not missing or time.perf_counter() > end:
            return missing
        await asyncio.sleep(0.5)


def recorded_twice(hubs: Hubs, prefix: str) -> int:
    rows = hubs.reads.query("SELECT count(*) - count(DISTINCT event_id) AS n FROM events WHERE event_id LIKE ?",
                            [prefix + "%"])
    return int(rows.n[0])


# --- 1: pop latency and Redis CPU, one hub beside three
async def side_by_side(one: Hubs, three: Hubs, agents: list[dict], plan: dict) -> list[dict]:
    groups = [Group(one, agents), Group(three, agents)]
    for g in groups:
        t0 = time.perf_counter()
        await g.sockets.connect()
        log(f"cluster: {g.target.name}: {len(agents):,} agents signed in in {time.perf_counter() - t0:.1f} s")
    cells = []
    try:
        for rate in plan["cluster_rates"]:
            for g in groups:
                g.tally()
            slices, seconds = plan["cluster_slices"][str(rate)], plan["cluster_seconds"][str(rate)]
            since = marks(three)
            pooled, parts = await alternate(groups, rate, seconds, slices, f"cl{rate:g}")
            spread = groups[1]
            missing = await unrecorded(three, spread.accepted_ids, f"cl{rate:g}-")
            cell: dict = {"rate": rate, "seconds": seconds, "slices": slices, ONE: pooled[ONE] | groups[0].summary(),
                          THREE: pooled[THREE] | spread.summary() | {"unrecorded": missing,
                                                                      "logged": troubles(three, since)},
                          "cost_p50_ms": round(pooled[THREE]["p50_ms"] - pooled[ONE]["p50_ms"], 2),
                          "cost_p99_ms": round(pooled[THREE]["p99_ms"] - pooled[ONE]["p99_ms"], 2)}
            if all(parts[THREE]) and all(parts[ONE]):
                cell["paired_cost_p50_ms"] = round(paired_difference(parts[THREE], parts[ONE], 50), 2)
                if slices >= MIN_SLICES_FOR_INTERVAL:
                    cell["interval_p50_ms"] = [round(x, 2) for x in difference_interval(parts[THREE], parts[ONE], 50)]
            complete = missing == 0 and all(cell[k]["lost"] == 0 and cell[k]["accepted"] == cell[k]["sent"]
                                            for k in (ONE, THREE))
            cell["verdict"] = (verdict(cell["cost_p50_ms"], CROSS_HUB_LIMIT_MS, cell.get("interval_p50_ms"))
                               if complete else "**missed** (pops lost, events refused or not recorded)")
            log(f"cluster latency {rate:g}/s: {cell}")
            cells.append(cell)
            await asyncio.sleep(2)
    finally:
        for g in groups:
            await g.poster.close()
            await g.sockets.close()
    return cells


# --- 2: the record, many sockets over the three hubs
async def record(three: Hubs, agents: list[dict], rate: float, seconds: float) -> dict:
    g = Group(three, agents)
    t0 = time.perf_counter()
    await g.sockets.connect(concurrency=100)
    sign_in_s = time.perf_counter() - t0
    await asyncio.sleep(3)  # presence published, sign-in work done
    since = marks(three)
    try:
        t0 = time.perf_counter()
        result, loop_s, rest_s = await g.run(rate, seconds, "rec")
        wall = time.perf_counter() - t0
        missing = await unrecorded(three, result.accepted_ids, "rec-")
    finally:
        await g.sockets.close()
    s = result.summary() | g.summary() | {
        "sockets": len(agents), "sign_in_s": round(sign_in_s, 1), "unrecorded": missing,
        "logged": troubles(three, since),
        "hubs_cpu_pct": round(100 * (loop_s + rest_s) / wall, 1),
        "hubs_rss_mb": round(sum(h.rss_kb() for h in three.hubs) / 1024)}
    s["verdict"] = ("met" if s["p99_ms"] < RECORD_P99_MS and result.lost == 0 and missing == 0
                    and result.accepted == result.sent else "**missed**")
    log(f"cluster record: {s}")
    return s


# --- 3: the sustained rate, one hub and three
def sustained(one: Hubs, three: Hubs, agents: list[dict], plan: dict, run) -> dict:
    async def check(result: LoadResult, tag: str) -> int:
        return await unrecorded(three, result.accepted_ids, tag + "-")

    return {"step_s": plan["step_s"],
            ONE: run(ladder(Group(one, agents), plan["steps"], plan["step_s"])),
            THREE: run(ladder(Group(three, agents), plan["steps"], plan["step_s"], check))}


# --- 4: one hub of three killed under load
async def failover(three: Hubs, agents: list[dict], rate: float, seconds: float, kill_at_s: float) -> dict:
    g = Group(three, agents, reconnect=True, retry_for_s=PBX_RETRY_S)
    await g.sockets.connect()
    victim = 0
    on_victim = sum(1 for k in g.sockets.at if k == victim)

    async def kill() -> None:
        await asyncio.sleep(kill_at_s)
        await asyncio.to_thread(three.hubs[victim].kill)
        log(f"cluster failover: {three.hubs[victim].name} {victim + 1} killed (SIGKILL)")

    since = marks(three)
    killer = asyncio.get_running_loop().create_task(kill())
    try:
        result = await run_load(g.poster, g.sockets, rate, seconds, tag="fo", drain_s=10)
        await killer
        now = time.perf_counter()
        gaps_ms = [1000 * s for s in g.sockets.gaps] + [1000 * (now - t) for t in g.sockets.down_since.values()]
        missing = await unrecorded(three, result.accepted_ids, "fo-")
        twice = await asyncio.to_thread(recorded_twice, three, "fo-")
    finally:
        killer.cancel()
        await g.poster.close()
        await g.sockets.close()
    late = sum(1 for x in result.latencies_ms if x > DEADLINE_MS)
    # Each lost pop: which hub answered its 202, which hub its agent was on first, and when it
    # was due against the kill (run_load posts call i at i / rate and rings agents[i % n]).
    where = {c: i for i, c in enumerate(result.call_ids)}
    lost = [{"call_id": c, "answered_by": g.poster.answered_by.get(c), "agent_on": where[c] % len(agents) % HUBS,
             "due_after_kill_s": round(where[c] / rate - kill_at_s, 2)}
            for c in result.accepted_ids if c not in g.sockets.pops][:20]
    s = result.summary() | {
        "agents": len(agents), "kill_at_s": kill_at_s, "on_killed_hub": on_victim,
        "reconnected": len(g.sockets.gaps), "still_down": len(g.sockets.down_since),
        "longest_gap_ms": round(max(gaps_ms, default=math.nan), 1),
        "gap_p50_ms": round(percentile(gaps_ms, 50), 1), "gap_p99_ms": round(percentile(gaps_ms, 99), 1),
        "acked_lost": missing, "recorded_twice": twice, "retries": g.poster.retries,
        "answers": {str(k): v for k, v in sorted(g.poster.answers.items())}, "late_pops": late,
        "killed_hub": victim, "lost_calls": lost, "logged": troubles(three, since)}
    s["verdict"] = "met" if result.lost == 0 and missing == 0 and twice == 0 and not s["still_down"] else "**missed**"
    log(f"cluster failover: {s}")
    return s


def run(tmp: Path, crm_url: str, plan: dict, run_async, agents_n: int) -> dict:
    """The whole section: one hub and three side by side (latency, then the sustained rate), then
    the record and the failover on fresh clusters."""
    n = max(agents_n, plan["cluster_sockets"])
    agents_csv = tmp / "agents-cluster.csv"
    everyone = procs.write_agents_csv(agents_csv, n)
    agents = everyone[:agents_n]
    # Others' work on the shared cores shows in every figure: the load average says how much there was.
    out: dict = {"agents": agents_n, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    with cluster(tmp, agents_csv, crm_url, "cluster") as three:
        with procs.start_hub(tmp / "cluster-single.duckdb", agents_csv, crm_url, crm_deadline_ms=DEADLINE_MS) as hub:
            one = Hubs(ONE, [hub])
            out["latency"] = run_async(side_by_side(one, three, agents, plan))
            out["sustained"] = sustained(one, three, agents, plan, run_async)
    # The record and the failover each on a fresh cluster: no call of an earlier run is live (the
    # bench never hangs up, and each sign-in's welcome goes over the live calls for replays).
    with cluster(tmp, agents_csv, crm_url, "record") as fresh:
        out["record"] = run_async(record(fresh, everyone[:plan["cluster_sockets"]], plan["cluster_record_rate"],
                                         plan["cluster_record_s"]))
    with cluster(tmp, agents_csv, crm_url, "failover") as fresh:
        out["failover"] = run_async(failover(fresh, agents, plan["failover_rate"], plan["failover_s"],
                                             plan["failover_kill_s"]))
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out
