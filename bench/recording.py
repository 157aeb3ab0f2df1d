"""Recording: rows per second into DuckDB through the hub's writer (``StoreProcess``: the store in
a process of its own, rows crossing a pipe, as the hub runs it) against a bare DuckDB Arrow append
of the same rows in this process, in the same run.

Two shapes: *bulk* (every row queued at once, so the writer commits big groups: its ceiling)
and *per call* (the four rows one ringing call writes - events, calls, lookups, pops - committed
as one group, as at a low event rate: the cost every single call pays)."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.store import SCHEMA
from pipelines.store_process import StoreProcess


def call_rows(i: int, at: datetime) -> dict[str, dict]:
    """The four rows a ringing call writes, as the hub writes them."""
    call_id = f"rec-{i}"
    return {
        "events": {"event_id": f"e{i}", "call_id": call_id, "type": "ringing", "direction": "inbound",
                   "caller": f"054{i:07d}", "callee": "0722776773", "extension": "201", "occurred_at": at,
                   "received_at": at, "provider": "webhook"},
        "calls": {"call_id": call_id, "direction": "inbound", "caller": f"054{i:07d}",
                  "caller_e164": f"+97254{i:07d}", "callee": "0722776773", "extension": "201", "agent_id": "noa",
                  "started_at": at, "status": "ringing", "provider": "webhook"},
        "lookups": {"call_id": call_id, "phone": f"054{i:07d}", "phone_e164": f"+97254{i:07d}", "started_at": at,
                    "latency_ms": 3.2, "outcome": "found", "http_status": 200, "total": 1,
                    "client_name": "Caller", "company": "Bench Ltd", "url": "https://crm.example.com/c/1",
                    "cache": "miss", "deadline_ms": 1500, "extension": "201", "did": "0722776773"},
        "pops": {"call_id": call_id, "agent_id": "noa", "extension": "201", "sent_at": at, "status": "found",
                 "sessions": 1},
    }


def through_store(path: Path, calls: int, per_call: bool) -> float:
    """Rows per second through the hub's writer."""
    store = StoreProcess(path).open()
    t0 = datetime(2026, 1, 1)
    rows = [call_rows(i, t0 + timedelta(milliseconds=i)) for i in range(calls)]
    start = time.perf_counter()
    if per_call:
        for r in rows:  # wait for each call's group before the next: one commit per call
            futures = [store.insert(table, row) for table, row in r.items()]
            for f in futures:
                f.result()
    else:
        futures = [store.insert(table, row) for r in rows for table, row in r.items()]
        for f in futures:
            f.result()
    elapsed = time.perf_counter() - start
    store.close()
    return calls * 4 / elapsed


def bare(path: Path, calls: int, per_call: bool) -> float:
    """Rows per second for the same rows: one Arrow table per table, appended in one transaction
    per group (per call, or groups of 5,000 rows like the writer's largest)."""
    con = duckdb.connect(str(path))
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    t0 = datetime(2026, 1, 1)
    rows = [call_rows(i, t0 + timedelta(milliseconds=i)) for i in range(calls)]
    group = 1 if per_call else 1250  # calls per transaction (x4 rows)
    start = time.perf_counter()
    for g in range(0, calls, group):
        chunk = rows[g:g + group]
        con.execute("BEGIN")
        for table in ("events", "calls", "lookups", "pops"):
            batch = pa.Table.from_pylist([r[table] for r in chunk])
            con.append(table, batch, by_name=True) if _APPEND_BY_NAME else \
                con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM batch')
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return calls * 4 / elapsed


def _append_by_name() -> bool:
    import inspect
    try:
        return "by_name" in inspect.signature(duckdb.DuckDBPyConnection.append).parameters
    except (TypeError, ValueError):
        return False


_APPEND_BY_NAME = _append_by_name()


def run(bulk_calls: int = 50_000, per_call_calls: int = 2_000) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for shape, calls, per_call in (("bulk", bulk_calls, False), ("per_call", per_call_calls, True)):
            ours = through_store(tmp / f"store-{shape}.duckdb", calls, per_call)
            base = bare(tmp / f"bare-{shape}.duckdb", calls, per_call)
            out[shape] = {"calls": calls, "rows": calls * 4, "store_rows_s": ours, "bare_rows_s": base,
                          "ratio": ours / base}
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
