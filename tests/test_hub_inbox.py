"""Missed calls, callbacks and pop timing (pop_on) against the real hub, its database and sockets."""

import time

import pytest

from pipelines.agents import Agents, AgentsError
from tests.support import ROOT
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

CALLER = "0722776772"
OTHER = "0545550199"  # a caller of its own: its answer clears nothing of CALLER's


def event(hub, call_id, type_, extension="201", caller=CALLER):
    r = post_event(hub, call_id=call_id, type=type_, caller=caller, callee="0722776773", extension=extension)
    assert r.status_code == 202, r.text


def missed_call(hub, call_id, extension="201", caller=CALLER):
    event(hub, call_id, "ringing", extension, caller)
    event(hub, call_id, "hangup", extension, caller)


def inbox(hub, who="noa", **params):
    r = api(hub, "GET", "/api/missed", TOKENS[who], params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_missed_call_enters_the_inbox_survives_a_restart_and_done_clears_it(start_hub):
    hub = start_hub()
    noa = Agent(hub, TOKENS["noa"])
    assert noa.recv("inbox") == {"type": "inbox", "missed": [], "count": 0}  # sent on welcome
    missed_call(hub, "mi-1")
    message = noa.recv("inbox")
    assert message["count"] == 1
    entry = message["missed"][0]
    assert (entry["call_id"], entry["agent_id"], entry["kind"], entry["phone"], entry["e164"]) == \
           ("mi-1", "noa", "missed", "072-277-6772", "+972722776772")
    assert entry["name"] == "John Doe" and entry["missed_at"].endswith("Z") and entry["handled_at"] is None
    assert inbox(hub)["missed"] == [entry]
    assert inbox(hub, "avi") == {"missed": [], "count": 0}  # someone else's: not shown
    assert [e["call_id"] for e in inbox(hub, "dana")["missed"]] == ["mi-1"]  # the supervisor: the team's
    assert api(hub, "GET", "/api/missed", TOKENS["avi"], params={"agent_id": "noa"}).status_code == 403
    wait_rows(hub, "SELECT * FROM missed_calls WHERE call_id = 'mi-1'")
    noa.close()
    hub.stop()

    hub = start_hub()  # the same database file
    assert [e["call_id"] for e in inbox(hub)["missed"]] == ["mi-1"]
    noa = Agent(hub, TOKENS["noa"])
    assert noa.recv("inbox")["count"] == 1
    r = api(hub, "POST", "/api/missed/mi-1/done", TOKENS["avi"])
    assert r.status_code == 404 and r.json()["error"] == "not_found"  # not in Avi's inbox
    r = api(hub, "POST", "/api/missed/mi-1/done", TOKENS["avi"], params={"agent_id": "noa"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert api(hub, "POST", "/api/missed/nope/done", TOKENS["noa"]).json()["error"] == "not_found"
    r = api(hub, "POST", "/api/missed/mi-1/done", TOKENS["noa"])
    assert r.status_code == 200 and r.json()["handled_how"] == "done"
    assert noa.recv("inbox")["count"] == 0
    assert inbox(hub)["count"] == 0
    handled = inbox(hub, state="all")["missed"]
    assert [(e["call_id"], e["handled_how"]) for e in handled] == [("mi-1", "done")]
    row = wait_rows(hub, "SELECT * FROM missed_calls WHERE handled_at IS NOT NULL").iloc[0]
    assert (row.call_id, row.agent_id, row.handled_how) == ("mi-1", "noa", "done")


def test_a_callback_dial_links_to_the_missed_call_and_clears_it(hub):
    noa = Agent(hub, TOKENS["noa"])
    missed_call(hub, "cb-1")
    assert noa.recv("inbox", where=lambda m: m["count"] == 1)
    r = api(hub, "POST", "/api/dial", TOKENS["avi"], json={"to": CALLER, "callback_for": "cb-1"})
    assert r.status_code == 422 and r.json()["error"] == "bad_callback_for"  # not Avi's missed call
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": CALLER, "callback_for": "no-such-call"})
    assert r.status_code == 422 and r.json()["error"] == "bad_callback_for"
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": CALLER, "callback_for": ""})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": CALLER, "callback_for": "cb-1"})
    assert r.status_code == 202, r.text
    dial_id = r.json()["dial_id"]
    assert noa.recv("inbox")["count"] == 0
    row = wait_rows(hub, "SELECT * FROM missed_calls WHERE handled_at IS NOT NULL").iloc[0]
    assert (row.handled_how, row.callback_dial_id) == ("called_back", dial_id)
    assert wait_rows(hub, "SELECT callback_for FROM dials WHERE dial_id = ?", [dial_id]).callback_for[0] == "cb-1"
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": CALLER, "callback_for": "cb-1"})
    assert r.status_code == 422  # handled already: a second call back is a plain dial


def test_a_call_answered_by_a_colleague_never_enters_and_a_later_answer_clears_the_number(hub):
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    event(hub, "ae-1", "ringing", "201")
    event(hub, "ae-1", "ringing", "202")
    event(hub, "ae-1", "answered", "202")
    event(hub, "ae-1", "hangup", "202")
    noa.recv("call", where=lambda m: m["state"] == "ended")
    noa.nothing("inbox", within=0.3)
    assert inbox(hub)["count"] == 0 and inbox(hub, "avi")["count"] == 0
    missed_call(hub, "al-1", "201")  # missed at Noa's ...
    missed_call(hub, "al-2", "202")  # ... and at Avi's
    assert noa.recv("inbox")["count"] == 1 and avi.recv("inbox", where=lambda m: m["count"])["count"] == 1
    event(hub, "al-3", "ringing", "202", caller="+972 72-277-6772")  # the same number, written otherwise
    event(hub, "al-3", "answered", "202", caller="+972 72-277-6772")
    assert noa.recv("inbox")["count"] == 0 and avi.recv("inbox")["count"] == 0
    rows = wait_rows(hub, "SELECT call_id, handled_how FROM missed_calls WHERE handled_at IS NOT NULL "
                          "ORDER BY call_id", n=2)
    assert rows.values.tolist() == [["al-1", "answered_later"], ["al-2", "answered_later"]]


def test_a_pop_that_reached_no_browser_waits_in_the_inbox(hub):
    event(hub, "un-1", "ringing", "201")  # Noa is signed in nowhere
    event(hub, "un-1", "answered", "201")
    event(hub, "un-1", "hangup", "201")
    wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'un-1' AND sessions = 0")
    noa = Agent(hub, TOKENS["noa"])
    message = noa.recv("inbox")
    assert message["count"] == 1 and message["missed"][0]["kind"] == "unseen"
    event(hub, "un-2", "ringing", "201")  # signed in: the pop is delivered, nothing waits
    noa.recv("pop", where=lambda m: m["call_id"] == "un-2")
    event(hub, "un-2", "hangup", "201")
    noa.recv("inbox", where=lambda m: m["count"] == 2)  # un-2 rang out unanswered: a missed call
    noa.close()
    # Signed in while it rings: the welcome's replay delivers the pop, nothing waits.
    event(hub, "un-3", "ringing", "201", caller=OTHER)
    time.sleep(0.3)
    noa = Agent(hub, TOKENS["noa"])
    assert noa.recv("pop")["call_id"] == "un-3"
    event(hub, "un-3", "answered", "201", caller=OTHER)
    event(hub, "un-3", "hangup", "201", caller=OTHER)
    noa.recv("call", where=lambda m: m["call_id"] == "un-3" and m["state"] == "ended")
    assert [(e["call_id"], e["kind"]) for e in inbox(hub)["missed"]] == [("un-2", "missed"), ("un-1", "unseen")]


@pytest.fixture
def pop_on_agents(tmp_path):
    lines = (ROOT / "data" / "agents.csv").read_text().splitlines()
    when = {"noa": "answer", "avi": "off"}
    out = [lines[0] + ",pop_on"] + [f"{line},{when.get(line.split(',')[0], '')}" for line in lines[1:]]
    path = tmp_path / "agents.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def test_pop_on_answer_pops_when_answered_and_off_never_pops_but_keeps_the_inbox(start_hub, pop_on_agents):
    assert [a.pop_on for a in Agents.from_csv(pop_on_agents)] == ["answer", "off", "ring", "ring", "ring"]
    hub = start_hub(agents_csv=str(pop_on_agents))
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    event(hub, "po-1", "ringing", "201")
    noa.nothing("pop", within=0.5)
    event(hub, "po-1", "answered", "201")
    pop = noa.recv("pop")
    assert pop["call_id"] == "po-1" and pop["name"] == "John Doe"
    event(hub, "po-2", "ringing", "202")
    assert [c["call_id"] for c in api(hub, "GET", "/api/calls/live", TOKENS["avi"]).json()["calls"]] == ["po-2"]
    event(hub, "po-2", "hangup", "202")
    message = avi.recv("inbox", where=lambda m: m["count"] == 1)
    assert message["missed"][0]["call_id"] == "po-2" and message["missed"][0]["name"] == "John Doe"
    avi.nothing("pop", within=0.2)
    assert wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'po-2'", timeout=0.3).empty


def test_an_unknown_pop_on_is_refused_with_its_line(tmp_path):
    path = tmp_path / "agents.csv"
    path.write_text("id,name,token,extension,mobile,home,pop_on\nnoa,Noa,t1,201,,,ring\navi,Avi,t2,202,,,sometimes\n")
    with pytest.raises(AgentsError, match=r"line 3: pop_on 'sometimes' is not one of ring, answer, off"):
        Agents.from_csv(path)
