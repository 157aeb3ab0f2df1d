"""Two hubs and a recorder on one real Redis: an event on one hub pops an agent on the other,
each browser once; answered on one, cleared on the other; every 202 recorded once."""

from tests.cluster.conftest import recorder_reads
from tests.support import wait_until
from tests.support.hub import TOKENS, Agent, api, post_event

RING = dict(caller="+972501234567", callee="+97235550100", extension="201")


def test_an_event_on_hub1_pops_the_agent_on_hub2_and_both_browsers_once(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    on1, on2 = Agent(hub1, TOKENS["noa"]), Agent(hub2, TOKENS["noa"])
    other = Agent(hub2, TOKENS["avi"])
    r = post_event(hub1, call_id="c-x1", type="ringing", **RING)
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    pops = [on1.recv("pop"), on2.recv("pop")]
    assert {p["call_id"] for p in pops} == {"c-x1"}
    assert all(p["status"] in ("found", "not_found", "multiple") for p in pops)
    on1.nothing("pop", within=0.5)
    on2.nothing("pop", within=0.1)
    other.nothing("pop", within=0.1)
    # the same event posted again to the other hub: recorded once, nobody popped again
    again = post_event(hub2, call_id="c-x1", type="ringing", **RING)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    on2.nothing("pop", within=0.3)
    # answered through hub 2: both browsers hear it, once
    assert post_event(hub2, call_id="c-x1", type="answered", extension="201").status_code == 202
    for browser in (on1, on2):
        assert browser.recv("call", where=lambda m: m["call_id"] == "c-x1")["state"] == "answered"
    assert post_event(hub1, call_id="c-x1", type="hangup").status_code == 202
    for browser in (on1, on2):
        assert browser.recv("call", where=lambda m: m["call_id"] == "c-x1")["state"] == "ended"


def test_a_ring_group_answered_on_one_hub_clears_the_bubble_on_the_other(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    noa, avi = Agent(hub1, TOKENS["noa"]), Agent(hub2, TOKENS["avi"])
    ext_noa, ext_avi = noa.welcome["agent"]["extension"], avi.welcome["agent"]["extension"]
    post_event(hub1, call_id="c-rg", type="ringing", caller=RING["caller"], callee=RING["callee"], extension=ext_noa)
    post_event(hub2, call_id="c-rg", type="ringing", caller=RING["caller"], callee=RING["callee"], extension=ext_avi)
    noa.recv("pop"), avi.recv("pop")
    assert post_event(hub1, call_id="c-rg", type="answered", extension=ext_noa).status_code == 202
    assert noa.recv("call")["state"] == "answered"
    assert avi.recv("call")["state"] == "answered_elsewhere"


def test_an_agent_signing_in_on_another_hub_gets_the_pop_still_ringing(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    first = Agent(hub1, TOKENS["noa"])
    post_event(hub1, call_id="c-late", type="ringing", **RING)
    first.recv("pop")
    later = Agent(hub2, TOKENS["noa"])
    assert later.recv("pop")["call_id"] == "c-late"
    later.nothing("pop", within=0.3)


def test_every_202_is_in_the_recorders_database_once(cluster_hub, recorder, tmp_path):
    hub1, hub2 = cluster_hub(), cluster_hub()
    ids = []
    for i in range(40):
        hub = (hub1, hub2)[i % 2]
        r = post_event(hub, call_id=f"c-{i}", type="ringing", id=f"e-{i}", **RING)
        assert r.status_code == 202
        ids.append(f"e-{i}")
        assert post_event((hub2, hub1)[i % 2], call_id=f"c-{i}", type="ringing", id=f"e-{i}", **RING
                          ).json()["status"] == "duplicate"
    wait_until(lambda: _events(recorder) >= 40, timeout=20, what="the recorder to commit every event")
    assert _events(recorder) == 40


def _events(recorder) -> int:
    """Events in the recorder's file (it holds the file: read through its read API, as hubs do)."""
    frame = recorder_reads(recorder).query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events")
    assert frame.n[0] == frame.d[0]
    return int(frame.n[0])


def test_analytics_and_history_are_read_from_any_hub(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    noa = Agent(hub1, TOKENS["noa"])
    post_event(hub1, call_id="c-h", type="ringing", **RING)
    noa.recv("pop")
    post_event(hub2, call_id="c-h", type="hangup")
    wait_until(lambda: api(hub2, "GET", "/api/calls/history?days=1", TOKENS["noa"]).json().get("calls"),
               timeout=20, what="the call in the history read through hub 2")
    r = api(hub1, "GET", "/api/analytics/lookup_outcomes", TOKENS["dana"])
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "lookup_outcomes"
