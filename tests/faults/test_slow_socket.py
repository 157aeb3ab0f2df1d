"""A browser that stops reading its socket: the agents beside it get their pops on time, the hub's
memory for it stays bounded, and after ``ws_send_queue`` frames (or one send hanging past
``ws_send_timeout_s``) it is dropped with close 4408, which it finds when it reads again."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.faults.stuck import StuckBrowser
from tests.support import procs
from tests.support.crm import contract
from tests.support.hub import TOKENS, Agent, post_event
from tests.support.load import Poster

BIG_URL = "https://crm.example.com/" + "x" * 200_000  # fat pops fill the socket buffers in a few frames
QUEUE = 8


def write_buffers(hub) -> list[int]:
    """Bytes waiting in each connection's asyncio transport (what the hub holds for slow peers)."""
    return [c.transport.get_write_buffer_size() for c in list(hub.server.server_state.connections)
            if getattr(c, "transport", None) is not None]


def test_a_stuck_browser_is_dropped_with_4408_and_does_not_delay_others(start_hub, crm):
    crm.respond("0545550123", contract("Big Bertha", "B Ltd", url=BIG_URL))
    crm.respond("0722776772", contract("John Doe", "Voicenter"))
    # A send may hang 3 s before the socket is dropped: if one socket's sends could hold up
    # another's, Noa's pops would take that long.
    hub = start_hub(crm_url=crm.url, ws_send_queue=QUEUE, ws_send_timeout_s=3.0)
    stuck = StuckBrowser("127.0.0.1", hub.settings.port, TOKENS["avi"])
    noa = Agent(hub, TOKENS["noa"])
    deadline = time.monotonic() + 5
    while "avi" not in hub.hub.sessions.online() and time.monotonic() < deadline:
        time.sleep(0.02)
    slowest, dropped_after = 0.0, None
    for i in range(150):
        assert post_event(hub, call_id=f"fat-{i}", type="ringing", caller="0545550123",
                          extension="202").status_code == 202
        if i % 10 == 0:  # meanwhile Noa's calls pop as usual
            started = time.monotonic()
            poster = threading.Thread(target=post_event, kwargs=dict(
                hub=hub, call_id=f"ok-{i}", type="ringing", caller="0722776772", extension="201"))
            poster.start()
            assert noa.recv("pop", where=lambda m: m["call_id"] == f"ok-{i}")["name"] == "John Doe"
            slowest = max(slowest, time.monotonic() - started)
            poster.join()
        if dropped_after is None and "avi" not in hub.hub.sessions.online():
            dropped_after = i
        if dropped_after is not None and i > dropped_after + 10:
            break
        # Whatever the stuck browser is owed, the hub holds a bounded amount of it.
        assert max(write_buffers(hub), default=0) <= 2 * 65536 + len(BIG_URL) + 4096
    assert dropped_after is not None, "the stuck socket was never dropped"
    assert slowest < 1.0  # a stuck neighbour costs Noa nothing (the CRM answers at once)
    assert hub.hub.sessions.online() == {"noa": 1}
    # Once the tab reads again it finds the pops it was sent, then the close frame: it reconnects
    # rather than sit on a socket that will never carry another pop.
    texts, code = stuck.read_all(timeout=10)
    stuck.close()
    assert code == 4408
    assert 0 < len([t for t in texts if '"pop"' in t]) <= dropped_after + 1


def flood(hub: procs.Proc, extension: str, n: int) -> int:
    """Ring ``n`` fat calls at one extension, 100 a second; returns the peak RSS growth in KB."""
    base, peak = hub.rss_kb(), [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(hub.rss_kb() - base)
            time.sleep(0.05)

    async def post_all():
        poster = Poster(hub.url + "/api/events", procs.INGEST, max_conns=16)
        tasks = []
        for i in range(n):
            body = {"call_id": f"m-{i}", "type": "ringing", "caller": "0545550123", "extension": extension}
            tasks.append(asyncio.ensure_future(poster.post(json.dumps(body).encode())))
            await asyncio.sleep(0.01)
        statuses = await asyncio.gather(*tasks)
        await poster.close()
        assert set(statuses) == {202}

    watcher = threading.Thread(target=watch)
    watcher.start()
    asyncio.run(post_all())
    time.sleep(1)
    stop.set()
    watcher.join()
    return max(peak)


@pytest.mark.soak
def test_memory_stays_bounded_while_a_stuck_browser_is_flooded(hub_process, many_agents, crm, tmp_path):
    """The hub in its own process, flooded with 500 fat pops (100 MB of frames) for one agent:
    RSS growth with a browser that reads nothing against growth with one that reads. (The
    call book, the lookup rows and DuckDB's buffers grow alike in both runs.)"""
    agents_csv, agents = many_agents
    crm.respond("0545550123", contract("Big Bertha", "B Ltd", url=BIG_URL))
    settings = dict(crm_url=crm.url, ws_send_queue=64, ws_send_timeout_s=2.0)

    hub = hub_process(agents_csv, tmp_path / "reading.duckdb", **settings)
    reading = connect(hub.url.replace("http", "ws", 1) + "/ws", max_size=2 ** 22)
    reading.send(json.dumps({"type": "hello", "token": agents[0]["token"]}))
    drained = threading.Thread(target=lambda: [_ for _ in reading], daemon=True)  # reads until closed
    drained.start()
    time.sleep(0.5)
    with_reader = flood(hub, agents[0]["extension"], 500)
    assert hub.terminate() == 0

    hub = hub_process(agents_csv, tmp_path / "stuck.duckdb", **settings)
    stuck = StuckBrowser("127.0.0.1", hub.port, agents[0]["token"])
    time.sleep(0.5)
    with_stuck = flood(hub, agents[0]["extension"], 500)
    extra_mb = (with_stuck - with_reader) / 1024
    print(f"RSS growth: {with_reader} KB with a reading browser, {with_stuck} KB with a stuck one")
    assert extra_mb < 40, f"a socket that reads nothing cost {extra_mb:.0f} MB more than one that reads"
    _, code = stuck.read_all(timeout=10)
    stuck.close()
    assert code == 4408
