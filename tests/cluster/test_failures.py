"""What a cluster does when a part fails: Redis stopped (503, never a 202 it cannot keep, back by
itself), a hub killed with SIGKILL (its agent popped through another hub, every 202 recorded
once), a hub killed between an event's 202 and its pop (another hub sends the pop) and one that
only stalls (nobody else does), the recorder killed (nothing lost: the next one catches up)."""

import contextlib
import os
import signal
import threading
import time

import httpx

from tests.cluster.conftest import RECORDER_TOKEN, recorder_reads
from tests.support import INGEST, ROOT, wait_until
from tests.support.barecrm import expected_name
from tests.support.hub import TOKENS, Agent, api, post_event
from tests.support.procs import start_crm, start_hub, start_recorder

RING = dict(caller="+972501234567", callee="+97235550100", extension="201")


def test_redis_stopped_means_503_and_back_to_normal_when_it_returns(cluster_hub, redis_server):
    hub = cluster_hub()
    noa = Agent(hub, TOKENS["noa"])
    assert post_event(hub, call_id="r-1", type="ringing", **RING).status_code == 202
    noa.recv("pop")
    redis_server.stop()
    answers = [post_event(hub, call_id=f"r-down-{i}", type="ringing", **RING) for i in range(5)]
    assert [a.status_code for a in answers] == [503] * 5
    assert answers[-1].json()["error"] == "store_unavailable"
    health = httpx.get(hub.url + "/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["redis"] == "down"
    status = api(hub, "GET", "/api/status", TOKENS["dana"]).json()
    assert status["redis"]["state"] == "down"
    redis_server.start()
    wait_until(lambda: httpx.get(hub.url + "/healthz", timeout=5).status_code == 200, timeout=15,
               what="the hub to see Redis again")
    assert httpx.get(hub.url + "/healthz", timeout=5).json()["redis"] == "ok"
    assert post_event(hub, call_id="r-2", type="ringing", **RING).status_code == 202
    assert noa.recv("pop", where=lambda m: m["call_id"] == "r-2")


def test_a_redis_that_stops_answering_means_503_and_down_then_back_by_itself(cluster_hub, redis_server):
    hub = cluster_hub(redis_timeout_ms=300)
    assert post_event(hub, call_id="p-1", type="ringing", **RING).status_code == 202
    assert redis_server.cli("CLIENT", "PAUSE", "3000", "ALL") == "OK"  # connected, but no answer
    late = post_event(hub, call_id="p-2", type="ringing", **RING)
    assert late.status_code == 503 and late.json()["error"] == "store_unavailable", late.text
    wait_until(lambda: httpx.get(hub.url + "/healthz", timeout=5).json()["redis"] == "down", timeout=3,
               what="a late ping to mark Redis down")
    wait_until(lambda: httpx.get(hub.url + "/healthz", timeout=5).status_code == 200, timeout=15,
               what="the hub to see Redis answer again")
    assert post_event(hub, call_id="p-2", type="ringing", **RING).status_code == 202


def test_redis_full_refuses_events_with_503_until_it_has_room_again(cluster_hub, redis_server):
    hub = cluster_hub()
    assert post_event(hub, call_id="f-1", type="ringing", **RING).status_code == 202
    assert redis_server.cli("CONFIG", "SET", "maxmemory", "1") == "OK"  # at maxmemory, noeviction: writes refused
    full = post_event(hub, call_id="f-2", type="ringing", **RING)
    assert full.status_code == 503 and full.json()["error"] == "store_unavailable", full.text
    assert redis_server.cli("CONFIG", "SET", "maxmemory", "0") == "OK"
    assert post_event(hub, call_id="f-2", type="ringing", **RING).status_code == 202


def _cluster_env(redis_server, recorder):
    return dict(redis_url=redis_server.url, recorder_url=recorder.url, recorder_token=RECORDER_TOKEN)


def test_sigkill_of_a_hub_under_load_loses_no_202_and_its_agent_is_popped_through_the_other(
        tmp_path, redis_server, recorder):
    agents = ROOT / "data" / "agents.csv"
    env = _cluster_env(redis_server, recorder)
    hub1 = start_hub(tmp_path / "unused1.duckdb", agents, hub_name="hub1", **env)
    hub2 = start_hub(tmp_path / "unused2.duckdb", agents, hub_name="hub2", **env)
    accepted: set[str] = set()
    stop = threading.Event()

    def load(hub, prefix):
        with httpx.Client(timeout=5) as client:
            i = 0
            while not stop.is_set():
                i += 1
                eid = f"{prefix}-{i}"
                try:
                    r = client.post(f"{hub.url}/api/events", json={"id": eid, "call_id": eid, "type": "ringing",
                                                                   **RING}, headers={"Authorization": f"Bearer {INGEST}"})
                except httpx.HTTPError:
                    continue  # the hub died under us: not acknowledged, so not owed
                if r.status_code == 202:
                    accepted.add(eid)
    try:
        noa = Agent(hub1, TOKENS["noa"])
        threads = [threading.Thread(target=load, args=(h, p)) for h, p in ((hub1, "a"), (hub2, "b"))]
        for t in threads:
            t.start()
        wait_until(lambda: len(accepted) > 100, timeout=30, what="load on both hubs")
        hub1.kill()  # SIGKILL mid-load
        wait_until(lambda: len(accepted) > 200, timeout=30, what="hub 2 to go on")
        stop.set()
        for t in threads:
            t.join()
        # the agent's extension reconnects to the other hub (what the load balancer does) and is popped there
        noa2 = Agent(hub2, TOKENS["noa"])
        assert post_event(hub2, call_id="after-kill", type="ringing", **RING).status_code == 202
        assert noa2.recv("pop", where=lambda m: m["call_id"] == "after-kill", timeout=10)
        reads = recorder_reads(recorder)
        wait_until(lambda: len(reads.query("SELECT event_id FROM events")) >= len(accepted), timeout=30,
                   what="the recorder to catch up")
        rows = reads.query("SELECT event_id, count(*) AS n FROM events GROUP BY event_id")
        assert accepted <= set(rows.event_id), "a 202 that is not in the database"
        assert rows.n.max() == 1
        noa.close()
    finally:
        stop.set()
        hub1.kill()
        hub2.terminate()


@contextlib.contextmanager
def ringing_on_hub1(tmp_path, redis_server, recorder, crm_delay_ms: float, call_id: str):
    """Two hubs on a CRM that answers after ``crm_delay_ms``; Noa signed in at hub 2; a call rings
    for her through hub 1 (its 202 in hand). Yields (hub 1, hub 2, Noa, the recorder's reads)."""
    agents = ROOT / "data" / "agents.csv"
    env = _cluster_env(redis_server, recorder)
    with start_crm(delay_ms=crm_delay_ms) as crm:
        hub1 = start_hub(tmp_path / "unused1.duckdb", agents, crm.url + "/lookup", hub_name="hub1", **env)
        hub2 = start_hub(tmp_path / "unused2.duckdb", agents, crm.url + "/lookup", hub_name="hub2", **env)
        try:
            noa = Agent(hub2, TOKENS["noa"])
            assert post_event(hub1, call_id=call_id, type="ringing", **RING).status_code == 202
            yield hub1, hub2, noa, recorder_reads(recorder)
            noa.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hub1.pid, signal.SIGCONT)
            hub1.kill()
            hub2.terminate()


def pops_of(reads, call_id: str) -> list[str]:
    return reads.query(f"SELECT agent_id FROM pops WHERE call_id = '{call_id}'").agent_id.tolist()


def taken_over(hub) -> int:
    return api(hub, "GET", "/api/status", TOKENS["dana"]).json()["redis"]["pops_taken_over"]


def test_a_hub_killed_while_it_waited_for_the_crm_has_its_pop_sent_by_another(tmp_path, redis_server, recorder):
    with ringing_on_hub1(tmp_path, redis_server, recorder, 800, "orphan") as (hub1, hub2, noa, reads):
        hub1.kill()  # the call rings, hub 1 had the CRM request in flight
        ours = lambda m: m["call_id"] == "orphan"  # noqa: E731
        pop = noa.recv("pop", where=ours, timeout=15)
        if pop["status"] != "found":  # the number at the deadline, the name when the CRM answers
            pop = noa.recv("pop", where=ours, timeout=15)
        assert pop["status"] == "found" and pop["name"] == expected_name(RING["caller"])
        noa.nothing("pop", within=1.0)
        wait_until(lambda: pops_of(reads, "orphan"), timeout=15, what="the pop's row")
        assert pops_of(reads, "orphan") == ["noa"]
        assert taken_over(hub2) == 1


def test_a_hub_that_stalls_but_lives_sends_its_own_pop_and_no_other_hub_does(tmp_path, redis_server, recorder):
    with ringing_on_hub1(tmp_path, redis_server, recorder, 300, "stalled") as (hub1, hub2, noa, reads):
        os.kill(hub1.pid, signal.SIGSTOP)  # an overloaded hub: late, but its connections stay open
        time.sleep(4)  # past the CRM deadline + 1 s: hub 2 sees the call ringing with no pop
        os.kill(hub1.pid, signal.SIGCONT)
        assert noa.recv("pop", where=lambda m: m["call_id"] == "stalled", timeout=10)
        wait_until(lambda: pops_of(reads, "stalled"), timeout=15, what="the pop's row")
        time.sleep(1)
        assert pops_of(reads, "stalled") == ["noa"]  # one hub popped her
        assert taken_over(hub2) == 0


def test_a_killed_recorder_loses_nothing_and_its_successor_catches_up(tmp_path, redis_server, start_hub):
    db = tmp_path / "recorded.duckdb"
    first = start_recorder(db, redis_server.url, recorder_token=RECORDER_TOKEN, recorder_lease_s=2)
    hub = start_hub(redis_url=redis_server.url, hub_name="hub1")
    for i in range(30):
        assert post_event(hub, call_id=f"k-{i}", type="ringing", id=f"k-{i}", **RING).status_code == 202
    first.kill()
    for i in range(30, 60):  # recorded by nobody for now: the stream keeps them
        assert post_event(hub, call_id=f"k-{i}", type="ringing", id=f"k-{i}", **RING).status_code == 202
    with start_recorder(db, redis_server.url, recorder_token=RECORDER_TOKEN, recorder_lease_s=2) as second:
        reads = recorder_reads(second)
        wait_until(lambda: len(reads.query("SELECT * FROM events WHERE event_id LIKE 'k-%'")) >= 60, timeout=30,
                   what="the second recorder to catch up")
        rows = reads.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events "
                           "WHERE event_id LIKE 'k-%'")
        assert rows.n[0] == rows.d[0] == 60
        calls = reads.query("SELECT count(*) AS n FROM calls WHERE call_id LIKE 'k-%'")
        assert calls.n[0] == 60
