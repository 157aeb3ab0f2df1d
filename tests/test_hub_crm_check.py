"""POST /api/crm/check: the supervisor's CRM check on the real hub, against real HTTP servers on
port 0. Only public addresses, or the configured CRM itself, may be asked; every redirect hop is
checked again; the CRM credential never leaves the configured CRM's origin."""

from __future__ import annotations

import ipaddress
import json

import pytest

from pipelines.crmcheck import refused_because
from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, api

SEED = {"STATUS": "OK", "URL": "https://crm.example.com/c/1", "CLIENTNAME": "John Doe", "TOTAL": "1",
        "COMPANY": "Voicenter"}
SECRET = "Authorization: Bearer crm-secret-123"


def check(hub, url: str = "", phone: str = "0722776772", token: str = "dana", **body):
    return api(hub, "POST", "/api/crm/check", TOKENS.get(token, token), json={"url": url, "phone": phone, **body})


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def verdicts(report: dict) -> dict:
    return {r["rule"]: r["passed"] for r in report["rules"]}


# --- who may ------------------------------------------------------------------------------------

def test_only_supervisors_may_run_the_check(hub):
    for method, path in (("POST", "/api/crm/check"), ("GET", "/api/crm/check")):
        r = api(hub, method, path, TOKENS["noa"], json={"phone": "0722776772"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert api(hub, method, path, json={"phone": "0722776772"}).status_code == 401
    assert api(hub, "GET", "/api/crm/check", TOKENS["dana"]).json()["url"] == f"{hub.url}/crm/lookup"


# --- what it answers ----------------------------------------------------------------------------

def test_the_sample_crm_is_checked_when_no_url_is_given(hub):
    report = ok(check(hub))
    assert report["result"]["outcome"] == "found" and report["result"]["name"] == "John Doe"
    assert report["broken"] == [] and all(verdicts(report).values())
    assert report["request"].startswith(f"GET {hub.url}/crm/lookup?phone=")


def test_a_good_configured_crm_on_loopback_answers(start_hub):
    with FakeCrm() as fake:
        fake.respond("0722776772", SEED)
        fake.respond("+972722776772", SEED)
        hub = start_hub(crm_url=fake.url + "?key=topsecret-42")
        shown = api(hub, "GET", "/api/crm/check", TOKENS["dana"]).json()
        assert shown["configured"] and shown["url"] == fake.url + "?key=%2A%2A%2A"
        report = ok(check(hub, shown["url"], "072-277-6772", phone_format="national"))  # the masked form kept
        assert fake.requests[-1]["key"] == "topsecret-42" and fake.requests[-1]["phone"] == "0722776772"
        assert fake.requests[-1]["header:user-agent"] == "callpop"  # the hub's HTTP client
        assert report["sent_as"] == "0722776772" and report["broken"] == []
        assert report["result"] | {"faults": []} == {
            "outcome": "found", "pop_status": "found", "name": "John Doe", "company": "Voicenter",
            "url": SEED["URL"], "total": 1, "http_status": 200, "error": "", "faults": []}
        assert json.loads(report["answer"]["body"]) == SEED and report["latency_ms"] >= 0
        assert "topsecret-42" not in json.dumps(report)
        e164 = ok(check(hub, fake.url, "0722776772", phone_format="e164"))
        assert e164["sent_as"] == "+972722776772" and "phone=%2B972722776772" in e164["request"]


def test_broken_crms_are_flagged(start_hub):
    with FakeCrm() as fake:
        fake.respond("1", "<html>Server Error</html>", content_type="text/html")
        fake.respond("2", "nope", status=500)
        fake.respond("3", redirect_loop=True)
        fake.respond("4", contract("Slow Sam"), delay=0.4)
        fake.respond("5", "x" * 5000)
        fake.respond("6", {"status": "OK", "URL": "javascript:alert(1)", "CLIENTNAME": "<img src=x>", "TOTAL": "many"})
        hub = start_hub(crm_url=fake.url, crm_deadline_ms=200, crm_late_timeout_ms=2000, crm_max_bytes=1000,
                        crm_phone_format="raw")
        html = ok(check(hub, phone="1"))
        assert html["result"]["outcome"] == "bad_response" and html["broken"] == ["Answer is a JSON object"]
        assert "<html>Server Error</html>" in html["answer"]["body"]
        assert ok(check(hub, phone="2"))["broken"] == ["HTTP status is 2xx"]
        loop = ok(check(hub, phone="3"))
        assert loop["result"]["outcome"] == "http_error" and "redirect" in loop["rules"][0]["reason"]
        assert loop["answer"] is None
        slow = ok(check(hub, phone="4"))
        assert slow["result"]["outcome"] == "found" and slow["broken"] == ["Answers within the deadline (200 ms)"]
        big = ok(check(hub, phone="5"))
        assert big["result"]["outcome"] == "bad_response" and big["broken"] == ["Answer is at most 1000 bytes"]
        bad = ok(check(hub, phone="6"))
        assert set(bad["broken"]) == {"URL is an absolute http(s) URL", "TOTAL is a count", "CLIENTNAME is plain text",
                                      "Field names are in capitals"}
    gone = ok(check(hub, phone="1"))  # the server is gone: connection refused
    assert gone["result"]["outcome"] == "http_error" and "cannot connect" in gone["rules"][0]["reason"]


# --- what it refuses ----------------------------------------------------------------------------

@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/lookup",             # loopback, another port than the configured CRM
    "http://localhost:{port}/lookup",
    "http://2130706433:{port}/lookup",            # 127.0.0.1 as one decimal number
    "http://0x7f.1:{port}/lookup",                # ... in hex and short form
    "http://017700000001:{port}/lookup",          # ... in octal
    "http://[::1]:{port}/lookup",
    "http://[::ffff:127.0.0.1]:{port}/lookup",
    "http://169.254.169.254/latest/meta-data/",   # the cloud metadata service
    "http://10.1.2.3/lookup",
    "http://192.168.1.1/lookup",
    "http://100.64.0.1/lookup",                   # carrier-grade NAT
    "http://0.0.0.0:{port}/lookup",
    "http://224.0.0.1/lookup",
])
def test_internal_targets_are_refused_before_any_request(start_hub, template):
    with FakeCrm() as configured, FakeCrm() as internal:
        hub = start_hub(crm_url=configured.url)
        port = internal.url.split(":")[2].split("/")[0]
        r = check(hub, template.format(port=port))
        assert r.status_code == 422 and r.json()["error"] == "target_refused", r.text
        assert "refused" in r.json()["message"]
        assert internal.requests == [] and configured.requests == []


def test_the_sample_crm_is_the_only_loopback_target_without_a_configured_crm(hub):
    with FakeCrm() as other:
        r = check(hub, other.url)
        assert r.status_code == 422 and r.json()["error"] == "target_refused" and other.requests == []
    assert ok(check(hub, f"{hub.url}/crm/lookup"))["result"]["outcome"] == "found"


def test_a_redirect_is_checked_again_at_each_hop(start_hub):
    with FakeCrm() as configured, FakeCrm() as internal:
        internal.respond("0722776772", SEED)
        configured.respond("0722776772", redirect_to=internal.url + "?phone=0722776772")
        configured.respond("0527654000", redirect_to=configured.url + "?phone=0722776772x")
        configured.respond("0722776772x", SEED)
        hub = start_hub(crm_url=configured.url)
        r = check(hub, phone="0722776772")
        assert r.status_code == 422 and r.json()["error"] == "target_refused", r.text
        assert "redirect 1" in r.json()["message"] and "loopback" in r.json()["message"]
        assert len(configured.requests) == 1 and internal.requests == []
        # A redirect that stays at the configured CRM is followed.
        same = ok(check(hub, phone="0527654000"))
        assert same["redirects"] == 1 and same["result"]["name"] == "John Doe"


def test_the_crm_credential_goes_only_to_the_configured_crms_origin(start_hub):
    with FakeCrm() as fake:
        fake.respond("0722776772", SEED)
        fake.respond("0527654000", redirect_to=fake.url + "?phone=0722776772")
        port = fake.url.split(":")[2].split("/")[0]
        mine = f"http://localhost:{port}/lookup"  # the same server under another origin than 127.0.0.1
        hub = start_hub(crm_url=mine, crm_auth_header=SECRET)
        report = ok(check(hub))
        assert fake.requests[-1]["header:authorization"] == "Bearer crm-secret-123" and report["auth_sent"]
        assert fake.requests[-1]["header:host"] == f"localhost:{port}"  # pinned to the address, named as typed
        # Typed on another origin (the configured CRM's own address, so it may be asked): no credential.
        report = ok(check(hub, fake.url))
        assert "header:authorization" not in fake.requests[-1] and not report["auth_sent"]
        # A redirect from the configured CRM to another origin loses the credential at the hop.
        report = ok(check(hub, mine, "0527654000"))
        first, hop = fake.requests[-2:]
        assert first["header:authorization"] == "Bearer crm-secret-123" and "header:authorization" not in hop
        assert report["redirects"] == 1 and "crm-secret-123" not in json.dumps(report)


def test_a_url_that_is_not_http_is_refused(hub):
    r = check(hub, "file:///etc/passwd")
    assert r.status_code == 422 and "http://" in r.json()["message"]
    assert check(hub, phone_format="weird").status_code == 422


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::7f00:1", "loopback"),
    ("169.254.169.254", "metadata"), ("fe80::1", "link-local"), ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("fd12::1", "private"), ("172.16.0.1", "private"), ("192.0.2.1", "private"),
])
def test_which_addresses_are_refused(address, why):
    assert why in (refused_because(ipaddress.ip_address(address)) or "public")


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "100.128.0.1"])
def test_public_addresses_pass(address):
    assert refused_because(ipaddress.ip_address(address)) is None
