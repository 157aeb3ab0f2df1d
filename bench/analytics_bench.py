"""Analytics: every named query of ``pipelines/analytics/`` (what the console's analytics page
and the notebooks run) over a generated history of N lookups, against a bare DuckDB scan of the
same ``lookups`` table computing the headline numbers (hit rate, exact p50/p95/p99)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb

from tests.support import ROOT

BARE = ("SELECT count(*), avg(CASE WHEN outcome IN ('found', 'multiple') THEN 1 ELSE 0 END), "
        "quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM lookups")


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return min(times)


def run(tmp: Path, lookups: int) -> dict:
    from pipelines import analytics
    db = tmp / "history.duckdb"
    days = 100
    calls_per_day = lookups / days * 1.06  # a few calls have no number to look up
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines", "seed", "--db", str(db), "--days", str(days),
                    "--calls-per-day", str(calls_per_day), "--no-events", "--replace"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    seed_s = time.perf_counter() - t
    con = duckdb.connect(str(db), read_only=True)
    try:
        n_lookups, n_calls = con.execute("SELECT (SELECT count(*) FROM lookups), (SELECT count(*) FROM calls)").fetchone()
        start, end = con.execute("SELECT min(started_at), max(started_at) + INTERVAL 1 SECOND FROM lookups").fetchone()
        bare_ms = best_of(lambda: con.execute(BARE).fetchall())
        queries = []
        for name in analytics.QUERIES:
            ms = best_of(lambda: analytics.run(con, name, start=start.isoformat(), end=end.isoformat()))
            queries.append({"name": name, "ms": ms, "ratio": ms / bare_ms})
            print(f"analytics {name}: {ms:.0f} ms", file=sys.stderr, flush=True)
    finally:
        con.close()
    return {"lookups": n_lookups, "calls": n_calls, "seed_s": seed_s, "bare_ms": bare_ms, "queries": queries}
