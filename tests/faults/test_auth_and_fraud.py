"""Who may do what, and what may be dialled: the refusals the hub tests do not cover yet.

(Missing, wrong, expired and revoked tokens on HTTP, acks for another agent's pops, reading
another agent's dials and the per-agent rate limit are in tests/test_hub_*.py.)
"""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import INGEST
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

AGENTS = ("id,name,token,extension,mobile,home,expires_at,disabled\n"
          "old,Old,tok-old,301,,,2020-01-01T00:00:00Z,\n"
          "gone,Gone,tok-gone,302,,,,true\n"
          "ok,Ok,tok-ok,303,054-812-0000,,2999-01-01,\n"
          "other,Other,tok-other,304,054-812-1111,,,\n")


@pytest.fixture
def hub(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text(AGENTS)
    return start_hub(agents_csv=str(agents))


def ws_close_code(hub, hello) -> int:
    with connect(hub.ws_url) as ws:
        ws.send(json.dumps(hello))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        return closed.value.rcvd.code


@pytest.mark.parametrize("token", ["tok-old", "tok-gone", INGEST, "", "tok-ok " * 200])
def test_websocket_refuses_expired_revoked_and_foreign_tokens(hub, token):
    assert ws_close_code(hub, {"type": "hello", "token": token}) == 4401


def test_websocket_refuses_a_token_that_is_not_a_string(hub):
    for token in (None, 123, ["tok-ok"], {"token": "tok-ok"}):
        assert ws_close_code(hub, {"type": "hello", "token": token}) == 4401


@pytest.mark.parametrize("header", ["Basic dG9rLW9rOg==", "Token tok-ok", "tok-ok", "Bearer", "Bearer tok-o",
                                    "Bearer TOK-OK"])
def test_only_a_bearer_with_the_exact_token_signs_in(hub, header):
    r = httpx.get(f"{hub.url}/api/me", headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_a_token_in_the_query_string_is_not_a_sign_in(hub):
    assert httpx.get(f"{hub.url}/api/me?token=tok-ok", timeout=10).status_code == 401


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/dial", {"to": "054-555-7777"}),
    ("GET", "/api/calls/live", None),
    ("GET", "/api/pops/recent", None),
    ("GET", "/api/contacts?q=a", None),
])
def test_expired_and_revoked_tokens_are_refused_on_every_agent_route(hub, method, path, body):
    for token, why in (("tok-old", "token expired"), ("tok-gone", "token revoked")):
        r = api(hub, method, path, token, json=body)
        assert r.status_code == 401 and r.json()["message"] == why
    assert api(hub, method, path, "tok-ok", json=body).status_code in (200, 202)


def test_an_agent_never_sees_another_agents_pops_or_calls(start_hub):
    hub = start_hub()
    noa = Agent(hub, TOKENS["noa"])
    assert post_event(hub, call_id="priv-1", type="ringing", caller="0722776772", extension="201").status_code == 202
    noa.recv("pop")
    assert [p["call_id"] for p in api(hub, "GET", "/api/pops/recent", TOKENS["noa"]).json()["pops"]] == ["priv-1"]
    assert api(hub, "GET", "/api/pops/recent", TOKENS["avi"]).json()["pops"] == []
    assert api(hub, "GET", "/api/calls/live", TOKENS["avi"]).json()["calls"] == []
    # A socket of Avi's that connects while Noa's call rings is not told about it.
    avi = Agent(hub, TOKENS["avi"])
    avi.nothing("pop")


def test_an_agent_cannot_ring_another_agents_extension_as_leg_a(hub):
    r = api(hub, "POST", "/api/dial", "tok-ok", json={"to": "054-555-7777", "leg_a": "304"})
    assert r.status_code == 422 and r.json()["error"] == "bad_leg_a"
    # Nor make the hub call another agent's mobile and bridge it somewhere (leg B is fine to call).
    r = api(hub, "POST", "/api/dial", "tok-ok", json={"to": "054-555-7777", "leg_a": "not a phone"})
    assert r.status_code == 422


def test_the_ingest_token_cannot_act_as_an_agent_and_no_agent_can_post_events(hub):
    assert api(hub, "POST", "/api/dial", INGEST, json={"to": "054-555-7777"}).status_code == 403
    assert post_event(hub, token="tok-ok", call_id="x", type="hangup").status_code == 403
    assert api(hub, "POST", "/api/dials/d1/events", "tok-ok", json={"state": "bridged"}).status_code == 403


# --- toll fraud: premium-rate and high-cost destinations however they are written
@pytest.mark.parametrize("to, code", [
    ("+1 900 555 0100", "blocked_prefix"),           # US premium, on the default prefix list
    ("001 900 555 0100", "blocked_prefix"),          # the same, with Israel's international prefix
    ("tel:+1-900-555-0100", "blocked_prefix"),       # as a tel: link on a web page
    ("+44 871 234 5678", "blocked_prefix"),          # UK 0871
    ("0044 909 876 5432", "blocked_prefix"),         # UK 09
    ("1-900-72-72-72", "blocked_prefix"),            # Israeli 1-900, national spelling
    ("+972 1 919 555 555", "blocked_prefix"),
    ("+33 8 91 23 45 67", "premium_rate"),           # French premium: no prefix listed for it
    ("+881 6 1234 5678", "high_cost_network"),       # satellite phone (global network, no country)
    ("+870 773 111 632", "high_cost_network"),       # Inmarsat
])
def test_premium_and_high_cost_numbers_are_refused_however_written(start_hub, to, code):
    hub = start_hub()
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": to})
    assert r.status_code == 422 and r.json()["error"] == code, r.text
    # The phone rung first as well: the PBX would pay for that leg just the same.
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "054-555-7777", "leg_a": to})
    assert r.status_code == 422 and r.json()["error"] == code, r.text
    assert wait_rows(hub, "SELECT error FROM dials WHERE outcome = 'refused'", n=2).error.tolist() == [code] * 2


@pytest.mark.parametrize("to", ["+53 5 123 4567", "+252 61 1234567", "+682 71 234", "+688 901234",
                                "+1 809 234 5678", "+1 876 210 1234", "+1 212 555 7777"])
def test_only_the_default_region_is_dialled_unless_countries_are_listed(start_hub, to):
    hub = start_hub()  # region IL, no countries listed
    for body in ({"to": to}, {"to": "054-555-7777", "leg_a": to}):
        r = api(hub, "POST", "/api/dial", TOKENS["noa"], json=body)
        assert r.status_code == 422 and r.json()["error"] == "country_not_allowed", (body, r.text)


def test_toll_free_and_ordinary_international_numbers_still_dial(start_hub):
    hub = start_hub(dial_rate_per_minute=100, dial_allowed_countries="IL,US,GB,FR")
    for to in ("1-800-72-72-72", "+1 212 555 7777", "+44 20 7946 0321", "+33 1 42 68 53 00"):
        r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": to})
        assert r.status_code == 202, (to, r.text)
    assert api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "+1 876 210 1234"}).status_code == 422


def test_refused_attempts_count_against_the_rate_limit(start_hub):
    """Probing for a number that gets through costs the same as dialling it."""
    hub = start_hub(dial_rate_per_minute=3)
    for _ in range(3):
        assert api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "+1 900 555 0100"}).status_code == 422
    r = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "054-555-7777"})
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    rows = wait_rows(hub, "SELECT error FROM dials WHERE agent_id = 'noa'", n=4)
    assert sorted(rows.error) == ["blocked_prefix"] * 3 + ["rate_limited"]
