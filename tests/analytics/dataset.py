"""A small hand-built history whose right answers are known (worked out in the comments).

Everything happens on Wednesday 2026-11-25 (UTC); the range under test is that day,
``[2026-11-25, 2026-11-26)``. Rows just outside it check that the range is half-open.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "schema.sql"
DAY = dt.datetime(2026, 11, 25)
START, END = DAY, DAY + dt.timedelta(days=1)
DEADLINE = 1500


def at(hour: int, minute: int = 0, second: float = 0) -> dt.datetime:
    return DAY + dt.timedelta(hours=hour, minutes=minute, seconds=second)


def _lookup(started_at, latency, outcome, phone, *, did="0722776773", ext="201", late_outcome=None,
            late_latency=None, error=None, cache="miss", call_id=None):
    return {"call_id": call_id or f"c-{started_at:%H%M%S%f}", "phone": phone, "phone_e164": phone,
            "started_at": started_at, "latency_ms": float(latency), "outcome": outcome, "error": error,
            "cache": cache, "deadline_ms": DEADLINE, "late_outcome": late_outcome,
            "late_latency_ms": None if late_latency is None else float(late_latency), "extension": ext, "did": did}


TIMEOUT_ERROR = "no answer within the 1500 ms deadline"

# --- lookups ---------------------------------------------------------------------------------------
# Hour 00: one found lookup exactly at the start of the range (inside it).
# Hour 10 (DID 0722776773, ext 201): 7 found, 2 not found, 1 timeout -> hit rate 0.7; the
#   timeout was answered 'found' after 2500 ms -> known rate 0.8.
# Hour 11 (DID 0737771111, ext 202): 21 found with latencies 10, 20, ... 210 ms: exact
#   p50 = 110, p95 = 200 (rank 19 of 0..20), p99 = 208 (between ranks 19 and 20).
# Hour 13 (ext 201): 3 http_error (HTTP 500; connection refused twice, with different
#   details: one kind), 1 bad_response, 2 timeouts (one never answered, one answered
#   'not_found' after 1800 ms).
# Outside the range: one a microsecond before the start, one exactly at the end.
LOOKUPS = [
    _lookup(at(0), 5, "found", "+972500000100"),
    *[_lookup(at(10, i), 100 + 10 * i, "found", f"+97250000000{i}") for i in range(7)],
    _lookup(at(10, 20), 200, "not_found", "+972500000009"),
    _lookup(at(10, 21), 220, "not_found", "+972500000009"),
    _lookup(at(10, 30), DEADLINE, "timeout", "+972500000010", late_outcome="found", late_latency=2500,
            error=TIMEOUT_ERROR),
    *[_lookup(at(11, i), 10 * (i + 1), "found", "+972500000200", did="0737771111", ext="202",
              cache="hit" if i == 0 else "miss") for i in range(21)],
    _lookup(at(13, 1), 50, "http_error", "+972500000009", error="CRM answered HTTP 500"),
    _lookup(at(13, 2), 2, "http_error", "+972500000011", error="cannot connect to the CRM (ConnectError: refused)"),
    _lookup(at(13, 3), 3, "http_error", "+972500000012", error="cannot connect to the CRM (ConnectError: reset)"),
    _lookup(at(13, 4), 80, "bad_response", "+972500000008", error="answer is not JSON (starts '<html>')"),
    _lookup(at(13, 5), DEADLINE, "timeout", "+972500000008", late_outcome="timeout", late_latency=10000,
            error=TIMEOUT_ERROR),
    _lookup(at(13, 6), DEADLINE, "timeout", "+972500000013", late_outcome="not_found", late_latency=1800,
            error=TIMEOUT_ERROR),
    _lookup(START - dt.timedelta(microseconds=1), 999, "not_found", "+972500000009"),
    _lookup(END, 999, "not_found", "+972500000009"),
]
IN_RANGE = LOOKUPS[:-2]
N_LOOKUPS = 38          # 1 + 10 + 21 + 6
N_HITS = 29             # 1 + 7 + 21
N_KNOWN = 30            # + the timeout answered 'found' late
N_TIMEOUTS = 3


# --- pops --------------------------------------------------------------------------------------------
# noa: 6 pops: 1 unreached (sessions 0), 5 sent; 4 shown, 2 clicked (4 s and 10 s after sent:
#   median 7 s), 1 closed; 2 provisional (one still 'pending', one replaced).
# avi: 4 pops, all sent; 2 shown, 0 clicked, 2 closed.
# Totals: 10 recorded, 1 unreached, 9 sent, 6 shown, 2 clicked, 3 closed; show rate 6/9,
# click-through 2/6; provisional 2/9. Hour 10 has 6 sent pops (2 provisional), hour 11 has 3.
def _pop(call_id, agent, sent_at, sessions=1, status="found", shown=None, clicked=None, closed=None, updated=None):
    def after(s):
        return None if s is None else sent_at + dt.timedelta(seconds=s)
    return {"call_id": call_id, "agent_id": agent, "extension": {"noa": "201", "avi": "202"}[agent],
            "sent_at": sent_at, "status": status, "sessions": sessions, "updated_at": after(updated),
            "shown_at": after(shown), "clicked_at": after(clicked), "closed_at": after(closed)}


POPS = [
    _pop("p1", "noa", at(10, 1), shown=0.2, clicked=4),
    _pop("p2", "noa", at(10, 2), shown=0.2, clicked=10, closed=20),
    _pop("p3", "noa", at(10, 3), shown=0.2, status="pending"),
    _pop("p4", "noa", at(10, 4), shown=0.2, status="found", updated=1.2),
    _pop("p5", "noa", at(11, 5)),
    _pop("p6", "noa", at(11, 6), sessions=0),
    _pop("p7", "avi", at(10, 7), sessions=2, shown=0.3, closed=5),
    _pop("p8", "avi", at(10, 8), shown=0.3, closed=6),
    _pop("p9", "avi", at(11, 9), status="not_found"),
    _pop("p10", "avi", at(11, 10), status="error"),
    _pop("p-out", "avi", END, shown=0.3, clicked=1),  # outside the range
]


# --- dials -------------------------------------------------------------------------------------------
# 10 dials: 8 requested (4 bridged after 5, 6, 7 and 10 s; 3 failed: 1 leg_a_no_answer,
# 2 leg_b_busy after leg A answered; 1 in progress with leg A answered) and 2 refused
# (not_a_number, blocked_prefix). Leg A answered 7 of 8, bridged 4 of 8. Time to bridge:
# p50 6.5 s, p95 9.55 s. noa placed 6 from the extension, sarah 4 from the console.
def _dial(n, agent, source, requested_at, outcome, *, a=None, bridged=None, error=None):
    def after(s):
        return None if s is None else requested_at + dt.timedelta(seconds=s)
    return {"dial_id": f"d{n}", "agent_id": agent, "source": source, "leg_a": "201", "leg_a_kind": "extension",
            "leg_b": "0501234567", "leg_b_e164": "+972501234567", "requested_at": requested_at,
            "leg_a_answered_at": after(a), "bridged_at": after(bridged),
            "ended_at": after(bridged + 60 if bridged else None if outcome in (None, "refused") else (a or 0) + 30),
            "outcome": outcome, "error": error, "provider": "sim"}


DIALS = [
    _dial(1, "noa", "extension", at(9, 1), "bridged", a=2, bridged=5),
    _dial(2, "noa", "extension", at(9, 2), "bridged", a=2, bridged=6),
    _dial(3, "noa", "extension", at(9, 3), "bridged", a=3, bridged=7),
    _dial(4, "sarah", "console", at(15, 4), "bridged", a=4, bridged=10),
    _dial(5, "noa", "extension", at(9, 5), "failed", error="leg_a_no_answer"),
    _dial(6, "sarah", "console", at(15, 6), "failed", a=2, error="leg_b_busy"),
    _dial(7, "sarah", "console", at(15, 7), "failed", a=2, error="leg_b_busy"),
    _dial(8, "noa", "extension", at(9, 8), None, a=2),
    _dial(9, "noa", "extension", at(9, 9), "refused", error="not_a_number"),
    _dial(10, "sarah", "console", at(15, 10), "refused", error="blocked_prefix"),
    _dial(11, "sarah", "console", START - dt.timedelta(seconds=1), "bridged", a=1, bridged=2),  # outside
]


# --- calls -------------------------------------------------------------------------------------------
# 4 calls in the range: three at 10:xx UTC, one at 11:xx; one the day before (outside).
CALLS = [{"call_id": f"k{i}", "direction": "inbound", "caller": "0501234567", "started_at": t,
          "status": "ended", "extension": "201"}
         for i, t in enumerate([at(10, 1), at(10, 2), at(10, 3), at(11, 4), START - dt.timedelta(hours=1)])]


def build(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Create the schema on ``con`` and insert the rows above."""
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    for table, rows in (("lookups", LOOKUPS), ("pops", POPS), ("dials", DIALS), ("calls", CALLS)):
        frame = pd.DataFrame(rows)
        con.register("rows_df", frame)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rows_df")
        con.unregister("rows_df")
    return con


def build_file(path: Path) -> Path:
    con = duckdb.connect(str(path))
    try:
        build(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path
