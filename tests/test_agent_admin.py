"""Agents managed by supervisors, against the real hub: adding, editing, disabling and issuing
tokens through /api/agents; the agents file written atomically and read again after a hand
edit; sockets closed at once with the reason; every change in agent_changes; one-time sign-in
codes (once, expired, wrong, throttled)."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from pipelines.agents import Agents
from tests.support import ROOT
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

DANA = TOKENS["dana"]


@pytest.fixture
def agents_csv(tmp_path):
    path = tmp_path / "agents.csv"
    path.write_text((ROOT / "data" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def hub(start_hub, agents_csv):
    return start_hub(agents_csv=str(agents_csv), agents_check_s=0.1, signin_try_every_s=0.01)


def rows(path) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}


def closed_with(agent: Agent, timeout: float = 3.0) -> tuple[int, str]:
    """The close code and reason the hub sent this socket (pops and heartbeats skipped)."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            agent.ws.recv(timeout=deadline - time.monotonic())
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_supervisor_adds_an_agent_whose_token_signs_in_and_gets_pops(hub, agents_csv):
    r = api(hub, "POST", "/api/agents", DANA, json={"id": "maya", "name": "Maya Ben", "extension": "206",
                                                   "mobile": "054-812-2233", "role": "agent"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["agent"] == {"id": "maya", "name": "Maya Ben", "extension": "206", "mobile": "054-812-2233",
                                 "home": "", "role": "agent", "voicenter_user": "", "disabled": False,
                                 "expires_at": None, "tokens": 1, "sockets": 0}
    text = agents_csv.read_text(encoding="utf-8")
    assert token not in text and rows(agents_csv)["maya"]["token"].startswith("sha256:")
    assert rows(agents_csv)["noa"]["token"] == TOKENS["noa"]  # the others' rows as they were
    maya = Agent(hub, token)
    assert maya.welcome["agent"]["id"] == "maya"
    assert post_event(hub, call_id="maya-1", type="ringing", caller="0722776772", extension="206").status_code == 202
    assert maya.recv("pop")["call_id"] == "maya-1"
    listed = {a["id"]: a for a in api(hub, "GET", "/api/agents", DANA).json()["agents"]}
    assert listed["maya"]["sockets"] == 1 and token not in json.dumps(listed)
    maya.close()


def test_an_edit_changes_the_file_and_the_routing(hub, agents_csv):
    avi = Agent(hub, TOKENS["avi"])
    r = api(hub, "PATCH", "/api/agents/avi", DANA, json={"extension": "299", "name": "Avi C."})
    assert r.status_code == 200 and r.json()["agent"]["extension"] == "299", r.text
    assert rows(agents_csv)["avi"]["extension"] == "299" and rows(agents_csv)["avi"]["name"] == "Avi C."
    post_event(hub, call_id="avi-299", type="ringing", caller="0722776772", extension="299")
    assert avi.recv("pop")["call_id"] == "avi-299"  # the socket stayed open, and rings at the new extension
    assert api(hub, "GET", "/api/me", TOKENS["avi"]).json()["name"] == "Avi C."
    avi.close()


def test_disabling_closes_the_agents_sockets_at_once_with_the_reason(hub, agents_csv):
    first, second = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["noa"])
    started = time.monotonic()
    r = api(hub, "POST", "/api/agents/noa/disable", DANA)
    assert r.status_code == 200 and r.json()["sockets_closed"] == 2, r.text
    for socket in (first, second):
        assert closed_with(socket) == (4401, "agent disabled by a supervisor")
    assert time.monotonic() - started < 1.0
    assert rows(agents_csv)["noa"]["disabled"] == "true"
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).status_code == 401
    assert api(hub, "POST", "/api/agents/noa/enable", DANA).status_code == 200
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).json()["id"] == "noa"


def test_a_new_token_ends_the_old_ones_sessions(hub):
    old = Agent(hub, TOKENS["sarah"])
    r = api(hub, "POST", "/api/agents/sarah/token", DANA)
    assert r.status_code == 200 and r.json()["sockets_closed"] == 1, r.text
    assert closed_with(old) == (4401, "token replaced: sign in again")
    assert api(hub, "GET", "/api/me", TOKENS["sarah"]).status_code == 401
    assert api(hub, "GET", "/api/me", r.json()["token"]).json()["id"] == "sarah"
    Agent(hub, r.json()["token"]).close()


def test_a_hand_edit_of_the_file_is_read_again(hub, agents_csv):
    james = Agent(hub, TOKENS["james"])
    text = agents_csv.read_text(encoding="utf-8")
    agents_csv.write_text(text.replace("james,James Wright,demo-token-james,204", "james,James W.,demo-token-james,207")
                          + "lior,Lior Hand,demo-token-lior,208,,,agent\n", encoding="utf-8")
    deadline = time.monotonic() + 5
    while api(hub, "GET", "/api/me", "demo-token-lior").status_code != 200:
        assert time.monotonic() < deadline, "the hand edit was not read"
        time.sleep(0.05)
    post_event(hub, call_id="james-207", type="ringing", caller="0722776772", extension="207")
    assert james.recv("pop")["call_id"] == "james-207"
    changes = wait_rows(hub, "SELECT * FROM agent_changes WHERE actor = 'file' ORDER BY agent_id", n=2)
    assert list(changes.agent_id) == ["james", "lior"]
    assert json.loads(changes.detail[0]) == {"name": ["James Wright", "James W."], "extension": ["204", "207"]}
    # A hand edit that does not load leaves the hub with the agents it had.
    agents_csv.write_text(agents_csv.read_text(encoding="utf-8") + "lior,Again,t2,209,,,agent\n", encoding="utf-8")
    time.sleep(0.5)
    assert api(hub, "GET", "/api/me", "demo-token-lior").status_code == 200
    james.close()


def test_the_file_is_never_seen_half_written(hub, agents_csv):
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            seen.append(len(Agents.from_csv(agents_csv)))  # raises on a half-written file
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(15):
            r = api(hub, "POST", "/api/agents", DANA, json={"id": f"bulk{n}", "name": f"Bulk {n}", "extension":
                                                             str(300 + n), "home": "03-987-6543"})
            assert r.status_code == 201, r.text
            assert api(hub, "PATCH", f"/api/agents/bulk{n}", DANA, json={"role": "supervisor"}).status_code == 200
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 15 and seen == sorted(seen) and seen[-1] == 20
    assert not list(agents_csv.parent.glob("*.tmp"))


def test_every_change_is_recorded_without_the_token(hub):
    added = api(hub, "POST", "/api/agents", DANA, json={"id": "rec", "name": "Rec Ord"}).json()
    api(hub, "PATCH", "/api/agents/rec", DANA, json={"mobile": "054-999-8888"})
    api(hub, "POST", "/api/agents/rec/disable", DANA)
    api(hub, "POST", "/api/agents/rec/enable", DANA)
    rotated = api(hub, "POST", "/api/agents/rec/token", DANA).json()
    api(hub, "POST", "/api/agents/rec/signin-code", DANA)
    found = wait_rows(hub, "SELECT * FROM agent_changes WHERE agent_id = 'rec' ORDER BY changed_at", n=6)
    assert list(found.action) == ["add", "edit", "disable", "enable", "token", "signin_code"]
    assert set(found.actor) == {"dana"}
    assert json.loads(found.detail[0]) == {"name": [None, "Rec Ord"], "role": [None, "agent"],
                                           "tokens": "1 added, 0 removed"}
    assert json.loads(found.detail[1]) == {"mobile": ["", "054-999-8888"]}
    assert json.loads(found.detail[4]) == {"tokens": "1 added, 1 removed"}
    text = found.to_csv()
    for secret in (added["token"], rotated["token"], "sha256:"):
        assert secret not in text
    listed = api(hub, "GET", "/api/agents/changes", DANA, params={"agent_id": "rec"}).json()["changes"]
    assert [c["action"] for c in listed] == ["signin_code", "token", "enable", "disable", "edit", "add"]


@pytest.mark.parametrize("method, path, body, status, error", [
    ("POST", "/api/agents", {"id": "noa", "name": "Again"}, 409, "agent_exists"),
    ("POST", "/api/agents", {"id": "bad id!", "name": "X"}, 422, "invalid_request"),
    ("POST", "/api/agents", {"id": "x1", "name": "X", "role": "boss"}, 422, "invalid_request"),
    ("POST", "/api/agents", {"id": "x1", "name": "X", "extension": "20a"}, 422, "invalid_request"),
    ("POST", "/api/agents", {"id": "x1", "name": "=HYPERLINK(1)"}, 422, "invalid_request"),
    ("POST", "/api/agents", {"id": "x1", "name": "X", "mobile": "12"}, 422, "invalid_phone"),
    ("POST", "/api/agents", {"id": "x1", "name": "Line\nbreak"}, 422, "invalid_request"),
    ("PATCH", "/api/agents/ghost", {"name": "X"}, 404, "not_found"),
    ("PATCH", "/api/agents/noa", {}, 422, "invalid_request"),
    ("PATCH", "/api/agents/dana", {"role": "agent"}, 409, "own_account"),
    ("POST", "/api/agents/dana/disable", None, 409, "own_account"),
    ("POST", "/api/agents/ghost/token", None, 404, "not_found"),
])
def test_bad_input_gets_a_json_4xx_and_leaves_the_file_alone(hub, agents_csv, method, path, body, status, error):
    before = agents_csv.read_bytes()
    r = api(hub, method, path, DANA, **({"json": body} if body is not None else {}))
    assert r.status_code == status and r.json()["error"] == error, r.text
    assert agents_csv.read_bytes() == before


def test_agents_get_403_on_every_admin_route(hub, agents_csv):
    before = agents_csv.read_bytes()
    for method, path in (("GET", "/api/agents"), ("POST", "/api/agents"), ("PATCH", "/api/agents/noa"),
                         ("POST", "/api/agents/avi/disable"), ("POST", "/api/agents/avi/token"),
                         ("POST", "/api/agents/noa/signin-code"), ("GET", "/api/agents/changes")):
        r = api(hub, method, path, TOKENS["noa"], json={"id": "x", "name": "x"} if method != "GET" else None)
        assert r.status_code == 403 and r.json()["error"] == "forbidden", (method, path, r.text)
    assert agents_csv.read_bytes() == before


# --- one-time sign-in codes

def code_for(hub, agent_id: str) -> dict:
    r = api(hub, "POST", f"/api/agents/{agent_id}/signin-code", DANA)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_code_works_once_and_adds_a_token_for_the_device(hub, agents_csv):
    extension = Agent(hub, TOKENS["noa"])  # signed in already: a second device must not end this
    made = code_for(hub, "noa")
    assert len(made["code"]) == 9 and made["code"][4] == "-" and made["expires_in_s"] == 600
    assert made["link"] == f"{hub.settings.base_url}/signin#code={made['code']}"
    page = api(hub, "GET", "/signin")  # where the link opens in a browser: what to do with it
    assert page.status_code == 200 and "Sign-in code" in page.text and page.headers["cache-control"] == "no-store"
    r = api(hub, "POST", "/api/signin", json={"code": made["code"].lower().replace("-", " ")})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert r.json()["agent"]["id"] == "noa" and token not in agents_csv.read_text(encoding="utf-8")
    assert api(hub, "GET", "/api/me", token).json()["id"] == "noa"
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).json()["id"] == "noa"
    extension.send({"type": "ping"})
    assert extension.recv("pong")
    again = api(hub, "POST", "/api/signin", json={"code": made["code"]})
    assert again.status_code == 410 and again.json() == {"error": "bad_code", "message":
                                                           "this sign-in code was used already (ask your supervisor for a new one)"}
    found = wait_rows(hub, "SELECT * FROM agent_changes WHERE action = 'signin'")
    assert list(found.actor) == ["noa"] and json.loads(found.detail[0]) == {"tokens": "1 added, 0 removed"}
    assert made["code"] not in hub.hub.store.query("SELECT * FROM rejects").to_csv()
    extension.close()


def test_a_device_token_stops_when_the_token_is_reissued(hub):
    token = api(hub, "POST", "/api/signin", json={"code": code_for(hub, "avi")["code"]}).json()["token"]
    device = Agent(hub, token)
    api(hub, "POST", "/api/agents/avi/token", DANA)
    assert closed_with(device)[0] == 4401
    assert api(hub, "GET", "/api/me", token).status_code == 401


def test_expired_wrong_and_malformed_codes_get_a_clear_4xx(start_hub, agents_csv):
    hub = start_hub(agents_csv=str(agents_csv), signin_code_ttl_s=1, signin_try_every_s=0.01)
    made = code_for(hub, "noa")
    time.sleep(1.1)
    r = api(hub, "POST", "/api/signin", json={"code": made["code"]})
    assert r.status_code == 410 and "expired" in r.json()["message"], r.text
    time.sleep(0.02)
    r = api(hub, "POST", "/api/signin", json={"code": "ABCD-EFGH"})
    assert r.status_code == 404 and r.json()["error"] == "bad_code"
    time.sleep(0.02)
    r = api(hub, "POST", "/api/signin", json={"code": "not a code"})
    assert r.status_code == 422 and r.json()["error"] == "bad_code"
    assert api(hub, "POST", "/api/signin", json={}).status_code == 422
    disabled = code_for(hub, "avi")
    api(hub, "POST", "/api/agents/avi/disable", DANA)
    time.sleep(0.02)
    assert api(hub, "POST", "/api/signin", json={"code": disabled["code"]}).status_code == 404  # forgotten


def test_tries_are_throttled_per_client(start_hub, agents_csv):
    hub = start_hub(agents_csv=str(agents_csv), signin_try_every_s=30)
    made = code_for(hub, "noa")
    assert api(hub, "POST", "/api/signin", json={"code": "ABCD-EFGH"}).status_code == 404
    r = api(hub, "POST", "/api/signin", json={"code": made["code"]})  # even the right one: wait first
    assert r.status_code == 429 and r.json()["error"] == "too_many_tries" and r.headers["Retry-After"] == "30"


def test_behind_a_trusted_proxy_each_client_is_throttled_apart(start_hub, agents_csv):
    hub = start_hub(agents_csv=str(agents_csv), signin_try_every_s=30, trusted_proxies="127.0.0.1")
    made = code_for(hub, "noa")

    def try_from(client: str, code: str = "ABCD-EFGH"):
        return httpx.post(f"{hub.url}/api/signin", json={"code": code}, headers={"X-Forwarded-For": client}, timeout=10)
    assert try_from("203.0.113.7").status_code == 404
    assert try_from("203.0.113.7").status_code == 429
    assert try_from("198.51.100.9", made["code"]).status_code == 200  # another agent behind the same proxy


def test_wrong_codes_from_many_addresses_make_everyone_wait(start_hub, agents_csv, monkeypatch):
    from pipelines import agent_admin
    monkeypatch.setattr(agent_admin, "MAX_WRONG_PER_MINUTE", 3)
    hub = start_hub(agents_csv=str(agents_csv), signin_try_every_s=30, trusted_proxies="127.0.0.1")
    made = code_for(hub, "noa")
    for n in range(3):  # a guesser with many addresses
        r = httpx.post(f"{hub.url}/api/signin", json={"code": "ABCD-EFGH"}, headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert r.status_code == 404
    r = httpx.post(f"{hub.url}/api/signin", json={"code": made["code"]}, headers={"X-Forwarded-For": "198.51.100.9"})
    assert r.status_code == 429 and r.json()["error"] == "too_many_tries"
