"""deploy/ as a server runs it: Debian's caddy with deploy/Caddyfile (certificates from its internal
CA instead of Let's Encrypt, on loopback ports) in front of a real hub and a real console, both
started by the systemd units' own command lines with deploy/callpop.env.example as their settings
file, from a working directory that is not the checkout. Through TLS: the API, a pop over wss://,
the console's page and its socket, the packed extension; and an access log without ?key= secrets.

Under CI=true caddy must be there (make test installs it): missing, the test fails; elsewhere it
is skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.deploy.running import exec_start, start_caddy, stop, trusting, wait_serving
from tests.support import ROOT, free_port, wait_until
from tests.support.hub import TOKENS
from tests.support.procs import Proc

INGEST = "deploy-test-ingest-token"
VOICENTER_KEY = "voicenter-secret-never-logged"


@pytest.fixture(scope="module")
def extension_dir(tmp_path_factory):
    """A packed extension, signed with a key made for this test, as the hub's CALLPOP_EXTENSION_DIR."""
    tmp = tmp_path_factory.mktemp("extension")
    key = tmp / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return tmp, key


@pytest.fixture(scope="module")
def deployed(caddy_path, tmp_path_factory, extension_dir):
    """Caddy, the hub and the console as the units run them; yields the sites and what to trust."""
    tmp = tmp_path_factory.mktemp("deploy")
    elsewhere = tmp / "cwd"  # the units' WorkingDirectory=/ : nothing is found relative to it
    elsewhere.mkdir()
    hub_site, console_site = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    hub_url, console_url = f"https://{hub_site}", f"https://{console_site}"
    shutil.copy(ROOT / "data" / "contacts.csv", tmp / "contacts.csv")
    (tmp / "agents.csv").write_text("id,name,token,extension,mobile,home,role\n"
                                    f"noa,Noa Levi,{TOKENS['noa']},201,,,agent\n"
                                    f"dana,Dana Cohen,{TOKENS['dana']},209,,,supervisor\n")
    packed, key = extension_dir
    subprocess.run(["node", str(ROOT / "extension" / "tools" / "package.js"), "--key", str(key), "--hub-url", hub_url,
                    "--out", str(packed / "out")], check=True, capture_output=True, cwd=elsewhere)
    hub_port, console_port = free_port(), free_port()
    # The environment wins over the settings file: only what a test machine must change. The sample
    # CRM is looked up on loopback (through Caddy, the hub would need to trust Caddy's test CA).
    env = {"PYTHONPATH": str(ROOT), "CALLPOP_PORT": str(hub_port), "CALLPOP_PUBLIC_URL": hub_url,
           "CALLPOP_DB_PATH": str(tmp / "callpop.duckdb"), "CALLPOP_AGENTS_CSV": str(tmp / "agents.csv"),
           "CALLPOP_CONTACTS_CSV": str(tmp / "contacts.csv"), "CALLPOP_EXTENSION_DIR": str(packed / "out"),
           "CALLPOP_PROVIDER": "sim", "CALLPOP_SIM_CALLS_PER_MINUTE": "0", "CALLPOP_INGEST_TOKEN": INGEST,
           "CALLPOP_CRM_URL": f"http://127.0.0.1:{hub_port}/crm/lookup", "CALLPOP_SAMPLE_CRM": "true", "CALLPOP_CONSOLE_PORT": str(console_port),
           "PYTHONASYNCIODEBUG": ""}
    procs = []
    try:
        hub = Proc(exec_start("callpop-hub.service"), env=env, name="hub", cwd=elsewhere)
        procs.append(hub)
        env["CALLPOP_HUB_URL"] = hub.url
        console = subprocess.Popen(exec_start("callpop-console.service"), cwd=elsewhere,
                                   env={**os.environ, **env, "HOME": str(tmp)},
                                   stdout=(tmp / "console.log").open("w"), stderr=subprocess.STDOUT)
        procs.append(console)
        access_log = tmp / "log" / "access.log"
        access_log.parent.mkdir()
        caddy, root = start_caddy(tmp, "Caddyfile", elsewhere, {
            "CALLPOP_HUB_SITE": f"https://{hub_site}", "CALLPOP_CONSOLE_SITE": f"https://{console_site}",
            "CALLPOP_HUB_UPSTREAM": hub.url.split("//")[1], "CALLPOP_CONSOLE_UPSTREAM": f"127.0.0.1:{console_port}",
            "CALLPOP_ACCESS_LOG": str(access_log)})
        procs.append(caddy)
        wait_serving(caddy, hub_url, root, "/healthz", tmp / "caddy.log", 30)
        wait_serving(console, console_url, root, "/_stcore/health", tmp / "console.log", 60)
        yield {"hub": hub_url, "console": console_url, "root": root, "access_log": access_log, "hub_proc": hub,
               "extension": packed / "out"}
    finally:
        stop(procs)


def test_an_agent_signed_in_with_a_one_time_code_gets_a_pop_over_wss_through_caddy(deployed):
    hub, root = deployed["hub"], deployed["root"]
    with httpx.Client(base_url=hub, verify=trusting(root), timeout=10) as http:
        made = http.post("/api/agents/noa/signin-code", headers={"Authorization": f"Bearer {TOKENS['dana']}"})
        assert made.status_code == 200 and made.json()["link"].startswith(f"{hub}/signin#code="), made.text
        signed = http.post("/api/signin", json={"code": made.json()["code"]})
        assert signed.status_code == 200, signed.text
        token = signed.json()["token"]  # what the extension's options page keeps
        me = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["name"] == "Noa Levi", me.text
        assert http.get("/api/me").status_code == 401
        time.sleep(1.1)  # one try a second per client address (CALLPOP_SIGNIN_TRY_EVERY_S), told apart through Caddy
        assert http.post("/api/signin", json={"code": made.json()["code"]}).status_code == 410  # once only
        with connect(hub.replace("https://", "wss://") + "/ws", ssl=trusting(root), open_timeout=10) as ws:
            ws.send(json.dumps({"type": "hello", "token": token, "client": "deploy-test"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
            r = http.post("/api/events", headers={"Authorization": f"Bearer {INGEST}"},
                          json={"call_id": "tls-1", "type": "ringing", "caller": "0722776772", "extension": "201"})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 10
            while (message := json.loads(ws.recv(timeout=deadline - time.monotonic())))["type"] != "pop":
                pass
            assert message["call_id"] == "tls-1" and message["name"] == "John Doe", message
            # The hub names itself by its public address (CALLPOP_PUBLIC_URL), not the one it listens on.
            assert message["url"].startswith(f"{hub}/crm/contacts/"), message
    # Plain http to the TLS port is not served: only https reaches the hub through Caddy.
    with pytest.raises(httpx.HTTPError):
        httpx.get(hub.replace("https://", "http://") + "/healthz", timeout=5).raise_for_status()


def test_the_console_through_caddy(deployed):
    console, root = deployed["console"], deployed["root"]
    page = httpx.get(console + "/", verify=trusting(root), timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<noscript>" in page.text or "streamlit" in page.text.lower()
    # The console's own socket (Streamlit's) gets its upgrade through the proxy too.
    host = console.split("//")[1]
    with connect(f"wss://{host}/_stcore/stream", ssl=trusting(root), open_timeout=10,
                 subprotocols=["streamlit"], origin=console) as ws:
        assert ws.subprotocol == "streamlit"


def test_the_hub_serves_the_packed_extension_through_caddy(deployed):
    hub, root = deployed["hub"], deployed["root"]
    manifest = json.loads((ROOT / "extension" / "manifest.json").read_text())
    updates = httpx.get(hub + "/extension/updates.xml", verify=trusting(root), timeout=10)
    assert updates.status_code == 200 and updates.headers["content-type"].startswith("application/xml")
    codebase = f"{hub}/extension/callpop-{manifest['version']}.crx"
    assert f"codebase='{codebase}'" in updates.text and f"version='{manifest['version']}'" in updates.text
    crx = httpx.get(codebase, verify=trusting(root), timeout=10)
    assert crx.status_code == 200 and crx.content[:8] == b"Cr24\x03\x00\x00\x00"  # CRX version 3
    assert crx.content == (deployed["extension"] / f"callpop-{manifest['version']}.crx").read_bytes()
    (deployed["extension"] / "key.pem").write_text("an admin's key copied here by mistake")
    for name in ("key.pem", f"callpop-{manifest['version']}.zip"):
        refused = httpx.get(f"{hub}/extension/{name}", verify=trusting(root), timeout=10)
        assert refused.status_code == 404 and refused.json()["error"] == "not_found", name
    outside = httpx.get(f"{hub}/extension/%2e%2e%2fkey.pem", verify=trusting(root), timeout=10)
    assert outside.status_code == 404 and outside.json()["error"] in ("not_found", "http_404")


def test_the_access_log_keeps_no_secret_of_the_query(deployed):
    hub, root, log = deployed["hub"], deployed["root"], deployed["access_log"]
    httpx.get(f"{hub}/voicenter/popup?key={VOICENTER_KEY}&phone=0722776772&token=t0k3n-in-a-url",
              verify=trusting(root), timeout=10)

    def line():
        for text in log.read_text().splitlines() if log.is_file() else ():
            entry = json.loads(text)
            if entry.get("request", {}).get("uri", "").startswith("/voicenter/popup"):
                return entry
        return None

    entry = wait_until(line, 10, what="the access log line of the request")
    assert entry["request"]["uri"] == "/voicenter/popup?phone=0722776772", entry["request"]["uri"]
    written = log.read_text()
    assert VOICENTER_KEY not in written and "t0k3n-in-a-url" not in written
    assert TOKENS["noa"] not in written and INGEST not in written, "Authorization headers are not logged"
