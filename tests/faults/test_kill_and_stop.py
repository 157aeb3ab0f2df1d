"""The hub as operators run it (``python -m pipelines serve``), killed or stopped under load.

SIGKILL: nothing runs at exit, so whatever the hub answered 202 for must already be committed in
the DuckDB file: read straight from the file after the kill, before anything restarts.
SIGTERM: the graceful path; in-flight work finishes, every socket gets a close frame, and the
database is checkpointed so the file stands alone (no write-ahead log left beside it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

import duckdb
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import procs
from tests.support.crm import contract
from tests.support.load import Poster


def event(i: int, agents: list[dict]) -> dict:
    kind = "ringing" if i % 2 == 0 else "hangup"
    call = i // 2
    return {"id": f"kill-{i}", "call_id": f"kc-{call}", "type": kind, "caller": f"054{call:07d}",
            "extension": agents[call % len(agents)]["extension"]}


async def post_until_killed(hub: procs.Proc, agents: list[dict], clients: int, kill_at: int) -> dict[str, int]:
    """``clients`` PBX connections posting events without pause, each the next as soon as its
    last is answered; SIGKILL as the ``kill_at``-th 202 comes back. Event id -> HTTP status (0: no answer)."""
    poster = Poster(hub.url + "/api/events", procs.INGEST, max_conns=clients)
    statuses: dict[str, int] = {}
    numbers = itertools.count()
    accepted = 0

    async def client():
        nonlocal accepted
        while hub.proc.poll() is None:
            body = event(next(numbers), agents)
            statuses[body["id"]] = status = await poster.post(json.dumps(body).encode())
            if status == 202:
                accepted += 1
                if accepted == kill_at:
                    hub.proc.kill()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), 120)
    await poster.close()
    return statuses


def test_sigkill_under_load_loses_no_accepted_event_and_a_retry_never_doubles_one(hub_process, many_agents,
                                                                                   tmp_path):
    agents_csv, agents = many_agents
    db = tmp_path / "killed.duckdb"
    hub = hub_process(agents_csv, db)
    statuses = asyncio.run(post_until_killed(hub, agents, clients=20, kill_at=300))
    assert hub.proc.wait(10) == -9
    accepted = {i for i, s in statuses.items() if s == 202}
    unanswered = {i for i, s in statuses.items() if s != 202}
    assert len(accepted) >= 300 and unanswered, "the kill must land in the middle of the load"
    assert set(statuses.values()) <= {202, 0}  # before the kill every event was taken; after, no answer

    # Straight from the file, as the kill left it (its write-ahead log beside it): nothing restarted.
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(con.execute("SELECT event_id, count(*) FROM events GROUP BY event_id").fetchall())
        calls = {c for (c,) in con.execute("SELECT call_id FROM calls").fetchall()}
    missing = accepted - set(rows)
    assert not missing, f"{len(missing)} events answered 202 are not in the database"
    assert not {i: n for i, n in rows.items() if n > 1}, "an event recorded twice"
    rung = {event(int(i.split("-")[1]), agents)["call_id"] for i in accepted if int(i.split("-")[1]) % 2 == 0}
    assert rung <= calls, "the call row made from an acknowledged event is missing"

    # The PBX retries what got no answer, and (as PBXs do) a few it did get an answer for.
    hub = hub_process(agents_csv, db)
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {procs.INGEST}"}, timeout=10) as c:
        for i in sorted(accepted)[:30]:
            r = c.post("/api/events", json=event(int(i.split("-")[1]), agents))
            assert r.status_code == 202 and r.json()["status"] == "duplicate", (i, r.text)
        for i in sorted(unanswered):
            assert c.post("/api/events", json=event(int(i.split("-")[1]), agents)).status_code == 202
    assert hub.terminate() == 0
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(con.execute("SELECT event_id, count(*) FROM events GROUP BY event_id").fetchall())
    assert set(rows) == set(statuses) and set(rows.values()) == {1}  # after the retries, every event once


@pytest.fixture
def slow_crm(crm):
    crm.respond("0545550123", contract("Late Larry", "Slow Co"), delay=1.0)
    return crm


def test_sigterm_finishes_in_flight_work_closes_sockets_with_1001_and_checkpoints(hub_process, many_agents,
                                                                                   tmp_path, slow_crm):
    agents_csv, agents = many_agents
    db = tmp_path / "stopped.duckdb"
    hub = hub_process(agents_csv, db, crm_url=slow_crm.url, crm_deadline_ms=300)
    ws_url = hub.url.replace("http", "ws", 1) + "/ws"
    sockets = []
    for agent in agents[:20]:
        ws = connect(ws_url, open_timeout=10)
        ws.send(json.dumps({"type": "hello", "token": agent["token"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        assert json.loads(ws.recv(timeout=10))["type"] == "inbox"  # the welcome's missed calls (none)
        sockets.append(ws)
    first = sockets[0]
    r = httpx.post(f"{hub.url}/api/events", headers={"Authorization": f"Bearer {procs.INGEST}"}, timeout=10,
                   json={"id": "term-1", "call_id": "term-1", "type": "ringing", "caller": "0545550123",
                         "extension": agents[0]["extension"]})
    assert r.status_code == 202
    assert json.loads(first.recv(timeout=5))["status"] == "pending"  # the CRM answers after the deadline

    # Stop while the lookup is in flight and events are still arriving.
    statuses: list[int] = []

    def keep_posting():
        with httpx.Client(headers={"Authorization": f"Bearer {procs.INGEST}"}, timeout=10) as c:
            for i in range(200):
                try:
                    statuses.append(c.post(f"{hub.url}/api/events", json={
                        "id": f"term-bg-{i}", "call_id": f"tbg-{i}", "type": "hangup"}).status_code)
                except httpx.HTTPError:
                    break
                time.sleep(0.005)

    poster = threading.Thread(target=keep_posting)
    poster.start()
    time.sleep(0.2)
    hub.proc.send_signal(15)
    # The late answer still reaches the agent before the close frame.
    messages, close = [], None
    try:
        while True:
            messages.append(json.loads(first.recv(timeout=10)))
    except ConnectionClosed as closed:
        close = closed.rcvd
    assert close is not None and close.code == 1001, close
    late = [m for m in messages if m.get("type") == "pop"]
    assert late and late[-1]["status"] == "found" and late[-1]["name"] == "Late Larry"
    for ws in sockets[1:]:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert hub.proc.wait(30) == 0
    poster.join(30)
    assert not db.with_name(db.name + ".wal").exists(), "the write-ahead log was not folded into the file"
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT outcome, late_outcome, client_name FROM lookups WHERE call_id = 'term-1'").fetchone()
        assert row == ("timeout", "found", "Late Larry")
        recorded = con.execute("SELECT count(*) FROM events WHERE event_id LIKE 'term-bg-%'").fetchone()[0]
    finally:
        con.close()
    assert recorded == statuses.count(202) and statuses.count(202) > 0  # every 202 is on disk
