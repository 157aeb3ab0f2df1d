"""The seed case end to end, against the real hub: ring → lookup → pop → acks on disk."""

from tests.support.hub import TOKENS, Agent, post_event, wait_rows


def test_john_doe_pops_at_extension_201_and_acks_land(hub):
    noa = Agent(hub, TOKENS["noa"])
    r = post_event(hub, call_id="seed-1", type="ringing", caller="0722776772", callee="0722776773",
                   extension="201")
    assert r.status_code == 202, r.text
    pop = noa.recv("pop")
    assert pop["call_id"] == "seed-1"
    assert (pop["name"], pop["company"], pop["status"], pop["total"]) == ("John Doe", "Voicenter", "found", 1)
    assert pop["url"] == f"{hub.url}/crm/contacts/c0001"
    assert pop["phone"] == "072-277-6772"

    lookups = wait_rows(hub, "SELECT outcome, latency_ms, client_name, company, cache FROM lookups WHERE call_id = ?",
                        ["seed-1"])
    assert lookups.outcome.tolist() == ["found"]
    assert lookups.client_name[0] == "John Doe" and lookups.latency_ms[0] > 0

    noa.send({"type": "ack", "call_id": "seed-1", "event": "shown"})
    noa.send({"type": "ack", "call_id": "seed-1", "event": "clicked"})
    pops = wait_rows(hub, "SELECT * FROM pops WHERE call_id = ? AND clicked_at IS NOT NULL", ["seed-1"])
    assert len(pops) == 1
    assert pops.agent_id[0] == "noa" and pops.shown_at[0] <= pops.clicked_at[0]
    assert pops.status[0] == "found" and pops.sessions[0] == 1
