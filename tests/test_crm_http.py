"""The hub's outgoing HTTP against CRMs that misbehave on the wire: real servers on port 0 that
send a second answer after the first, an idle 408, 103 Early Hints, 20,000 headers, a redirect
to another origin; a proxy from the environment and a private CA. Every pop shows its own
caller, every lookup the right outcome, and the CRM credential goes to the CRM only."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

from pipelines import http_client
from pipelines.crm import client_for
from tests.support.crm import contract
from tests.support.hub import TOKENS, Agent, hub_settings, post_event
from tests.support.rawhttp import RawServer, Request, response

CREDENTIAL = "X-Api-Key: s3cret-key"
NAMES = {"0501110001": "Ada One", "0501110002": "Ben Two", "0501110003": "Cy Three", "0501110004": "Di Four"}


def ring(hub, call_id, caller):
    assert post_event(hub, call_id=call_id, type="ringing", caller=caller, extension="201").status_code == 202


def lookup(settings, url, phone="0501110001", auth_header=""):
    """One lookup through the hub's own client, as the hub makes it."""
    async def go():
        async with http_client.client(settings) as http:
            return await client_for(settings, http, url, auth_header=auth_header).fetch(phone)
    return asyncio.run(go())


def test_a_crm_that_answers_twice_never_puts_one_callers_record_on_the_next_pop(start_hub):
    # A buggy page sends a second, stale answer after the first one on the same connection.
    def answer(req: Request):
        first = response(contract(NAMES[req.phone]))
        return first + response(contract("Stale Stranger")), True

    with RawServer(answer) as crm:
        hub = start_hub(crm_url=crm.url, crm_cache_ttl_s=0)
        noa = Agent(hub, TOKENS["noa"])
        for i, phone in enumerate(NAMES):
            ring(hub, f"stray-{i}", phone)
            pop = noa.recv("pop", where=lambda m, i=i: m["call_id"] == f"stray-{i}")
            assert (pop["status"], pop["name"]) == ("found", NAMES[phone])
        assert crm.connections == len(NAMES)  # no answer is ever read off a connection used before


def test_an_idle_408_from_a_proxy_does_not_fail_the_next_lookup(start_hub):
    def answer(req: Request):
        return response(contract(NAMES[req.phone])), True

    def idle_408(conn: socket.socket, req: Request):
        time.sleep(0.1)  # what a proxy sends on a kept connection that sat idle, then closes
        conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    with RawServer(answer, after=idle_408) as crm:
        hub = start_hub(crm_url=crm.url, crm_cache_ttl_s=0)
        noa = Agent(hub, TOKENS["noa"])
        for i, phone in enumerate(list(NAMES)[:2]):
            ring(hub, f"idle-{i}", phone)
            pop = noa.recv("pop", where=lambda m, i=i: m["call_id"] == f"idle-{i}")
            assert (pop["status"], pop["name"]) == ("found", NAMES[phone])
            time.sleep(0.3)


def test_a_redirect_to_another_origin_is_followed_without_the_credential(start_hub):
    with RawServer(lambda req: (response(contract(NAMES[req.phone])), False)) as elsewhere:
        def answer(req: Request):
            return response(b"", "302 Found", f"Location: {elsewhere.url}?phone={req.phone}"), False

        with RawServer(answer) as crm:
            hub = start_hub(crm_url=crm.url, crm_auth_header=CREDENTIAL)
            noa = Agent(hub, TOKENS["noa"])
            ring(hub, "redir-1", "0501110001")
            pop = noa.recv("pop")
            assert (pop["status"], pop["name"]) == ("found", "Ada One")
            assert crm.requests[0].headers["x-api-key"] == "s3cret-key"  # the CRM itself gets it
            assert "x-api-key" not in elsewhere.requests[0].headers
            assert not any(b"s3cret" in r.head for r in elsewhere.requests)


def test_a_redirect_within_the_crm_keeps_the_credential_and_a_loop_is_cut(hub_settings_for):
    def answer(req: Request):
        if req.path == "/lookup":
            return response(b"", "301 Moved Permanently", f"Location: /v2/lookup?phone={req.phone}"), False
        if req.path == "/loop":
            return response(b"", "302 Found", "Location: /loop"), False
        return response(contract("Ada One")), False

    with RawServer(answer) as crm:
        settings = hub_settings_for()
        result = lookup(settings, crm.url, auth_header=CREDENTIAL)
        assert (result.outcome, result.name) == ("found", "Ada One")
        assert [r.headers.get("x-api-key") for r in crm.requests] == ["s3cret-key", "s3cret-key"]
        looped = lookup(settings, crm.origin + "/loop")
        assert looped.outcome == "http_error" and "redirect" in looped.error
        assert len(crm.requests) == 2 + 1 + http_client.MAX_REDIRECTS


def test_early_hints_then_the_answer_gives_the_answer(hub_settings_for):
    def answer(req: Request):
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        return hints + response(contract("Ada One")), False

    with RawServer(answer) as crm:
        result = lookup(hub_settings_for(), crm.url)
        assert (result.outcome, result.http_status, result.name) == ("found", 200, "Ada One")


def test_twenty_thousand_headers_are_refused_and_the_next_lookup_is_fine(hub_settings_for):
    def answer(req: Request):
        if req.phone == "0501110001":
            flood = [f"X-Flood-{i}: {i}" for i in range(20_000)]
            return response(contract("Never Shown"), "200 OK", *flood), False
        return response(contract("Ben Two")), False

    with RawServer(answer) as crm:
        settings = hub_settings_for()
        flooded = lookup(settings, crm.url, "0501110001")
        assert flooded.outcome == "http_error" and flooded.name == ""
        assert lookup(settings, crm.url, "0501110002").name == "Ben Two"


def test_head_requests_complete_on_the_hubs_client(hub_settings_for):
    with RawServer(lambda req: (response(b"", "200 OK", "Content-Length: 1234", length=False), True)) as server:
        async def go():
            async with http_client.client(hub_settings_for()) as http:
                return await asyncio.wait_for(http.head(server.url), 5)
        assert asyncio.run(go()).status_code == 200


def test_a_header_value_with_a_line_break_never_reaches_the_wire(hub_settings_for):
    with RawServer(lambda req: (response(contract("Ada One")), False)) as crm:
        result = lookup(hub_settings_for(), crm.url, auth_header="X-Api-Key: k\r\nX-Evil: injected")
        assert result.outcome == "http_error"
        assert not any(b"X-Evil" in r.head for r in crm.requests)


def test_a_proxy_from_the_environment_carries_the_lookups(hub_settings_for, monkeypatch):
    # An HTTP proxy answers for the CRM, whose name does not resolve here: only the proxy can reach it.
    with RawServer(lambda req: (response(contract("Via Proxy")), False)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.origin)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        result = lookup(hub_settings_for(), "http://crm.callpop.invalid/lookup")
        assert (result.outcome, result.name) == ("found", "Via Proxy")
        assert proxy.requests[0].target.startswith("http://crm.callpop.invalid/lookup?phone=")


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    """A certificate for 127.0.0.1 signed by nobody the system trusts: (server context, its PEM)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test server's certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=callpop test CA", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    return server, d / "cert.pem"


def test_a_private_ca_is_trusted_only_when_configured(hub_settings_for, private_ca):
    server_tls, pem = private_ca
    with RawServer(lambda req: (response(contract("Ada One")), False), tls=server_tls) as crm:
        refused = lookup(hub_settings_for(), crm.url)
        assert refused.outcome == "http_error" and "certificate" in refused.error.lower()
        trusted = lookup(hub_settings_for(ca_bundle=str(pem)), crm.url)
        assert (trusted.outcome, trusted.name) == ("found", "Ada One")


def test_a_credential_with_a_line_break_stops_the_hub_at_start_with_the_setting_named(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CALLPOP_PORT": "0", "CALLPOP_DB_PATH": str(tmp_path / "x.duckdb"),
           "CALLPOP_CRM_AUTH_HEADER": "X-Api-Key: k\nX-Evil: 1"}
    done = subprocess.run([sys.executable, "-m", "pipelines", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "CALLPOP_CRM_AUTH_HEADER" in done.stderr and "X-Evil" not in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def hub_settings_for(tmp_path):
    return lambda **overrides: hub_settings(tmp_path, **overrides)


def test_many_lookups_at_once_each_get_their_own_answer(hub_settings_for):
    # Concurrency on one client: every answer belongs to its request.
    def answer(req: Request):
        time.sleep(0.01)
        return response(contract(f"Caller {req.phone}")), True

    with RawServer(answer) as crm:
        settings = hub_settings_for()

        async def go():
            async with http_client.client(settings) as http:
                client = client_for(settings, http, crm.url)
                return await asyncio.gather(*(client.fetch(f"05099{i:05d}") for i in range(60)))
        results = asyncio.run(go())
        assert [r.name for r in results] == [f"Caller 05099{i:05d}" for i in range(60)]


