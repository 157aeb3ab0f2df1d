"""Who may do what, against the real hub: every route and the WebSocket sign-in with each role
(the matrix of docs/PROTOCOL.md), what an agent's figures contain, the Host check, the sample
CRM, and tokens (digests in the agents file, never in a log line)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support import INGEST, METRICS, ROOT
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

AGENT, SUPERVISOR, ING, MET, NOBODY = "agent", "supervisor", "ingest", "metrics", "nobody"
BEARER = {AGENT: TOKENS["noa"], SUPERVISOR: TOKENS["dana"], ING: INGEST, MET: METRICS, NOBODY: None}
STAFF, ANYONE = {AGENT, SUPERVISOR}, {AGENT, SUPERVISOR, ING, MET, NOBODY}

# (method, path as the app declares it, a concrete path) -> the roles that may call it.
MATRIX = {
    ("GET", "/healthz", "/healthz"): ANYONE,
    ("GET", "/api/status", "/api/status"): {SUPERVISOR},
    ("GET", "/api/me", "/api/me"): STAFF,
    ("POST", "/api/events", "/api/events"): {ING},
    ("POST", "/api/dial", "/api/dial"): STAFF,
    ("GET", "/api/dials/{dial_id}", "/api/dials/d0"): STAFF,
    ("POST", "/api/dials/{dial_id}/hangup", "/api/dials/d0/hangup"): STAFF,
    ("POST", "/api/dials/{dial_id}/events", "/api/dials/d0/events"): {ING},
    ("GET", "/api/contacts", "/api/contacts"): STAFF,
    ("POST", "/api/contacts/import", "/api/contacts/import?dry_run=true"): {SUPERVISOR},
    ("GET", "/api/calls/live", "/api/calls/live"): STAFF,
    ("GET", "/api/pops/recent", "/api/pops/recent"): STAFF,
    ("GET", "/api/missed", "/api/missed"): STAFF,
    ("POST", "/api/missed/{call_id}/done", "/api/missed/c0/done"): STAFF,
    ("GET", "/api/analytics", "/api/analytics"): STAFF,
    ("GET", "/api/analytics/{name}", "/api/analytics/kpis"): STAFF,
    ("GET", "/api/crm/check", "/api/crm/check"): {SUPERVISOR},
    ("POST", "/api/crm/check", "/api/crm/check"): {SUPERVISOR},
    ("POST", "/api/backup", "/api/backup"): {SUPERVISOR},
    ("GET", "/api/backups", "/api/backups"): {SUPERVISOR},
    ("GET", "/api/backups/{name}", "/api/backups/callpop-20261202T120000Z.duckdb"): {SUPERVISOR},
    ("GET", "/metrics", "/metrics"): {SUPERVISOR, MET},
    ("POST", "/api/calls/{call_id}/log", "/api/calls/c0/log"): STAFF,
    ("GET", "/api/calls/{call_id}/log", "/api/calls/c0/log"): STAFF,
    ("GET", "/api/calls/history", "/api/calls/history"): STAFF,
    # agents managed by supervisors (an unknown agent: the repository's agents file is never changed here)
    ("GET", "/api/agents", "/api/agents"): {SUPERVISOR},
    ("POST", "/api/agents", "/api/agents"): {SUPERVISOR},
    ("PATCH", "/api/agents/{agent_id}", "/api/agents/ghost"): {SUPERVISOR},
    ("POST", "/api/agents/{agent_id}/disable", "/api/agents/ghost/disable"): {SUPERVISOR},
    ("POST", "/api/agents/{agent_id}/enable", "/api/agents/ghost/enable"): {SUPERVISOR},
    ("POST", "/api/agents/{agent_id}/token", "/api/agents/ghost/token"): {SUPERVISOR},
    ("POST", "/api/agents/{agent_id}/signin-code", "/api/agents/ghost/signin-code"): {SUPERVISOR},
    ("GET", "/api/agents/changes", "/api/agents/changes"): {SUPERVISOR},
    # a one-time code is the credential: no bearer (throttled per client)
    ("POST", "/api/signin", "/api/signin"): ANYONE,
    ("GET", "/signin", "/signin"): ANYONE,
    # the sample CRM (demo and tests only: CALLPOP_SAMPLE_CRM) is a CRM: it has no tokens
    ("GET", "/crm/lookup", "/crm/lookup?phone=0722776772"): ANYONE,
    ("GET", "/crm/contacts/{contact_id}", "/crm/contacts/c1"): ANYONE,
    ("GET", "/crm/search", "/crm/search?phone=1"): ANYONE,
    ("GET", "/crm/new", "/crm/new"): ANYONE,
    ("POST", "/crm/log", "/crm/log"): ANYONE,
    ("GET", "/crm/calls/{call_id}", "/crm/calls/c0"): ANYONE,
    # the packed extension for Chrome's force-install policy (CALLPOP_EXTENSION_DIR): Chrome has no token
    ("GET", "/extension/{name}", "/extension/updates.xml"): ANYONE,
    # the API's own description
    ("GET", "/openapi.json", "/openapi.json"): ANYONE,
    ("GET", "/docs", "/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect"): ANYONE,
    ("GET", "/redoc", "/redoc"): ANYONE,
}


def _declared(routes) -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (the sample CRM)
            found |= _declared(route.original_router.routes)
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_every_route_of_the_hub_is_in_the_matrix(hub):
    declared = _declared(hub.app.routes)
    assert declared == {(m, p) for m, p, _ in MATRIX}, "a route without a row in the roles matrix"


@pytest.mark.parametrize("method, declared, path", list(MATRIX), ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_each_role_is_allowed_or_refused_as_the_matrix_says(hub, method, declared, path):
    for role, token in BEARER.items():
        # An empty body: an allowed caller gets past the role check to validation (422) or an
        # answer; a refused one never gets that far.
        r = api(hub, method, path, token, **({"json": {}} if method in ("POST", "PATCH") else {}))
        assert r.headers["content-type"].startswith(("application/json", "text/html", "text/plain; version=")), r.text
        if role in MATRIX[(method, declared, path)]:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        elif role == NOBODY:
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", (role, r.text)
        else:
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (role, r.text)
            assert token not in r.text


@pytest.mark.parametrize("role", list(BEARER))
def test_the_websocket_signs_in_agents_and_supervisors_only(hub, role):
    if role in STAFF:
        who = Agent(hub, BEARER[role])
        assert who.welcome["agent"]["role"] == role
        who.send({"type": "ping"})
        assert who.recv("pong")
        who.send({"type": "subscribe_all"})  # no such message, for any role
        assert who.recv("error")["code"] == "unknown_type"
        who.close()
        return
    with connect(hub.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "hello", "token": BEARER[role]}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401


def test_an_agent_sees_only_their_own_figures_a_supervisor_the_team(hub):
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    for call_id, caller, ext in (("own-1", "0722776772", "201"), ("avi-1", "0509999991", "202"),
                                 ("avi-2", "0509999992", "202")):
        assert post_event(hub, call_id=call_id, type="ringing", caller=caller, extension=ext).status_code == 202
    noa.recv("pop"), avi.recv("pop"), avi.recv("pop")
    wait_rows(hub, "SELECT * FROM pops WHERE sessions > 0", n=3)
    wait_rows(hub, "SELECT * FROM lookups", n=3)

    def figures(token, name, **params):
        r = api(hub, "GET", f"/api/analytics/{name}", token, params={"start": "2000-01-01", **params})
        assert r.status_code == 200, r.text
        return r.json()["records"]

    assert [row["agent_id"] for row in figures(TOKENS["noa"], "pops_by_agent")] == ["noa"]
    assert sorted(row["agent_id"] for row in figures(TOKENS["dana"], "pops_by_agent")) == ["avi", "noa"]
    assert figures(TOKENS["noa"], "kpis")[0]["calls"] == 1 and figures(TOKENS["noa"], "kpis")[0]["lookups"] == 1
    assert figures(TOKENS["dana"], "kpis")[0]["lookups"] == 3
    # Callers' numbers: an agent's list holds only the numbers of their own calls.
    numbers = {row["number"] for row in figures(TOKENS["noa"], "failing_numbers", min_lookups=1)}
    assert not numbers & {"+972509999991", "+972509999992"}
    assert {row["number"] for row in figures(TOKENS["dana"], "failing_numbers", min_lookups=1)} >= {
        "+972509999991", "+972509999992"}
    assert {row["table"]: row["rows"] for row in figures(TOKENS["noa"], "coverage")}["rejects"] == 0
    noa.close(), avi.close()


# --- the Host check and the sample CRM

def test_a_host_the_hub_does_not_answer_to_gets_400_in_json(hub):
    r = httpx.get(f"{hub.url}/healthz", headers={"Host": "rebound.example.com"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "bad_host"
    assert httpx.get(f"{hub.url}/healthz", headers={"Host": f"localhost:{hub.settings.port}"}).status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        connect(hub.ws_url, open_timeout=5, additional_headers={"Host": "rebound.example.com"})
    assert refused.value.response.status_code == 400


def test_allowed_hosts_and_the_public_url_add_names(start_hub):
    hub = start_hub(allowed_hosts="pbx.internal", public_url="https://callpop.example.com")
    url = f"http://127.0.0.1:{hub.settings.port}/healthz"  # the public URL's name does not resolve here
    for host in ("pbx.internal", "callpop.example.com", "127.0.0.1"):
        assert httpx.get(url, headers={"Host": host}, timeout=5).status_code == 200, host
    assert httpx.get(url, headers={"Host": "other.example"}, timeout=5).status_code == 400


def test_pop_urls_come_from_the_settings_never_from_the_request_host(start_hub):
    hub = start_hub(public_url="http://callpop.test:1234", allowed_hosts="localhost")
    r = httpx.get(f"http://127.0.0.1:{hub.settings.port}/crm/lookup", params={"phone": "0722776772"},
                  headers={"Host": f"localhost:{hub.settings.port}"}, timeout=5)
    assert r.json()["URL"].startswith("http://callpop.test:1234/crm/contacts/")


def test_the_sample_crm_is_served_only_when_turned_on(start_hub, tmp_path):
    hub = start_hub(sample_crm=False, crm_url="http://127.0.0.1:9/lookup")
    assert httpx.get(f"{hub.url}/crm/lookup", params={"phone": "0722776772"}, timeout=5).status_code == 404


def _serve(env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    """``python -m pipelines serve`` with only these CALLPOP_* settings: one that refuses to start."""
    return subprocess.run([sys.executable, "-m", "pipelines", "serve"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", "CALLPOP_PORT": "0", **env})


@pytest.mark.parametrize("env, said", [
    ({}, "no CRM: set CALLPOP_CRM_URL"),
    ({"CALLPOP_HOST": "0.0.0.0", "CALLPOP_CRM_URL": "http://127.0.0.1:9/"}, "demo's public tokens"),
    ({"CALLPOP_HOST": "0.0.0.0", "CALLPOP_SAMPLE_CRM": "true", "CALLPOP_AGENTS_CSV": "{own}"}, "CALLPOP_SAMPLE_CRM"),
])
def test_a_hub_that_must_not_start_says_why_in_one_line(tmp_path, env, said):
    own = tmp_path / "agents.csv"
    own.write_text("id,name,token,extension,mobile,home\nnoa,Noa,a-long-private-token,201,,\n", encoding="utf-8")
    env = {"CALLPOP_DB_PATH": str(tmp_path / "x.duckdb"), **{k: v.format(own=own) for k, v in env.items()}}
    done = _serve(env)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# --- tokens

def test_a_new_token_is_shown_once_and_only_its_digest_is_kept(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text((ROOT / "data" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipelines", "agents", "token", "noa", "--file", str(agents)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert len(token) >= 32 and token not in agents.read_text(encoding="utf-8")
    assert "sha256:" in agents.read_text(encoding="utf-8")
    hub = start_hub(agents_csv=str(agents))
    assert api(hub, "GET", "/api/me", token).json()["id"] == "noa"
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).status_code == 401  # the old one stopped working
    assert api(hub, "GET", "/api/me", TOKENS["avi"]).json()["id"] == "avi"  # the others untouched


def test_hashing_the_file_keeps_every_token_working(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text("id,name,token,extension,mobile,home\nnoa,Noa,private-noa-1,201,,\nave,Ave,private-ave-2,202,,\n",
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pipelines", "agents", "hash", "--file", str(agents)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "2 plaintext" in done.stdout, done.stderr
    assert "private-" not in agents.read_text(encoding="utf-8")
    hub = start_hub(agents_csv=str(agents))
    assert api(hub, "GET", "/api/me", "private-ave-2").json()["id"] == "ave"


def test_an_unknown_role_or_a_reused_id_stops_the_hub_with_the_line(tmp_path):
    for rows, said in (("noa,Noa,t1,201,,,Supervisor\n", None), ("noa,Noa,t1,201,,,boss\n", "role 'boss'"),
                       ("noa,Noa,t1,201,,,agent\nnoa,Noa 2,t2,202,,,agent\n", "already used")):
        agents = tmp_path / "agents.csv"
        agents.write_text("id,name,token,extension,mobile,home,role\n" + rows, encoding="utf-8")
        done = _serve({"CALLPOP_DB_PATH": str(tmp_path / "x.duckdb"), "CALLPOP_AGENTS_CSV": str(agents),
                       "CALLPOP_HOST": "0.0.0.0"})
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        # "Supervisor" is a supervisor (roles are case-blind): it gets as far as the CRM check
        assert (said or "no CRM") in done.stderr, done.stderr


def test_no_token_is_logged_at_any_level(start_hub, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("", "uvicorn", "uvicorn.error", "websockets.server", "callpop"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("websockets.client").setLevel(logging.INFO)  # this test's own client, not the hub
    hub = start_hub(log_level="DEBUG")
    noa = Agent(hub, TOKENS["noa"])
    noa.send({"type": "ping"})
    noa.recv("pong")
    noa.close()
    api(hub, "GET", "/api/me", TOKENS["avi"])
    api(hub, "GET", "/api/status", TOKENS["avi"])  # refused: logged as a reject
    api(hub, "GET", "/api/me", "a-wrong-token-123")
    post_event(hub, call_id="log-1", type="hangup")
    with connect(hub.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "hello", "token": "another-wrong-token-456"}))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert caplog.records, "nothing was logged at DEBUG: the test would prove nothing"
    for secret in (TOKENS["noa"], TOKENS["avi"], "a-wrong-token-123", INGEST, "another-wrong-token-456"):
        assert secret not in caplog.text, secret
    rejects = hub.hub.store.query("SELECT * FROM rejects").to_csv()
    assert "a-wrong-token-123" not in rejects and "another-wrong-token-456" not in rejects
