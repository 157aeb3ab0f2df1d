"""The Voicenter provider on its real wire formats, against the real hub: every pop-up request
shape, the CDR sample, every Click2Call ERRORCODE (a local server speaking the documented API)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines import settings as settings_mod
from pipelines.dial import DialPlan, DialRefused
from pipelines.providers import peers
from pipelines.providers.voicenter.wire import (EMPTY_ANSWER, click2call_request, parse_cdr, parse_click2call,
                                                parse_popup)
from tests.providers.voicenterapi import Click2CallApi
from tests.support.crm import FakeCrm, contract
from tests.support.hub import Agent, api, wait_rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "voicenter"
AGENTS = """id,name,token,extension,mobile,home,role,voicenter_user
noa,Noa Levi,tok-noa,201,054-812-4567,,agent,SIPSIP
avi,Avi Cohen,tok-avi,202,,,agent,KGpK4iWq
sarah,Sarah Miller,tok-sarah,203,,,agent,
dana,Dana Katz,tok-dana,205,,,supervisor,
"""
# Voicenter's documented JSON pop-up (Ringing phase), as its cloud sends it.
RINGING_JSON = {
    "phone": "972722776772", "callerName": "Queue Testing", "ivrid": "20220916103546022555eb61e755c08a",
    "extenUser": "KGpK4iWq", "did": "0776707528", "status": "Ringing", "direction": "Incoming",
    "recordFile": "20220916103546022555eb61e755c08a-agent-972722776772-0776707528.mp3", "isMuted": False,
    "callStarted": 1663324548, "isAnswered": False, "callAnswered": 0,
    "currentCall": {"callStarted": 1663324548, "callAnswered": 0, "answered": 0, "callername": "Queue Testing",
                    "callerphone": "972722776772", "callstatus": "Ringing", "direction": "Incoming",
                    "ivrid": "20220916103546022555eb61e755c08a", "did": "0776707528",
                    "originalCallerID": "0722776772", "isInternal": False}}


@pytest.fixture
def voicenter_hub(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text(AGENTS)

    def start(**overrides):
        return start_hub(provider="voicenter", agents_csv=str(agents), **overrides)
    return start


def popup_get(hub, **params):
    return httpx.get(f"{hub.url}/voicenter/popup", params=params, timeout=10)


def popup_json(hub, body, key=None):
    return httpx.post(f"{hub.url}/voicenter/popup", json=body, params={"key": key} if key else None, timeout=10)


def cdr(hub, body, key=None):
    return httpx.post(f"{hub.url}/voicenter/cdr", content=body if isinstance(body, (str, bytes)) else json.dumps(body),
                      headers={"Content-Type": "application/json"}, params={"key": key} if key else None, timeout=10)


# --- pop-up requests, every shape
def test_get_with_statuscall_answers_the_contract_and_pops_the_extension(voicenter_hub):
    hub = voicenter_hub()
    noa = Agent(hub, "tok-noa")
    r = popup_get(hub, phone="0722776772", ivrid="202010111sdsd3684752bcb3d", extenUser="SIPSIP",
                  did="0722776773", statusCall="Ringing")
    assert r.status_code == 200
    assert r.json() == {"STATUS": "OK", "URL": f"{hub.url}/crm/contacts/c0001", "CLIENTNAME": "John Doe",
                        "TOTAL": 1, "COMPANY": "Voicenter"}
    pop = noa.recv("pop")
    assert (pop["call_id"], pop["name"], pop["extension"], pop["did"]) == \
        ("202010111sdsd3684752bcb3d", "John Doe", "201", "0722776773")
    row = wait_rows(hub, "SELECT * FROM calls WHERE call_id = ?", ["202010111sdsd3684752bcb3d"]).iloc[0]
    assert (row.provider, row.extension, row.agent_id) == ("voicenter", "201", "noa")


def test_post_form_with_status_is_the_same_request(voicenter_hub):
    hub = voicenter_hub()
    noa = Agent(hub, "tok-noa")
    r = httpx.post(f"{hub.url}/voicenter/popup", data={"phone": "0722776772", "ivrid": "form-1", "extenUser": "201",
                                                       "did": "0722776773", "status": "Ringing"})
    assert r.json()["CLIENTNAME"] == "John Doe"
    assert noa.recv("pop")["call_id"] == "form-1"  # extenUser may also be the extension itself


def test_post_json_phases_ring_answer_and_hang_up(voicenter_hub):
    hub = voicenter_hub()
    avi = Agent(hub, "tok-avi")
    r = popup_json(hub, RINGING_JSON)
    assert r.json()["CLIENTNAME"] == "John Doe"  # Voicenter's 972... form of 0722776772
    pop = avi.recv("pop")
    assert (pop["phone"], pop["extension"]) == ("072-277-6772", "202")
    talking = {**RINGING_JSON, "status": "Talking", "isAnswered": True, "callAnswered": 1663324555}
    assert popup_json(hub, talking).json()["CLIENTNAME"] == "John Doe"  # later phases repeat what is known
    assert avi.recv("call")["state"] == "answered"
    assert popup_json(hub, {**talking, "status": "Hangup", "cause": "Normal hangup"}).status_code == 200
    assert avi.recv("call")["state"] == "ended"
    row = wait_rows(hub, "SELECT * FROM calls WHERE status = 'ended'").iloc[0]
    assert (row.answered_by, row.hangup_cause) == ("202", "Normal hangup")
    assert row.started_at <= row.answered_at <= row.ended_at  # stamped as the phases arrived
    assert len(wait_rows(hub, "SELECT * FROM lookups")) == 1


def test_ring_group_pops_each_extension_one_lookup_and_clears_the_others(voicenter_hub):
    with FakeCrm() as crm:
        crm.respond("0545550123", contract("Dana Ring", "Group Ltd"))
        hub = voicenter_hub(crm_url=crm.url)
        noa, avi = Agent(hub, "tok-noa"), Agent(hub, "tok-avi")
        base = {"phone": "0545550123", "ivrid": "rg-1", "did": "0722776773"}
        for user in ("SIPSIP", "KGpK4iWq"):
            assert popup_get(hub, **base, extenUser=user, statusCall="Ringing").json()["CLIENTNAME"] == "Dana Ring"
        assert noa.recv("pop")["name"] == avi.recv("pop")["name"] == "Dana Ring"
        popup_get(hub, **base, extenUser="KGpK4iWq", statusCall="Answer")
        assert noa.recv("call")["state"] == "answered_elsewhere"
        assert avi.recv("call")["state"] == "answered"
        assert crm.lookups_of("0545550123") == 1


def test_a_late_crm_gets_voicenter_the_empty_answer_in_time_and_the_pop_updates(voicenter_hub):
    with FakeCrm() as crm:
        crm.respond("0545550199", contract("Slow Sam", "Tortoise Ltd"), delay=0.8)
        hub = voicenter_hub(crm_url=crm.url, crm_deadline_ms=250)
        noa = Agent(hub, "tok-noa")
        started = time.monotonic()
        r = popup_get(hub, phone="0545550199", ivrid="slow-1", extenUser="SIPSIP", did="0722776773", statusCall="Ringing")
        took = time.monotonic() - started
        assert r.json() == EMPTY_ANSWER == {"STATUS": "OK", "URL": "", "CLIENTNAME": "", "TOTAL": 0, "COMPANY": ""}
        assert took < 0.7, f"answered after {took:.2f} s"
        assert noa.recv("pop")["status"] == "pending"
        assert noa.recv("pop")["name"] == "Slow Sam"
        row = wait_rows(hub, "SELECT * FROM lookups WHERE late_outcome IS NOT NULL").iloc[0]
        assert (row.outcome, row.late_outcome, row.client_name) == ("timeout", "found", "Slow Sam")
        assert crm.lookups_of("0545550199") == 1


def test_pass_through_a_customers_crm_answer_cleaned_by_the_contract(voicenter_hub):
    with FakeCrm() as crm:
        crm.respond("0722776772", {"STATUS": "OK", "URL": "https://crm.example.com/c?id=7", "CLIENTNAME": "John\nDoe",
                                   "TOTAL": "1", "COMPANY": "Voicenter", "EXTRA": "ignored"})
        crm.respond("0545550123", {"STATUS": "OK", "URL": "javascript:alert(1)", "CLIENTNAME": "Mallory", "TOTAL": 1})
        hub = voicenter_hub(crm_url=crm.url, crm_context_params="did")
        first = popup_get(hub, phone="0722776772", ivrid="pt-1", extenUser="nobody-here", did="0722776773",
                          statusCall="Ringing").json()
        assert first == {"STATUS": "OK", "URL": "https://crm.example.com/c?id=7", "CLIENTNAME": "John Doe",
                         "TOTAL": 1, "COMPANY": "Voicenter"}
        assert crm.requests[0]["phone"] == "0722776772" and crm.requests[0]["did"] == "0722776773"
        second = popup_get(hub, phone="0545550123", ivrid="pt-2", extenUser="nobody-here", statusCall="Ringing").json()
        assert (second["URL"], second["CLIENTNAME"]) == ("", "Mallory")
        faults = wait_rows(hub, "SELECT contract_faults FROM lookups WHERE call_id = 'pt-2'").contract_faults[0]
        assert "javascript:" in faults


# --- bad input
def test_missing_extenuser_still_answers_records_and_pops_nobody(voicenter_hub):
    hub = voicenter_hub()
    noa = Agent(hub, "tok-noa")
    r = popup_get(hub, phone="0722776772", ivrid="noext-1", did="0722776773", statusCall="Ringing")
    assert r.json()["CLIENTNAME"] == "John Doe"
    noa.nothing("pop")
    popup_get(hub, phone="0722776772", ivrid="noext-1", did="0722776773", statusCall="Hangup")
    assert wait_rows(hub, "SELECT * FROM calls WHERE call_id = 'noext-1' AND status = 'missed'").agent_id.isna().all()
    assert len(hub.hub.store.query("SELECT * FROM rejects WHERE reason = 'missing_extenuser'")) == 1  # once a call
    assert wait_rows(hub, "SELECT * FROM lookups WHERE call_id = 'noext-1'").outcome[0] == "found"
    assert popup_get(hub, phone="0722776772", ivrid="noext-2", extenUser="SIPSIP", statusCall="Ringing").status_code == 200
    assert noa.recv("pop")["call_id"] == "noext-2"  # other calls are not disturbed


def test_unknown_fields_are_recorded_once_each_and_change_nothing(voicenter_hub):
    hub = voicenter_hub()
    avi = Agent(hub, "tok-avi")
    for n in range(2):
        body = {**RINGING_JSON, "ivrid": f"uf-{n}", "brandNewField": "x", "queueName": "Sales"}
        assert popup_json(hub, body).json()["CLIENTNAME"] == "John Doe"
        assert avi.recv("pop")["call_id"] == f"uf-{n}"
    rejects = wait_rows(hub, "SELECT detail FROM rejects WHERE reason = 'unknown_field' ORDER BY detail", n=2)
    assert rejects.detail.tolist() == ["field 'brandNewField' in a POST json pop-up request",
                                       "field 'queueName' in a POST json pop-up request"]


def test_unknown_status_bad_bodies_and_a_missing_ivrid_are_refused_softly(voicenter_hub):
    hub = voicenter_hub()
    assert popup_get(hub, phone="0722776772", ivrid="st-1", extenUser="SIPSIP", statusCall="Parked").json() == EMPTY_ANSWER
    assert popup_get(hub, phone="0722776772", extenUser="SIPSIP", statusCall="Ringing").json() == EMPTY_ANSWER
    r = httpx.post(f"{hub.url}/voicenter/popup", content=b"[1,2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert popup_json(hub, {**RINGING_JSON, "phone": "<script>"}).json() == EMPTY_ANSWER
    reasons = set(wait_rows(hub, "SELECT reason FROM rejects", n=4).reason)
    assert {"unknown_status", "missing_ivrid", "invalid_request", "invalid_popup"} <= reasons
    assert hub.hub.book.get("st-1") is None


def test_the_shared_secret_guards_every_voicenter_url(voicenter_hub):
    hub = voicenter_hub(voicenter_secret="s3cr3t-key-0123456789")
    assert popup_get(hub, phone="0722776772", ivrid="k-1", extenUser="SIPSIP", statusCall="Ringing").status_code == 401
    assert popup_json(hub, RINGING_JSON, key="wrong").status_code == 401
    assert cdr(hub, FIXTURES.joinpath("cdr-incoming-answered.json").read_text()).status_code == 401
    assert popup_json(hub, RINGING_JSON, key="s3cr3t-key-0123456789").json()["CLIENTNAME"] == "John Doe"
    assert popup_get(hub, phone="0722776772", ivrid="k-2", extenUser="SIPSIP", statusCall="Ringing",
                     key="s3cr3t-key-0123456789").json()["CLIENTNAME"] == "John Doe"
    assert hub.hub.book.get("k-1") is None
    rejects = wait_rows(hub, "SELECT * FROM rejects WHERE reason = 'unauthorized'", n=3)
    assert not rejects.detail.str.contains("s3cr3t").any() and not rejects.detail.str.contains("wrong").any()
    assert hub.hub.store.query("SELECT * FROM rejects WHERE reason = 'unknown_field'").empty  # key is ours


def test_voicenter_s_chrome_extension_may_call_the_popup_url(voicenter_hub):
    hub = voicenter_hub()
    origin = "chrome-extension://ifiaikfdhcagbagdeflffjdammidpbio"
    pre = httpx.options(f"{hub.url}/voicenter/popup", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == origin
    assert popup_json(hub, RINGING_JSON).headers["access-control-allow-origin"] == origin


# --- who may call the Voicenter URLs
def test_a_hub_reachable_from_outside_refuses_to_start_without_a_secret(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CALLPOP_PROVIDER": "voicenter",
           "CALLPOP_HOST": "0.0.0.0", "CALLPOP_PORT": "0", "CALLPOP_DB_PATH": str(tmp_path / "x.duckdb")}
    done = subprocess.run([sys.executable, "-m", "pipelines", "serve"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "set CALLPOP_VOICENTER_SECRET to a long random value" in done.stderr and "?key=" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_secret_is_required_off_loopback_and_must_be_long():
    with pytest.raises(settings_mod.SettingsError, match="CALLPOP_VOICENTER_SECRET is required"):
        settings_mod.load(env_file=None, provider="voicenter", host="::")
    with pytest.raises(settings_mod.SettingsError, match="at least 16 characters"):
        settings_mod.load(env_file=None, provider="voicenter", host="0.0.0.0", voicenter_secret="short")
    assert settings_mod.load(env_file=None, provider="voicenter", host="0.0.0.0", voicenter_secret="k" * 24)
    for host in ("127.0.0.1", "::1", "localhost"):  # only this machine can reach it: the key stays optional
        assert settings_mod.load(env_file=None, provider="voicenter", host=host).host == host
    assert settings_mod.load(env_file=None, host="0.0.0.0").provider == "sim"  # no Voicenter URLs to guard
    with pytest.raises(settings_mod.SettingsError, match="CALLPOP_VOICENTER_ALLOWED_IPS.*'10.0.0.300'"):
        settings_mod.load(env_file=None, voicenter_allowed_ips="203.0.113.0/24,10.0.0.300")


def from_address(source: str) -> httpx.Client:
    """A client whose requests leave from ``source`` (any 127.x address is this machine's on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def test_the_allow_list_refuses_other_addresses_with_403(voicenter_hub):
    hub = voicenter_hub(voicenter_allowed_ips="127.0.0.2, 203.0.113.0/24")
    with from_address("127.0.0.1") as outsider:
        refused = outsider.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert "CALLPOP_VOICENTER_ALLOWED_IPS" in refused.json()["message"]
        assert outsider.post(f"{hub.url}/voicenter/cdr", content=FIXTURES.joinpath(
            "cdr-incoming-answered.json").read_bytes(), headers={"Content-Type": "application/json"}).status_code == 403
        assert outsider.get(f"{hub.url}/voicenter/popup", params={"ivrid": "x-1", "statusCall": "Ringing"}).status_code == 403
    with from_address("127.0.0.2") as voicenter:
        assert voicenter.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON).json()["CLIENTNAME"] == "John Doe"
    assert hub.hub.book.get("x-1") is None
    rejects = wait_rows(hub, "SELECT detail FROM rejects WHERE reason = 'forbidden'", n=3)
    assert rejects.detail.str.contains("127.0.0.1 is not in CALLPOP_VOICENTER_ALLOWED_IPS").all()


def test_the_allow_list_comes_before_the_key_and_both_apply(voicenter_hub):
    key = "k3y-0123456789abcdef"
    hub = voicenter_hub(voicenter_allowed_ips="127.0.0.2", voicenter_secret=key)
    with from_address("127.0.0.1") as outsider:  # even with the right key
        assert outsider.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON, params={"key": key}).status_code == 403
    with from_address("127.0.0.2") as voicenter:
        assert voicenter.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON).status_code == 401
        assert voicenter.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON, params={"key": key}).status_code == 200


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(voicenter_hub):
    # 127.0.0.2 plays the reverse proxy; Voicenter's address (203.0.113.7) is what it forwards.
    hub = voicenter_hub(voicenter_allowed_ips="203.0.113.7", trusted_proxies="127.0.0.2")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with from_address("127.0.0.2") as proxy:
        assert proxy.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON, headers=forwarded).status_code == 200
        # The proxy appends who connected to it: a forged address to its left does not count.
        forged = {"X-Forwarded-For": "203.0.113.7, 198.51.100.9"}
        assert proxy.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON, headers=forged).status_code == 403
        assert proxy.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON).status_code == 403  # the proxy itself
    with from_address("127.0.0.1") as direct:  # not a proxy of ours: its header is anybody's to write
        assert direct.post(f"{hub.url}/voicenter/popup", json=RINGING_JSON, headers=forwarded).status_code == 403
    rejects = wait_rows(hub, "SELECT detail FROM rejects WHERE reason = 'forbidden'", n=3).detail
    assert rejects.str.contains("198.51.100.9 via 127.0.0.2").any() and rejects.str.contains("^127.0.0.1 is").any()


def test_the_client_address_behind_proxies():
    trusted = peers.networks(["10.0.0.0/8", "::1"])
    assert str(peers.client_address("10.1.2.3", ["203.0.113.7, 10.0.0.5"], trusted)) == "203.0.113.7"
    assert str(peers.client_address("10.1.2.3", ["1.1.1.1, 203.0.113.7", "10.0.0.9"], trusted)) == "203.0.113.7"
    assert str(peers.client_address("10.1.2.3", [], trusted)) == "10.1.2.3"
    assert str(peers.client_address("198.51.100.1", ["203.0.113.7"], trusted)) == "198.51.100.1"
    assert peers.client_address("10.1.2.3", ["203.0.113.7, junk"], trusted) is None
    assert str(peers.client_address("::1", ["[2001:db8::1]:443"], trusted)) == "2001:db8::1"
    assert str(peers.client_address("::ffff:203.0.113.7", [], trusted)) == "203.0.113.7"
    assert str(peers.client_address("10.1.2.3", ["203.0.113.7:5060"], trusted)) == "203.0.113.7"


# --- CDRs
def test_the_real_cdr_sample_is_acknowledged_and_becomes_a_calls_row(voicenter_hub):
    hub = voicenter_hub()
    r = cdr(hub, FIXTURES.joinpath("cdr-incoming-answered.json").read_text(encoding="utf-8"))
    assert (r.status_code, r.json()) == (200, {"err": 0, "errdesc": "OK"})
    row = wait_rows(hub, "SELECT * FROM calls WHERE call_id = '2020020419500000000000000000'").iloc[0]
    assert (row.caller, row.callee, row.status, row.duration_s, row.ring_s, row.cdr_status) == \
        ("0546666666", "0702246666", "ended", 38, 33, "ANSWER")
    # "time" is Israel wall-clock time (UTC+2 in February), as Voicenter documents it
    assert str(row.started_at) == "2020-02-04 17:55:39" and str(row.ended_at) == "2020-02-04 17:56:17"
    assert row.recording_url.endswith("-aws-0546666666-0702246666.mp3")


def test_a_cdr_closes_a_popped_call_and_completes_its_row(voicenter_hub):
    hub = voicenter_hub()
    noa = Agent(hub, "tok-noa")
    popup_get(hub, phone="0546666666", ivrid="2020020419500000000000000000", extenUser="SIPSIP",
              did="0702246666", statusCall="Ringing")
    noa.recv("pop")
    body = json.loads(FIXTURES.joinpath("cdr-incoming-answered.json").read_text(encoding="utf-8"))
    assert cdr(hub, {**body, "extenUser": "SIPSIP"}).json()["err"] == 0
    assert noa.recv("call")["state"] == "answered"
    assert noa.recv("call")["state"] == "ended"
    row = wait_rows(hub, "SELECT * FROM calls WHERE status = 'ended' AND duration_s IS NOT NULL").iloc[0]
    assert (row.answered_by, row.duration_s, row.cdr_status, row.hangup_cause) == ("201", 38, "ANSWER", "normal clearing")
    assert len(hub.hub.store.query("SELECT * FROM calls")) == 1


def test_bad_cdrs_are_answered_with_voicenter_s_error_body(voicenter_hub):
    hub = voicenter_hub()
    assert cdr(hub, "not json").json() == {"err": 1, "errdesc": "the CDR must be JSON"}
    assert cdr(hub, {"caller": "0546666666"}).json()["err"] == 1
    assert cdr(hub, [1]).json()["err"] == 1
    assert len(wait_rows(hub, "SELECT * FROM rejects WHERE reason = 'invalid_cdr'", n=3)) == 3


# --- Click2Call
@pytest.fixture
def click2call():
    with Click2CallApi() as server:
        yield server


def test_click2call_posts_the_documented_request_and_the_cdrs_finish_the_dial(voicenter_hub, click2call):
    hub = voicenter_hub(voicenter_code="test-code", voicenter_click2call_url=click2call.url)
    noa = Agent(hub, "tok-noa")
    dial_id = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "054-765-4321"}).json()["dial_id"]
    assert [noa.recv("dial")["state"] for _ in range(2)] == ["requested", "leg_a_ringing"]
    sent = click2call.requests[-1]
    assert (sent["method"], sent["content_type"]) == ("POST", "application/json")
    assert sent["params"] == {"code": "test-code", "phone": "SIPSIP", "target": "972547654321", "action": "call",
                              "format": "json", "var_callpop_dial": dial_id, "checkphonedevicestate": "true"}
    call_id = wait_rows(hub, "SELECT provider_call_id FROM dials WHERE dial_id = ? AND provider_call_id IS NOT NULL",
                        [dial_id]).provider_call_id[0]
    leg = {"caller": "SIPSIP", "target": "972547654321", "time": 1717236000, "ivruniqueid": call_id, "did": ""}
    assert cdr(hub, {**leg, "type": "Click2Call leg1", "status": "ANSWER", "duration": 70}).json()["err"] == 0
    assert noa.recv("dial")["state"] == "leg_a_answered"
    cdr(hub, {**leg, "type": "Click2Call leg2", "status": "ANSWER", "duration": 61, "record": "https://rec.example/1.mp3"})
    assert [noa.recv("dial")["state"] for _ in range(2)] == ["bridged", "ended"]
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND duration_s IS NOT NULL", [dial_id]).iloc[0]
    assert (row.outcome, row.leg_a_status, row.leg_b_status, row.duration_s, row.provider) == \
        ("bridged", "ANSWER", "ANSWER", 61, "voicenter")


@pytest.mark.parametrize("code, error", [(1, "click2call_invalid_request"), (2, "click2call_provider_error"),
                                         (3, "extension_offline"), (4, "click2call_blocked"),
                                         (9, "click2call_refused")])
def test_every_click2call_errorcode_is_a_clear_dial_failure(voicenter_hub, click2call, code, error):
    click2call.errorcode_for["972547654321"] = code
    hub = voicenter_hub(voicenter_code="test-code", voicenter_click2call_url=click2call.url)
    noa = Agent(hub, "tok-noa")
    dial_id = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321"}).json()["dial_id"]
    noa.recv("dial")
    failed = noa.recv("dial")
    assert (failed["state"], failed["error"]) == ("failed", error)
    assert failed["reason"]
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND outcome = 'failed'", [dial_id]).iloc[0]
    assert row.error == error


def test_click2call_from_a_mobile_a_wrong_code_a_broken_api_and_a_slow_one(voicenter_hub, click2call):
    hub = voicenter_hub(voicenter_code="not-the-code", voicenter_click2call_url=click2call.url, voicenter_timeout_s=0.3)
    noa = Agent(hub, "tok-noa")

    def dial(**body):
        api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321", **body})
        noa.recv("dial")
        return noa.recv("dial")

    assert dial(leg_a="mobile")["error"] == "click2call_invalid_request"  # the API's answer to a bad code
    assert click2call.requests[-1]["params"]["phone"] == "972548124567"  # the agent's mobile, E.164 without +
    assert "checkphonedevicestate" not in click2call.requests[-1]["params"]
    click2call.http_status = 500
    assert dial()["error"] == "click2call_http_error"
    click2call.http_status, click2call.delay = 200, 1.0
    assert dial()["error"] == "click2call_unreachable"


def test_click2call_needs_its_code():
    with pytest.raises(DialRefused) as e:
        parse_click2call(200, b"<html>maintenance</html>")
    assert e.value.code == "click2call_bad_response"


def test_click2call_without_a_code_is_refused_with_the_setting_to_fix(voicenter_hub):
    hub = voicenter_hub()
    noa = Agent(hub, "tok-noa")
    api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321"})
    noa.recv("dial")
    failed = noa.recv("dial")
    assert failed["error"] == "click2call_not_configured" and "CALLPOP_VOICENTER_CODE" in failed["reason"]
    assert "click-to-call off" in api(hub, "GET", "/api/status", "tok-dana").json()["provider"]["detail"]


def test_a_leg_b_cdr_that_was_not_answered_fails_the_dial(voicenter_hub, click2call):
    hub = voicenter_hub(voicenter_code="test-code", voicenter_click2call_url=click2call.url)
    noa = Agent(hub, "tok-noa")
    dial_id = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321"}).json()["dial_id"]
    noa.recv("dial"), noa.recv("dial")
    body = {"ivruniqueid": "unrelated-id", "type": "Click2Call leg2", "status": "BUSY", "CUSTOM_DATA": {"callpop_dial": dial_id}}
    cdr(hub, body)  # tied by the custom data we sent when Voicenter's id is not known
    failed = noa.recv("dial")
    assert (failed["state"], failed["error"]) == ("failed", "leg_b_busy")
    cdr(hub, {"ivruniqueid": "nobody-knows", "type": "Click2Call leg1", "status": "ANSWER"})
    assert wait_rows(hub, "SELECT * FROM rejects WHERE reason = 'unknown_click2call'").source[0] == "/voicenter/cdr"


# --- the pure parts
def test_parse_popup_reads_both_status_spellings_and_lists_unknown_fields():
    get = parse_popup({"phone": "0722776772", "ivrid": "a", "extenUser": "SIPSIP", "did": "1", "statusCall": "Ringing"})
    post = parse_popup({**RINGING_JSON, "foo": 1})
    assert (get.phase, get.direction, get.unknown) == ("ringing", "inbound", ())
    assert (post.phase, post.exten_user, post.unknown) == ("ringing", "KGpK4iWq", ("foo",))
    assert parse_popup({"status": "Talking"}).phase == "answered" and parse_popup({"status": "Answer"}).phase == "answered"
    assert parse_popup({"status": "Hangup", "direction": "Outgoing"}).direction == "outbound"
    assert parse_popup({"status": "Parked"}).phase is None


def test_parse_click2call_json_and_xml():
    assert parse_click2call(200, b'{"ERRORCODE":0,"ERRORMESSAGE":"OK","CALLID":"abc"}') == "abc"
    assert parse_click2call(200, b"<R><ERRORCODE>0</ERRORCODE><CALLID>x1</CALLID></R>") == "x1"
    with pytest.raises(DialRefused) as e:
        parse_click2call(200, b'{"ERRORCODE":"3","ERRORMESSAGE":"Extension offline"}')
    assert e.value.code == "extension_offline" and "Extension offline" in e.value.reason


def test_click2call_request_and_cdr_parsing():
    plan = DialPlan("d1", "noa", "api", "201", "extension", "+972547654321", "054-765-4321", "201")
    assert click2call_request(plan, "c")["phone"] == "201"
    assert click2call_request(plan, "c", "SIPSIP")["phone"] == "SIPSIP"
    body = json.loads(FIXTURES.joinpath("cdr-incoming-answered.json").read_text(encoding="utf-8"))
    c = parse_cdr(body, "Asia/Jerusalem")
    assert (c.call_id, c.status, c.duration, c.ring, c.click2call_leg, c.unknown) == \
        ("2020020419500000000000000000", "ANSWER", 38, 33, 0, ())
    assert c.started.isoformat() == "2020-02-04T17:55:39"
    assert parse_cdr(body, "UTC").started.isoformat() == "2020-02-04T19:55:39"
    assert parse_cdr({"ivruniqueid": "x", "type": "Click2Call leg2"}).click2call_leg == 2
