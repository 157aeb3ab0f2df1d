"""A realistic, repeatable history for the hub's database: ``callpop seed``.

The notebooks, the console's demo, the tests and the benchmarks need months of calls that look
like a real team's: this module makes them, row for row in the shape ``data/schema.sql`` and
the hub write (the same outcomes, error texts, pop statuses and dial reason codes).

What the history holds, and why it looks the way it does:
- Calls follow working hours in Israel (the demo's home, ``Asia/Jerusalem``): Sunday to
  Thursday full days with a morning and an afternoon peak and a lunch dip, a short Friday,
  an almost empty Saturday; each day's volume varies a little.
- Callers are the demo contacts (``data/contacts.csv``, some far more often than others),
  numbers the CRM does not know (a pool in which a few numbers call again and again), and
  withheld numbers; the share of unknown callers depends on the DID that was called.
- The CRM slows down at peak (median latency grows with load, the slow tail grows too), so
  timeouts cluster in busy hours; a timeout's late answer is recorded as the hub records it.
  A few outages (connection refused / HTTP 503 for tens of minutes) and two broken contact
  records (the CRM answers without STATUS) give the error analyses something to find.
- A fifth of the calls ring a ring group (two or three extensions); agents are signed in most
  of the time, and each clicks pops more or less (some hardly ever).
- Click-to-calls fail for real reasons: ``leg_a_no_answer`` (more often on mobiles),
  ``leg_a_busy``, ``leg_b_busy``, ``leg_b_no_answer`` (more at lunch and in the evening),
  ``ended_before_bridge``, ``provider_error``; a few are refused (``not_a_number``,
  ``rate_limited``, ``blocked_prefix``, ``own_number``).

Everything is drawn with numpy from ``seed`` (the same arguments give the same rows) and written
as Arrow batches joined to small dimension tables inside DuckDB, so strings are built by the
database rather than by Python: about 10 M lookups a minute or two on two cores.

Who calls and who answers is ``world.py``, when ``timeline.py``, what happens to a call
``calls.py`` and to a click-to-call ``dials.py``; this module writes the rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import zoneinfo
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np

from ..agents import Agents
from ..contacts import Contacts
from ..providers.sim import DIDS
from ..resources import data_file
from .calls import calls_batch
from .dials import dials_batch
from .timeline import call_profile, days_ending, dial_profile, midnight_utc_us, outages, spread
from .world import (BLOCKED, DEADLINE_MS, DIAL_ERRORS, DIALS_PER_CALL, ERRORS, LOCAL_TZ, NOT_NUMBERS,
                    OUTCOMES, POP_STATUS, US, WEEKDAYS, build_world)

SCHEMA = data_file("schema.sql")


def _codes(name: str, values: tuple[str, ...], column: str = "name") -> str:
    """A temporary table mapping the codes the batches carry (0, 1, ...) to the text rows hold."""
    rows = ", ".join("({}, '{}')".format(i, v.replace("'", "''")) for i, v in enumerate(values))
    return f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM (VALUES {rows}) v(code, {column});\n"


_DIMENSIONS = (_codes("h_outcomes", OUTCOMES) + _codes("h_pop_status", POP_STATUS + ("pending",))
               + _codes("h_errors", tuple(e for e, _ in ERRORS), "text") + _codes("h_dids", DIDS, "did")
               + _codes("h_event_types", ("ringing", "answered", "hangup"))
               + _codes("h_dial_errors", DIAL_ERRORS))

_INSERT = {
    "calls": """
INSERT INTO calls BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, 'inbound' AS direction,
       coalesce(n.raw, '') AS caller, n.e164 AS caller_e164, d.did AS callee, a.extension AS extension,
       g.id AS agent_id, b.started_at, b.answered_at, b.ended_at,
       CASE WHEN b.answered THEN 'ended' ELSE 'missed' END AS status, 'sim' AS provider,
       x.extension AS answered_by, CASE WHEN b.answered THEN 'normal clearing' ELSE 'caller hung up' END AS hangup_cause
FROM batch b JOIN h_dids d ON d.code = b.did JOIN h_agents a ON a.idx = b.ext JOIN h_agents g ON g.idx = b.agent
LEFT JOIN h_numbers n ON n.idx = b.number LEFT JOIN h_agents x ON x.idx = b.answered_ext""",
    "events": """
INSERT INTO events BY NAME
SELECT 'h:' || md5(printf('hist-%09d|%s|%s', b.call_no, y.name, coalesce(a.extension, ''))) AS event_id,
       printf('hist-%09d', b.call_no) AS call_id, y.name AS type, 'inbound' AS direction,
       coalesce(n.raw, '') AS caller, d.did AS callee, coalesce(a.extension, '') AS extension,
       b.occurred_at, b.received_at, 'sim' AS provider
FROM batch b JOIN h_event_types y ON y.code = b.type JOIN h_dids d ON d.code = b.did
LEFT JOIN h_agents a ON a.idx = b.ext LEFT JOIN h_numbers n ON n.idx = b.number""",
    "lookups": f"""
INSERT INTO lookups BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, n.raw AS phone, n.e164 AS phone_e164, b.started_at,
       b.latency_ms, o.name AS outcome, b.http_status,
       CASE WHEN b.contact THEN n.total END AS total,
       CASE WHEN b.contact THEN n.name END AS client_name, CASE WHEN b.contact THEN n.company END AS company,
       CASE WHEN b.contact THEN n.url END AS url, e.text AS error,
       CASE b.cache WHEN 1 THEN 'hit' WHEN 2 THEN 'coalesced' ELSE 'miss' END AS cache,
       {DEADLINE_MS} AS deadline_ms, l.name AS late_outcome, b.late_latency_ms,
       a.extension AS extension, d.did AS did
FROM batch b JOIN h_numbers n ON n.idx = b.number JOIN h_outcomes o ON o.code = b.outcome
JOIN h_dids d ON d.code = b.did JOIN h_agents a ON a.idx = b.ext
LEFT JOIN h_errors e ON e.code = b.error LEFT JOIN h_outcomes l ON l.code = b.late_outcome""",
    "pops": """
INSERT INTO pops BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, a.id AS agent_id, a.extension AS extension, b.sent_at,
       s.name AS status, b.sessions, b.updated_at, b.shown_at, b.clicked_at, b.closed_at
FROM batch b JOIN h_agents a ON a.idx = b.agent JOIN h_pop_status s ON s.code = b.status""",
    "dials": """
INSERT INTO dials BY NAME
SELECT printf('dhist%011d', b.dial_no) AS dial_id, a.id AS agent_id,
       ['extension', 'console', 'api'][b.source + 1] AS source,
       CASE WHEN b.outcome = 2 THEN NULL WHEN b.kind = 0 THEN a.extension WHEN b.kind = 1 THEN a.leg_mobile
            WHEN b.kind = 2 THEN a.leg_home
            ELSE '+9725' || lpad(CAST(b.target % 100000000 AS VARCHAR), 8, '0') END AS leg_a,
       ['extension', 'mobile', 'home', 'number'][b.kind + 1] AS leg_a_kind,
       CASE e.name WHEN 'not_a_number' THEN $not_numbers[1 + b.target % len($not_numbers)]
                   WHEN 'blocked_prefix' THEN $blocked[1 + b.target % len($blocked)]
                   WHEN 'own_number' THEN a.leg_mobile
                   ELSE n.raw END AS leg_b,
       CASE WHEN b.outcome = 2 THEN NULL ELSE n.e164 END AS leg_b_e164,
       b.requested_at, b.leg_a_answered_at, b.bridged_at, b.ended_at,
       ['bridged', 'failed', 'refused'][b.outcome + 1] AS outcome, e.name AS error, 'sim' AS provider
FROM batch b JOIN h_agents a ON a.idx = b.agent JOIN h_numbers n ON n.idx = b.target
LEFT JOIN h_dial_errors e ON e.code = b.error""",
}


@dataclasses.dataclass
class Summary:
    rows: dict[str, int]
    seconds: float
    first: dt.datetime | None
    last: dt.datetime | None

    def __str__(self) -> str:
        counts = ", ".join(f"{v:,} {k}" for k, v in self.rows.items())
        span = f" ({self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC)" if self.first else ""
        return f"{counts} in {self.seconds:.1f} s{span}"


def fill(con: duckdb.DuckDBPyConnection, *, days: int = 30, calls_per_day: float = 2000, seed: int = 1,
         end: dt.date | None = None, agents: Agents, contacts: Contacts, region: str = "IL",
         events: bool = True, progress: Callable[[str], None] | None = None) -> Summary:
    """Write ``days`` days of history ending at local midnight of ``end`` (default: today) into
    ``con`` (whose tables follow data/schema.sql). ``calls_per_day`` is the average over all
    days, so about ``days * calls_per_day`` inbound calls are made."""
    started = time.perf_counter()
    end = end or dt.datetime.now(zoneinfo.ZoneInfo(LOCAL_TZ)).date()
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    rng = np.random.default_rng([seed, 0])
    world = build_world(agents, contacts, region, rng)
    con.register("h_numbers_arrow", world.numbers)
    con.register("h_agents_arrow", world.agents)
    con.execute("CREATE OR REPLACE TEMP TABLE h_numbers AS SELECT * FROM h_numbers_arrow; "
                "CREATE OR REPLACE TEMP TABLE h_agents AS SELECT * FROM h_agents_arrow;" + _DIMENSIONS)
    con.unregister("h_numbers_arrow")
    con.unregister("h_agents_arrow")

    day_list = days_ending(end, days)
    weights = np.array([WEEKDAYS[d.isoweekday()] for d in day_list])
    per_day = calls_per_day * len(day_list) / weights.sum() * weights * rng.gamma(50, 1 / 50, len(day_list))
    calls_per = rng.poisson(per_day)
    dials_per = rng.poisson(per_day * DIALS_PER_CALL)
    incidents = outages(rng, day_list)
    rows = dict.fromkeys(("calls", "events", "lookups", "pops", "dials", "rejects"), 0)
    chunk_days = max(1, int(600_000 // max(calls_per_day, 1)))
    call_no = dial_no = 1
    tables = ("calls", "events", "lookups", "pops") if events else ("calls", "lookups", "pops")
    for k, i in enumerate(range(0, len(day_list), chunk_days)):
        crng = np.random.default_rng([seed, 1, k])
        span = slice(i, i + chunk_days)
        t, _, load = spread(crng, day_list[span], calls_per[span], call_profile)
        batches = calls_batch(crng, world, t, load, call_no, incidents)
        call_no += len(t)
        td, hd, _ = spread(crng, day_list[span], dials_per[span], dial_profile)
        batches["dials"] = dials_batch(crng, world, td, hd, dial_no, incidents)
        dial_no += len(td)
        con.execute("BEGIN")
        for table in (*tables, "dials"):
            con.register("batch", batches[table])
            params = {"not_numbers": list(NOT_NUMBERS), "blocked": list(BLOCKED)} if table == "dials" else None
            con.execute(_INSERT[table], params)
            con.unregister("batch")
            rows[table] += batches[table].num_rows
        con.execute("COMMIT")
        if progress:
            progress(f"{day_list[span][-1]}: {call_no - 1:,} calls, {dial_no - 1:,} dials")
    rows["rejects"] = _rejects(con, np.random.default_rng([seed, 2]), day_list)
    rows |= _after_call(con, seed)
    span_t = con.execute("SELECT min(started_at), max(started_at) FROM calls").fetchone()
    return Summary(rows, time.perf_counter() - started, span_t[0], span_t[1])


DISPOSITIONS = ("Sale", "Support", "Callback", "No answer", "Wrong number")
_AFTER_CALL = """
CREATE OR REPLACE TEMP TABLE h_ended AS
SELECT call_id, agent_id, started_at, ended_at, status, hash(call_id, $seed) AS h
FROM calls WHERE agent_id IS NOT NULL AND ended_at IS NOT NULL AND call_id LIKE 'hist-%';
INSERT INTO call_notes BY NAME
SELECT call_id, agent_id, ended_at + to_microseconds(CAST(5e6 + h % 115000000 AS BIGINT)) AS saved_at, 2 AS revision,
       CASE WHEN h % 10 < 7 THEN $dispositions[1 + CAST((h // 10) % len($dispositions) AS INTEGER)] END AS disposition,
       CASE WHEN (h // 100) % 10 < 4 THEN 'Follow-up noted' END AS notes
FROM h_ended WHERE status = 'ended' AND (h % 10 < 7 OR (h // 100) % 10 < 4);
INSERT INTO call_logs BY NAME
SELECT e.call_id, r.revision, r.created_at, e.agent_id, '{}' AS entry,
       CASE WHEN (e.h // 1000) % 200 = 0 THEN 'failed' ELSE 'delivered' END AS state,
       CASE WHEN (e.h // 1000) % 20 = 0 THEN 3 ELSE 1 END AS attempts,
       CASE WHEN (e.h // 1000) % 200 <> 0 THEN r.created_at + to_microseconds(CAST(
           CASE WHEN (e.h // 1000) % 20 = 0 THEN 7e6 ELSE 2e5 END + (e.h // 100000) % 900000 AS BIGINT)) END
           AS delivered_at,
       CASE WHEN (e.h // 1000) % 200 = 0 THEN 503 ELSE 200 END AS http_status
FROM h_ended e JOIN (SELECT call_id, 1 AS revision, ended_at AS created_at FROM h_ended
                     UNION ALL SELECT call_id, 2, saved_at FROM call_notes WHERE call_id LIKE 'hist-%') r USING (call_id);
INSERT INTO missed_calls BY NAME
SELECT e.call_id, e.agent_id, 'missed' AS kind, c.caller, c.caller_e164 AS e164, l.client_name AS name,
       e.ended_at AS missed_at,
       CASE WHEN e.h % 200 > 0 THEN e.ended_at + to_microseconds(CAST(3e7 + pow((e.h // 200) % 1000 / 1000.0, 3)
           * 7.2e9 AS BIGINT)) END AS handled_at,  -- one in 200 still open: a demo inbox of a few
       CASE WHEN e.h % 200 = 0 THEN NULL WHEN e.h % 20 < 12 THEN 'called_back' WHEN e.h % 20 < 18 THEN 'done'
            ELSE 'answered_later' END AS handled_how
FROM h_ended e JOIN calls c USING (call_id) LEFT JOIN lookups l USING (call_id) WHERE e.status = 'missed';
"""


def _after_call(con: duckdb.DuckDBPyConnection, seed: int) -> dict[str, int]:
    """After each call: notes and dispositions on most answered calls, the call log's delivery to
    the CRM (revision 1 at the end, 2 with the note; a few retried, one in 200 failed), and each
    missed call in its agent's inbox (most called back within minutes, some done, a few open).
    Derived from the calls by hashing their ids, so the other tables' rows are unchanged."""
    ended, notes, logs, missed = (part.strip() for part in _AFTER_CALL.strip().rstrip(";").split(";\n"))
    con.execute(ended, {"seed": seed})
    con.execute(notes, {"dispositions": list(DISPOSITIONS)})
    con.execute(logs)
    con.execute(missed)
    return {t: con.execute(f"SELECT count(*) FROM {t} WHERE call_id LIKE 'hist-%'").fetchone()[0]
            for t in ("call_notes", "call_logs", "missed_calls")}


def _rejects(con: duckdb.DuckDBPyConnection, rng: np.random.Generator, days: list[dt.date]) -> int:
    """A few refused inputs a day, as the hub records them."""
    kinds = (("/api/events", "unknown_extension", "call ext-test ringing at 299"),
             ("/ws", "unauthorized", "unknown token"),
             ("/api/events", "invalid_request", "type: Input should be 'ringing', 'answered' or 'hangup'"),
             ("/api/dial", "unauthorized", "missing token"))
    rows = []
    for day in days:
        for _ in range(rng.poisson(2)):
            source, reason, detail = kinds[rng.integers(len(kinds))]
            at = midnight_utc_us(day) + int(rng.uniform(7, 19) * 3600 * US)
            rows.append((np.datetime64(at, "us").astype(dt.datetime), source, reason, detail))
    if rows:
        con.executemany("INSERT INTO rejects (logged_at, source, reason, detail) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def generate(db_path: str | Path, *, replace: bool = False, agents_csv: str | Path = data_file("agents.csv"),
             contacts_csv: str | Path = data_file("contacts.csv"), region: str = "IL", **options) -> Summary:
    """Create ``db_path`` filled with history (see ``fill`` for the options). Refuses a file that
    already holds calls unless ``replace``; a file the hub holds open cannot be written at all."""
    path = Path(db_path)
    if path.exists() and replace:
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as e:
        raise RuntimeError(f"cannot open {path} for writing (is the hub running on it? stop it first): {e}") from None
    try:
        con.execute(SCHEMA.read_text(encoding="utf-8"))
        if con.execute("SELECT count(*) FROM calls").fetchone()[0]:
            raise RuntimeError(f"{path} already holds calls; use --replace to start it afresh")
        summary = fill(con, agents=Agents.from_csv(agents_csv), contacts=Contacts.from_csv(contacts_csv, region),
                       region=region, **options)
        con.execute("CHECKPOINT")
        return summary
    finally:
        con.close()
