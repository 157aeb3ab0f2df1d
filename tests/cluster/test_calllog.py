"""The call log in cluster mode: the recorder owns the outbox and delivers it. A call that rang
on one hub and ended on the other is logged once; the agent hears it was delivered on the hub
that holds their socket; a note saved through another hub is the next revision; a receiver that
is down while the recorder is killed gets every revision once when it is back."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import RECORDER_TOKEN
from tests.support import wait_until
from tests.support.hub import TOKENS, Agent, api, post_event
from tests.support.procs import start_recorder
from tests.test_calllog import AUTH, Receiver

CALLER = "0722776772"


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def logged(tmp_path, redis_server, receiver, start_hub):
    """(start a recorder, start a hub), both with the receiver as the CRM's log URL."""
    log = dict(crm_log_url=f"{receiver.origin}/log", crm_auth_header=AUTH)
    recorders = []

    def recorder():
        proc = start_recorder(tmp_path / "callpop.duckdb", redis_server.url, recorder_token=RECORDER_TOKEN,
                              recorder_lease_s=2, **log).__enter__()  # a killed one's successor waits 2 s
        recorders.append(proc)
        return proc

    def hub(name, rec):
        return start_hub(redis_url=redis_server.url, hub_name=name, recorder_url=rec.url,
                         recorder_token=RECORDER_TOKEN, **log)
    yield recorder, hub
    for proc in recorders:
        proc.__exit__(None, None, None)


def test_a_call_across_two_hubs_is_logged_once_by_the_recorder_and_a_note_on_the_other_hub_amends_it(logged, receiver):
    start_recorder_, start = logged
    rec = start_recorder_()
    hub1, hub2 = start("hub1", rec), start("hub2", rec)
    noa = Agent(hub2, TOKENS["noa"])
    assert post_event(hub1, call_id="c1", caller=CALLER, type="ringing", extension="201").status_code == 202
    assert post_event(hub2, call_id="c1", type="answered", extension="201").status_code == 202
    assert post_event(hub1, call_id="c1", type="hangup", cause="normal").status_code == 202
    wait_until(lambda: receiver.keys() == ["c1:1"], 15, what="revision 1 from the recorder")
    first = receiver.entry("c1:1")
    assert first["status"] == "answered" and first["agent_id"] == "noa"
    assert receiver.taken[0][2]["X-Api-Key"] == "log-secret-123"
    assert noa.recv("call_log", timeout=10) == {"type": "call_log", "call_id": "c1", "revision": 1,
                                                "state": "delivered", "url": "https://crm.example.com/a/9"}
    r = api(hub2, "POST", "/api/calls/c1/log", TOKENS["noa"], json={"disposition": "Sale", "notes": "a quote"})
    assert r.status_code == 202 and r.json()["revision"] == 2, r.text
    wait_until(lambda: receiver.keys() == ["c1:1", "c1:2"], 15, what="revision 2")
    assert receiver.entry("c1:2") == {**first, "disposition": "Sale", "notes": "a quote"}
    assert wait_until(lambda: [e["state"] for e in api(hub1, "GET", "/api/calls/c1/log",
                                                       TOKENS["noa"]).json()["log"]] == ["delivered"] * 2, 10)
    assert receiver.tried == 2


def test_revisions_pending_when_the_recorder_is_killed_are_delivered_once_by_the_next(logged, receiver):
    start_recorder_, start = logged
    receiver.mode = "down"
    first_recorder = start_recorder_()
    hub = start("hub1", first_recorder)
    for call_id in ("m1", "m2"):
        assert post_event(hub, call_id=call_id, caller=CALLER, type="ringing", extension="202").status_code == 202
        assert post_event(hub, call_id=call_id, type="hangup").status_code == 202
    wait_until(lambda: receiver.tried >= 2, 15, what="the first tries")
    first_recorder.kill()
    receiver.mode = "ok"
    start_recorder_()  # takes the lease once the dead one's ends, then delivers the file's pending rows
    wait_until(lambda: sorted(receiver.keys()) == ["m1:1", "m2:1"], 40, what="both entries delivered")
    assert receiver.entry("m1:1")["status"] == "missed"
