"""The missed-call inbox across hubs: a call missed through one hub is in the agent's inbox on
every hub (and on a hub started later); done through one hub clears it on all; a pop that
reached no browser on any hub waits in the inbox of the hub the agent signs in to; a later
answer through another hub clears the number."""

from __future__ import annotations

from tests.support import wait_until
from tests.support.hub import TOKENS, Agent, api, post_event

CALLER = "0722776772"


def event(hub, call_id, type_, extension="201", caller=CALLER):
    r = post_event(hub, call_id=call_id, type=type_, caller=caller, callee="0722776773", extension=extension)
    assert r.status_code == 202, r.text


def inbox(hub, who="noa"):
    r = api(hub, "GET", "/api/missed", TOKENS[who])
    assert r.status_code == 200, r.text
    return r.json()


def test_a_call_missed_through_one_hub_is_in_the_inbox_on_every_hub_and_done_on_one_clears_all(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    on1 = Agent(hub1, TOKENS["noa"])
    assert on1.recv("inbox")["count"] == 0
    event(hub1, "mi-1", "ringing")
    on1.recv("pop")
    event(hub2, "mi-1", "hangup")  # the call ends through the other hub
    assert on1.recv("inbox", where=lambda m: m["count"])["missed"][0]["call_id"] == "mi-1"
    wait_until(lambda: inbox(hub2)["count"] == 1, 5, what="the entry on hub 2")
    hub3 = cluster_hub()  # started later: loads the open entries
    on3 = Agent(hub3, TOKENS["noa"])
    assert [e["call_id"] for e in on3.recv("inbox")["missed"]] == ["mi-1"]
    assert [e["call_id"] for e in inbox(hub3, "dana")["missed"]] == ["mi-1"]  # the supervisor's view too

    r = api(hub2, "POST", "/api/missed/mi-1/done", TOKENS["noa"])
    assert r.status_code == 200 and r.json()["handled_how"] == "done"
    for browser in (on1, on3):
        assert browser.recv("inbox", where=lambda m: m["count"] == 0)["missed"] == []
    for hub in (hub1, hub2, hub3):
        wait_until(lambda: inbox(hub)["count"] == 0, 5, what="done everywhere")
    assert api(hub1, "POST", "/api/missed/mi-1/done", TOKENS["noa"]).status_code == 404  # handled already


def test_a_pop_no_browser_got_waits_for_the_agent_on_another_hub_and_a_later_answer_clears_the_number(cluster_hub):
    hub1, hub2 = cluster_hub(), cluster_hub()
    event(hub1, "un-1", "ringing")  # Noa is signed in nowhere
    event(hub1, "un-1", "answered")
    event(hub2, "un-1", "hangup")
    noa = Agent(hub2, TOKENS["noa"])
    message = noa.recv("inbox", where=lambda m: m["count"])
    assert [(e["call_id"], e["kind"]) for e in message["missed"]] == [("un-1", "unseen")]
    event(hub1, "al-1", "ringing", caller="+972 72-277-6772")  # the same number, answered through hub 1
    event(hub1, "al-1", "answered", caller="+972 72-277-6772")
    assert noa.recv("inbox", where=lambda m: m["count"] == 0)["count"] == 0
    wait_until(lambda: inbox(hub1)["count"] == 0 and inbox(hub2)["count"] == 0, 5, what="cleared on both")
