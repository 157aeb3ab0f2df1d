"""Load: agents connected, ringing events at a steady rate for a while, the hub in its own
process, a bare CRM in a third. Zero lost pops (every call answered 202 pops at its agent),
zero lost rows (after a graceful stop every event, lookup and pop is on disk, once), and the
pop latency percentiles are reported (printed, and as JUnit properties). Latency is not
asserted: on a shared 2-core machine it measures the neighbours as much as the hub; bench/
measures it against a baseline in the same run.

`make test`: 200 agents, 100 events/s for 5 s. `make soak`: 1,000 agents, 200 events/s for 60 s.
"""

from __future__ import annotations

import asyncio

import duckdb
import pytest

from tests.support import procs
from tests.support.load import AgentSockets, Poster, run_load

DEADLINE_MS = 1500


async def drive(hub: procs.Proc, agents: list[dict], rate: float, seconds: float):
    sockets = AgentSockets(hub.url.replace("http", "ws", 1) + "/ws", agents)
    await sockets.connect()
    poster = Poster(hub.url + "/api/events", procs.INGEST)
    try:
        return await run_load(poster, sockets, rate, seconds, tag="load", drain_s=10)
    finally:
        await poster.close()
        await sockets.close()


def check_load(hub_process, tmp_path, agents_csv, agents, rate, seconds, record_property):
    with procs.start_crm() as crm:
        db = tmp_path / "load.duckdb"
        hub = hub_process(agents_csv, db, crm_url=crm.url + "/lookup", crm_deadline_ms=DEADLINE_MS)
        # The generator's own loop runs without asyncio debug mode (make test turns it on).
        result = asyncio.run(drive(hub, agents, rate, seconds), debug=False)
        assert hub.terminate() == 0
    s = result.summary()
    print(f"\nload {len(agents)} agents, {rate:g} events/s x {seconds:g} s: {s}")
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "achieved_rate"):
        record_property(key, s[key])
    assert result.sent == int(rate * seconds)
    assert result.accepted == result.sent, f"{result.failed} events refused or unanswered"
    assert result.lost == 0, f"{result.lost} accepted calls never popped"
    assert result.wrong == 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        assert q("SELECT count(*) FROM events WHERE call_id LIKE 'load-%'") == result.accepted
        assert q("SELECT count(DISTINCT event_id) FROM events WHERE call_id LIKE 'load-%'") == result.accepted
        assert q("SELECT count(*) FROM calls WHERE call_id LIKE 'load-%'") == result.accepted
        # One lookup per call, whatever its outcome: an overloaded machine may turn some into
        # timeouts (provisional pops), but none may go unrecorded.
        assert q("SELECT count(*) FROM lookups WHERE call_id LIKE 'load-%'") == result.accepted
        assert q("SELECT count(DISTINCT call_id) FROM lookups WHERE call_id LIKE 'load-%'") == result.accepted
        assert q("SELECT count(*) FROM pops WHERE call_id LIKE 'load-%' AND sessions = 1") == result.accepted
    finally:
        con.close()


def test_load_200_agents_100_events_a_second(hub_process, tmp_path, record_property):
    agents_csv = tmp_path / "agents.csv"
    agents = procs.write_agents_csv(agents_csv, 200)
    check_load(hub_process, tmp_path, agents_csv, agents, rate=100, seconds=5, record_property=record_property)


@pytest.mark.soak
def test_load_1000_agents_200_events_a_second_for_a_minute(hub_process, tmp_path, many_agents, record_property):
    agents_csv, agents = many_agents
    check_load(hub_process, tmp_path, agents_csv, agents, rate=200, seconds=60, record_property=record_property)
