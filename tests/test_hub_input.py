"""Bad input and auth against the real hub: a clear 4xx (or WebSocket error / 4401), a log line,
a row in `rejects`, and the hub keeps serving everyone else."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import INGEST
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows


def events_raw(hub, body: bytes, token=INGEST, content_type="application/json"):
    return httpx.post(f"{hub.url}/api/events", content=body, timeout=10,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})


@pytest.mark.parametrize("body, needle", [
    (b'{"call_id": "x", "type": "ringing",', "not valid JSON"),
    (json.dumps({"type": "ringing", "caller": "0722776772", "extension": "201"}).encode(), "call_id"),
    (json.dumps({"call_id": "x", "type": "transferred", "extension": "201"}).encode(), "type"),
    (json.dumps({"call_id": "x", "type": "ringing", "caller": "CALL-ME-NOW", "extension": "201"}).encode(),
     "not a phone number"),
    (json.dumps({"call_id": "x", "type": "ringing", "extension": "201", "colour": "red"}).encode(), "colour"),
    (json.dumps(["not", "an", "object"]).encode(), "body"),
])
def test_malformed_events_get_422_with_the_reason_and_are_recorded(hub, body, needle):
    r = events_raw(hub, body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request" and needle in r.json()["message"]
    rejects = wait_rows(hub, "SELECT * FROM rejects WHERE source = '/api/events'")
    assert needle in rejects.detail.iloc[-1]


def test_unknown_extension_is_refused_with_its_own_code(hub):
    r = post_event(hub, call_id="x", type="ringing", caller="0722776772", extension="999")
    assert r.status_code == 422 and r.json()["error"] == "unknown_extension" and "999" in r.json()["message"]
    assert wait_rows(hub, "SELECT * FROM rejects WHERE reason = 'unknown_extension'").detail[0].endswith("999")


def test_a_10_mb_body_gets_413_without_being_read(hub):
    r = events_raw(hub, b"{" + b" " * (10 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_a_chunked_oversized_body_gets_413(hub):
    def chunks():
        for _ in range(100):
            yield b" " * 4096

    r = httpx.post(f"{hub.url}/api/events", content=chunks(), timeout=10,
                   headers={"Authorization": f"Bearer {INGEST}", "Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("token, status, reason", [
    (None, 401, "missing token"), ("wrong", 401, "invalid token"),
    (TOKENS["noa"], 403, "this route is for ingest, not for the agent role")])
def test_events_need_the_ingest_token(hub, token, status, reason):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(f"{hub.url}/api/events", json={"call_id": "x", "type": "hangup"}, headers=headers)
    assert r.status_code == status and r.json()["message"] == reason
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_empty_ingest_token_refuses_every_event(start_hub):
    hub = start_hub(ingest_token="")
    r = post_event(hub, token="anything", call_id="x", type="hangup")
    assert r.status_code == 401 and "CALLPOP_INGEST_TOKEN" in r.json()["message"]


def test_agent_routes_need_an_agent_token(hub):
    assert api(hub, "GET", "/api/me").status_code == 401
    assert api(hub, "GET", "/api/me", "nope").json() == {"error": "unauthorized", "message": "invalid token"}
    assert api(hub, "POST", "/api/dial", INGEST, json={"to": "0722776772"}).status_code == 403
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).json()["name"] == "Noa Levi"


def test_revoked_and_expired_tokens_are_refused(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text("id,name,token,extension,mobile,home,expires_at,disabled\n"
                      "old,Old,tok-old,301,,,2020-01-01T00:00:00Z,\n"
                      "gone,Gone,tok-gone,302,,,,true\n"
                      "ok,Ok,tok-ok,303,,,2999-01-01,\n")
    hub = start_hub(agents_csv=str(agents))
    assert api(hub, "GET", "/api/me", "tok-old").json()["message"] == "token expired"
    assert api(hub, "GET", "/api/me", "tok-gone").json()["message"] == "token revoked"
    assert api(hub, "GET", "/api/me", "tok-ok").status_code == 200


def test_websocket_wrong_token_closes_4401_and_no_hello_too(hub):
    for first in ({"type": "hello", "token": "wrong"}, {"type": "ping"}, "not json"):
        with connect(hub.ws_url) as ws:
            ws.send(first if isinstance(first, str) else json.dumps(first))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 4401
    rejects = wait_rows(hub, "SELECT * FROM rejects WHERE source = '/ws'", n=3)
    assert "wrong" not in " ".join(rejects.detail.astype(str))  # the token itself is never recorded


def test_websocket_hello_timeout_closes_4401(start_hub):
    hub = start_hub(ws_hello_timeout_s=0.3)
    with connect(hub.ws_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401 and "hello" in closed.value.rcvd.reason


def test_websocket_bad_messages_get_errors_and_the_socket_lives_on(hub):
    noa = Agent(hub, TOKENS["noa"])
    for message, code in ((b"\x00binary", "bad_message"), ("{nope", "bad_message"), ('"text"', "bad_message"),
                          ('{"type": "subscribe"}', "unknown_type"), ('{"no": "type"}', "unknown_type"),
                          ('{"type": "hello", "token": "x"}', "already_signed_in"),
                          ('{"type": "ack", "call_id": "c", "event": "liked"}', "bad_ack")):
        noa.ws.send(message)
        assert noa.recv("error")["code"] == code
    noa.send({"type": "ping"})
    assert noa.recv("pong") == {"type": "pong"}


def test_hub_keeps_serving_after_bad_input(hub):
    noa = Agent(hub, TOKENS["noa"])
    events_raw(hub, b"garbage")
    events_raw(hub, b"{" + b" " * 70000 + b"}")
    noa.ws.send("garbage")
    noa.recv("error")
    assert post_event(hub, call_id="after-1", type="ringing", caller="0722776772", extension="201").status_code == 202
    assert noa.recv("pop")["name"] == "John Doe"


def test_retried_event_is_accepted_once(hub):
    event = dict(call_id="retry-1", type="ringing", caller="0722776772", extension="201", id="evt-1")
    assert post_event(hub, **event).json()["status"] == "accepted"
    assert post_event(hub, **event).json()["status"] == "duplicate"
    assert len(wait_rows(hub, "SELECT * FROM events WHERE event_id = 'evt-1'")) == 1


def test_answered_and_hangup_for_an_unknown_call_are_recorded(hub):
    assert post_event(hub, call_id="ghost-1", type="answered", caller="0722776772", extension="201").status_code == 202
    assert post_event(hub, call_id="ghost-1", type="hangup").status_code == 202
    call = wait_rows(hub, "SELECT * FROM calls WHERE call_id = 'ghost-1' AND status = 'ended'").iloc[0]
    assert call.answered_by == "201"
