"""``python -m bench`` (``make bench``): the figures users feel, each beside a bare baseline
measured in the same run, written to bench/RESULTS.md and to bench/out/<label>.json.

    python -m bench --label before          # every figure (well under 25 min)
    python -m bench --quick --label smoke   # the same, short (checks the benchmarks, not the hub)
    python -m bench --only latency,burst    # some: latency, burst, sustained, sockets, chromium,
                                            #       analytics, profile, cluster
    python -m bench compare before after    # RESULTS.md with both runs side by side
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from tests.support import procs

from . import figures, report

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
AGENTS = 1000
SECTIONS = ("latency", "burst", "sustained", "sockets", "chromium", "analytics", "profile", "cluster")

FULL = {
    "crm_ms": [0, 50], "rates": [20, 100],
    # seconds per side and slices per rate: at 20/s a p99 is the 12th worst of 1,200 pops
    "seconds": {"20": 60, "100": 30}, "slices": {"20": 10, "100": 10},
    "burst_calls": 500, "burst_repeats": 3,
    "steps": [50, 100, 200, 400, 600, 800, 1000, 1200, 1600, 2000], "step_s": 10, "confirm_s": 60,
    "sockets": 10_000, "rest_s": 60, "chromium_calls": 100, "analytics_lookups": 10_000_000,
    "profile_rate": 100, "profile_s": 15,
    # cluster: one hub beside three on Redis; the record's sockets over the three; a hub killed
    "cluster_rates": [20, 100], "cluster_seconds": {"20": 30, "100": 20}, "cluster_slices": {"20": 6, "100": 6},
    "cluster_sockets": 10_000, "cluster_record_rate": 100, "cluster_record_s": 30,
    "failover_rate": 50, "failover_s": 30, "failover_kill_s": 10,
}
QUICK = FULL | {
    "seconds": {"20": 4, "100": 3}, "slices": {"20": 2, "100": 2}, "burst_repeats": 1,
    "steps": [50, 200], "step_s": 3, "confirm_s": 5, "sockets": 1_000, "rest_s": 5, "chromium_calls": 10,
    "analytics_lookups": 100_000, "profile_s": 4,
    "cluster_seconds": {"20": 4, "100": 3}, "cluster_slices": {"20": 2, "100": 2}, "cluster_sockets": 2_000,
    "cluster_record_s": 5, "failover_s": 12, "failover_kill_s": 4,
}


def run_async(coro):
    """Run the generator's coroutine on uvloop (less of the shared cores for the generator)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipelines"], cwd=procs.ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + (" (pipelines/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def measure(only: set[str], plan: dict, res: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="callpop-bench-") as tmp:
        tmp = Path(tmp)
        agents_csv = tmp / "agents.csv"
        agents = procs.write_agents_csv(agents_csv, AGENTS)
        if only & {"latency", "burst"}:
            res.update({section: [] for section in ("latency", "burst") if section in only})
            for crm_ms in plan["crm_ms"]:
                with procs.start_crm(crm_ms) as crm:
                    url = crm.url + "/lookup"
                    hub = figures.start("hub", tmp, agents_csv, url, f"latency-{crm_ms}")
                    with hub.proc:
                        baseline = figures.start("baseline", tmp, agents_csv, url, "")
                        with baseline.proc:
                            cells, bursts = run_async(figures.latency_and_burst(
                                hub, baseline, agents, crm_ms, plan, "latency" in only, "burst" in only))
                if "latency" in only:
                    res["latency"] += cells
                if "burst" in only:
                    res["burst"] += bursts
        with procs.start_crm(0) as crm:
            url = crm.url + "/lookup"
            if "sustained" in only:
                res["sustained"] = figures.sustained_rate(tmp, agents_csv, agents, url, plan, run_async)
            if "sockets" in only:
                res["sockets"] = figures.many_sockets(tmp, plan["sockets"], plan["rest_s"], url, run_async)
            if "chromium" in only:
                from . import chromium
                res["chromium"] = chromium.run(tmp, agents_csv, agents, url, plan["chromium_calls"])
            if "cluster" in only:
                from . import cluster_bench
                res["cluster"] = cluster_bench.run(tmp, url, plan, run_async, AGENTS)
            if "profile" in only:
                res["profile"] = [figures.profile(tmp, agents_csv, agents, url, plan["profile_rate"],
                                                  plan["profile_s"], run_async, name) for name in ("hub", "baseline")]
        if "analytics" in only:
            from . import analytics_bench
            try:
                res["analytics"] = analytics_bench.run(tmp, plan["analytics_lookups"])
            except Exception as e:  # noqa: BLE001 - the hub's analytics may be mid-rewrite
                res["analytics"] = {"error": f"{type(e).__name__}: {e}"}
                figures.log(f"analytics: {res['analytics']['error']}")


def load_run(name: str) -> tuple[str, dict]:
    path = Path(name) if name.endswith(".json") else OUT / f"{name}.json"
    return path.stem, json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        ap = argparse.ArgumentParser(prog="python -m bench compare",
                                     description="RESULTS.md from earlier runs, side by side")
        ap.add_argument("runs", nargs="+", help="labels (bench/out/<label>.json) or paths to .json files")
        ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
        a = ap.parse_args(argv[1:])
        report.write([load_run(r) for r in a.runs], Path(a.out))
        figures.log(f"wrote {a.out}")
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true", help="short runs (checks the benchmarks, not the hub)")
    ap.add_argument("--label", default="latest", help="the run's name: bench/out/<label>.json")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    a = ap.parse_args(argv)
    only = set(a.only.split(","))
    if unknown := only - set(SECTIONS):
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    plan = QUICK if a.quick else FULL
    started = time.time()
    res: dict = {"machine": procs.machine(), "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                 "quick": a.quick, "commit": commit(), "plan": plan}
    stolen, ticks = procs.cpu_ticks()
    measure(only, plan, res)
    res["minutes"] = (time.time() - started) / 60
    stolen, ticks = (now - then for now, then in zip(procs.cpu_ticks(), (stolen, ticks)))
    res["stolen_pct"] = round(100 * stolen / ticks, 1) if ticks else None
    OUT.mkdir(exist_ok=True)
    (OUT / f"{a.label}.json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    report.write([(a.label, res)], Path(a.out))
    figures.log(f"wrote {OUT / (a.label + '.json')} and {a.out} ({res['minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
