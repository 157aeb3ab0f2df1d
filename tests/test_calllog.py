"""The call log sent back to the CRM, against the real hub and a real receiver: revision 1 at the
call's end, the next with the agent's note, each under its idempotency key; a receiver that is
down (and a hub restart meanwhile) loses nothing; bad notes and bad answers are refused or
retried, never a lost pop."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.support import wait_until
from tests.support.httpserver import LocalServer
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

AUTH = "X-Api-Key: log-secret-123"


class Receiver(LocalServer):
    """A CRM's log URL: takes entries (or fails as told) and keeps what it took, by key."""

    def __init__(self):
        self.taken: list[tuple[str, dict, dict]] = []  # (idempotency key, entry, headers)
        self.tried = 0
        self.mode = "ok"  # ok | down | html | 500
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.tried += 1
                    mode = receiver.mode
                    if mode == "ok":
                        receiver.taken.append((self.headers["Idempotency-Key"], body, dict(self.headers)))
                if mode == "down":
                    self.connection.close()  # as a CRM that went away: no answer at all
                    return
                status, text, kind = {"ok": (200, json.dumps({"STATUS": "OK", "URL": "https://crm.example.com/a/9"}),
                                             "application/json"),
                                      "html": (200, "<html>maintenance</html>", "text/html"),
                                      "500": (500, "oops", "text/plain")}[mode]
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def keys(self) -> list[str]:
        with self.lock:
            return [k for k, _, _ in self.taken]

    def entry(self, key: str) -> dict:
        with self.lock:
            return next(e for k, e, _ in self.taken if k == key)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def logged_hub(start_hub, receiver, **more):
    return start_hub(crm_log_url=f"{receiver.origin}/log", crm_auth_header=AUTH, **more)


def answered_call(hub, call_id="c1", caller="0722776772"):
    for event in ({"type": "ringing", "extension": "201"}, {"type": "answered", "extension": "201"},
                  {"type": "hangup", "cause": "normal"}):
        assert post_event(hub, call_id=call_id, caller=caller, **event).status_code == 202


def test_a_call_is_logged_at_its_end_and_again_with_the_agents_note(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    noa = Agent(hub, TOKENS["noa"])
    answered_call(hub)
    wait_until(lambda: receiver.keys() == ["c1:1"], 10, what="revision 1")
    first = receiver.entry("c1:1")
    assert first["status"] == "answered" and first["agent_id"] == "noa" and first["agent_name"] == "Noa Levi"
    assert first["e164"] == "+972722776772" and first["extension"] == "201" and first["notes"] == ""
    assert first["started_at"].endswith("Z") and first["ended_at"] and first["crm_url"].startswith("http")
    assert set(first) >= {"call_id", "direction", "phone", "did", "answered_at", "duration_s", "disposition",
                          "recording_url", "contact_total"}
    assert receiver.taken[0][2]["X-Api-Key"] == "log-secret-123"
    told = noa.recv("call_log")
    assert told == {"type": "call_log", "call_id": "c1", "revision": 1, "state": "delivered",
                    "url": "https://crm.example.com/a/9"}

    r = api(hub, "POST", "/api/calls/c1/log", TOKENS["noa"], json={"disposition": "Sale", "notes": "wants a quote"})
    assert r.status_code == 202 and r.json()["revision"] == 2, r.text
    wait_until(lambda: receiver.keys() == ["c1:1", "c1:2"], 10, what="revision 2")
    second = receiver.entry("c1:2")
    assert second == {**first, "disposition": "Sale", "notes": "wants a quote"}
    shown = api(hub, "GET", "/api/calls/c1/log", TOKENS["noa"]).json()
    assert [n["notes"] for n in shown["notes"]] == ["wants a quote"] and "Sale" in shown["dispositions"]
    assert wait_until(lambda: [e["state"] for e in api(hub, "GET", "/api/calls/c1/log",
                                                       TOKENS["noa"]).json()["log"]] == ["delivered"] * 2, 5)
    rows = wait_rows(hub, "SELECT revision FROM call_notes WHERE call_id = 'c1'")
    assert rows.revision.tolist() == [2]
    mine = api(hub, "GET", "/api/calls/history", TOKENS["noa"]).json()["calls"]
    assert [(c["call_id"], c["disposition"], c["notes"], c["logged"]) for c in mine] == \
        [("c1", "Sale", "wants a quote", "delivered")]
    assert mine[0]["name"] and mine[0]["ended_at"].endswith("Z")
    assert api(hub, "GET", "/api/calls/history", TOKENS["avi"]).json()["calls"] == []  # only one's own
    noa.close()


def test_a_note_saved_during_the_call_goes_with_its_end(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    assert post_event(hub, call_id="c2", caller="0722776772", type="ringing", extension="201").status_code == 202
    assert post_event(hub, call_id="c2", type="answered", extension="201").status_code == 202
    r = api(hub, "POST", "/api/calls/c2/log", TOKENS["noa"], json={"disposition": "Support", "notes": "printer"})
    assert r.status_code == 202 and r.json()["revision"] is None
    assert post_event(hub, call_id="c2", type="hangup").status_code == 202
    wait_until(lambda: receiver.keys() == ["c2:1"], 10, what="revision 1")
    assert receiver.entry("c2:1")["notes"] == "printer" and receiver.entry("c2:1")["disposition"] == "Support"


def test_a_missed_call_is_logged_as_missed(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    assert post_event(hub, call_id="m1", caller="0722776772", type="ringing", extension="202").status_code == 202
    assert post_event(hub, call_id="m1", type="hangup").status_code == 202
    wait_until(lambda: receiver.keys() == ["m1:1"], 10, what="the missed call's entry")
    assert receiver.entry("m1:1")["status"] == "missed" and receiver.entry("m1:1")["agent_id"] == "avi"


def test_a_receiver_down_then_back_gets_each_revision_once_across_a_hub_restart(start_hub, receiver, tmp_path):
    receiver.mode = "down"
    hub = logged_hub(start_hub, receiver)
    answered_call(hub, "d1")
    assert api(hub, "POST", "/api/calls/d1/log", TOKENS["noa"], json={"notes": "call back Monday"}).status_code == 202
    wait_until(lambda: receiver.tried >= 2, 10, what="a few attempts")
    rows = wait_rows(hub, "SELECT revision, state, last_error FROM call_logs WHERE call_id = 'd1' AND attempts > 0")
    assert set(rows.state) == {"pending"} and "cannot reach" in rows.last_error[0]
    hub.stop()
    receiver.mode = "ok"
    again = logged_hub(start_hub, receiver)  # the same database: the outbox is picked up
    wait_until(lambda: sorted(receiver.keys()) == ["d1:1", "d1:2"], 20, what="both revisions after the restart")
    assert receiver.keys() == ["d1:1", "d1:2"]  # in order, once each
    assert receiver.entry("d1:2")["notes"] == "call back Monday"
    wait_until(lambda: set(again.hub.store.query("SELECT state FROM call_logs WHERE call_id = 'd1'").state)
               == {"delivered"}, 10, what="both marked delivered")


@pytest.mark.parametrize("mode, error", [("html", "not JSON"), ("500", "HTTP 500")])
def test_a_log_url_answering_badly_is_retried_and_recorded_and_pops_go_on(start_hub, receiver, mode, error):
    receiver.mode = mode
    hub = logged_hub(start_hub, receiver)
    noa = Agent(hub, TOKENS["noa"])
    answered_call(hub, "b1")
    assert noa.recv("pop")["call_id"] == "b1"
    rows = wait_rows(hub, "SELECT state, last_error, http_status FROM call_logs WHERE call_id = 'b1' AND "
                          "last_error IS NOT NULL")
    assert rows.state[0] == "pending" and error in rows.last_error[0]
    assert post_event(hub, call_id="b2", caller="0722776772", type="ringing", extension="201").status_code == 202
    assert noa.recv("pop")["call_id"] == "b2"  # the log's trouble never holds a pop
    wait_until(lambda: receiver.tried >= 2, 10, what="a retry")
    noa.close()


def test_notes_are_for_the_calls_own_agent_and_checked(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    answered_call(hub, "n1")
    cases = [(TOKENS["avi"], {"notes": "not mine"}, 403, "forbidden"),
             (TOKENS["noa"], {"disposition": "Sold!"}, 422, "unknown_disposition"),
             (TOKENS["noa"], {"notes": "x" * 4001}, 422, "notes_too_long"),
             (TOKENS["noa"], {"notes": 5}, 422, "invalid_request"),
             (None, {"notes": "who?"}, 401, "unauthorized")]
    for token, body, status, code in cases:
        r = api(hub, "POST", "/api/calls/n1/log", token, json=body)
        assert (r.status_code, r.json()["error"]) == (status, code), (body, r.text)
    r = api(hub, "POST", "/api/calls/nope/log", TOKENS["noa"], json={"notes": "x"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert api(hub, "GET", "/api/calls/n1/log", TOKENS["avi"]).status_code == 404
    assert api(hub, "GET", "/api/calls/n1/log", TOKENS["dana"]).status_code == 200  # a supervisor sees the team's
    assert hub.hub.store.query("SELECT count(*) AS n FROM call_notes").n[0] == 0


def test_without_a_log_url_notes_are_kept_and_nothing_is_sent(start_hub):
    hub = start_hub()
    answered_call(hub, "q1")
    r = api(hub, "POST", "/api/calls/q1/log", TOKENS["noa"], json={"disposition": "Sale"})
    assert r.status_code == 202 and r.json()["logged"] == "not configured"
    assert hub.hub.store.query("SELECT count(*) AS n FROM call_logs").n[0] == 0
    assert wait_rows(hub, "SELECT disposition FROM call_notes").disposition.tolist() == ["Sale"]


def test_the_sample_crm_takes_the_log_and_shows_the_latest_revision_on_the_contact_page(hub):
    contact = api(hub, "GET", "/crm/lookup?phone=0722776772").json()["URL"]
    base = {"call_id": "s1", "e164": "+972722776772", "status": "answered", "agent_name": "Noa Levi",
            "started_at": "2026-12-02T10:00:00Z", "disposition": "Sale"}
    for revision, notes in ((2, "the newer note"), (1, "the first note")):  # out of order, as retries may be
        r = httpx.post(f"{hub.url}/crm/log", json={**base, "notes": notes}, headers={"Idempotency-Key": f"s1:{revision}"},
                       timeout=10)
        assert r.status_code == 200 and r.json()["STATUS"] == "OK" and r.json()["URL"].endswith("/crm/calls/s1")
    page = api(hub, "GET", contact.replace(hub.url, "")).text
    assert "the newer note" in page and "the first note" not in page and "Noa Levi" in page
    assert api(hub, "POST", "/crm/log", json={"notes": "no call id"}).status_code == 422


def test_the_after_call_figures(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    answered_call(hub, "f1")
    answered_call(hub, "f2")
    for call_id, disposition in (("f1", "Support"), ("f1", "Sale"), ("f2", "")):
        assert api(hub, "POST", f"/api/calls/{call_id}/log", TOKENS["noa"],
                   json={"disposition": disposition, "notes": "n"}).status_code == 202
    wait_until(lambda: len(receiver.keys()) == 5, 10, what="five revisions")
    wait_until(lambda: set(hub.hub.store.query("SELECT state FROM call_logs").state) == {"delivered"}, 10)

    def figure(name, token=TOKENS["dana"], **params):
        r = api(hub, "GET", f"/api/analytics/{name}", token, params=params)
        assert r.status_code == 200, r.text
        return r.json()["records"]
    [delivery] = figure("call_log_delivery")
    assert (delivery["entries"], delivery["delivered"], delivery["pending"], delivery["calls"]) == (5, 5, 0, 2)
    assert delivery["delivered_share"] == 1.0 and delivery["delay_p50_s"] >= 0
    assert figure("dispositions") == [{"agent_id": "noa", "disposition": "Sale", "calls": 1, "share": 1.0}]
    [noa] = figure("notes_coverage")
    assert (noa["agent_id"], noa["calls"], noa["with_notes"], noa["with_disposition"], noa["coverage"]) == \
        ("noa", 2, 2, 1, 1.0)
    assert figure("notes_coverage", TOKENS["avi"]) == []  # an agent's figures are their own
    assert figure("call_log_delivery", TOKENS["avi"])[0]["entries"] == 0


def test_a_click_to_call_is_logged_once_over_with_its_dial_id(start_hub, receiver):
    hub = logged_hub(start_hub, receiver)
    noa = Agent(hub, TOKENS["noa"])
    dial_id = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "054-555-7777", "leg_a": "mobile"}).json()["dial_id"]
    while noa.recv("dial", timeout=10, where=lambda m: m["dial_id"] == dial_id)["state"] not in ("ended", "failed"):
        pass
    wait_until(lambda: receiver.keys() == [f"{dial_id}:1"], 10, what="the dial's entry")
    logged = receiver.entry(f"{dial_id}:1")
    assert (logged["dial_id"], logged["direction"], logged["status"], logged["e164"], logged["agent_id"]) == \
        (dial_id, "outbound", "answered", "+972545557777", "noa")
    assert logged["answered_at"] and logged["ended_at"] >= logged["answered_at"]
    wait_rows(hub, "SELECT 1 FROM dials WHERE dial_id = ? AND outcome IS NOT NULL", [dial_id])
    r = api(hub, "POST", f"/api/calls/{dial_id}/log", TOKENS["noa"], json={"disposition": "Sale"})
    assert r.status_code == 202 and r.json()["revision"] == 2, r.text  # a dial's note goes by its dial id
    wait_until(lambda: receiver.keys() == [f"{dial_id}:1", f"{dial_id}:2"], 10, what="the note's revision")
    assert api(hub, "POST", f"/api/calls/{dial_id}/log", TOKENS["avi"], json={"notes": "x"}).status_code == 403
    noa.close()
