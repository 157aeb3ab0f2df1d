"""The two built-in providers: the simulated PBX and the webhook PBX."""

import httpx

from tests.support import INGEST
from tests.support.hub import TOKENS, Agent, api, wait_rows
from tests.support.pbx import WebhookPbx


def test_sim_generates_realistic_calls_that_pop_and_finish(start_hub):
    hub = start_hub(sim_calls_per_minute=60.0, sim_speed=40.0, sim_seed="7")  # ~40 calls/s
    supervisor = Agent(hub, TOKENS["dana"])  # extension 205: some simulated calls ring it
    pops = [supervisor.recv("pop", timeout=20) for _ in range(3)]
    assert all(p["phone"] or p["status"] == "not_found" for p in pops)
    for status in ("ended", "missed"):  # answered then hung up, and never answered
        assert len(wait_rows(hub, "SELECT * FROM calls WHERE status = ?", [status], n=5, timeout=30)) >= 5
    assert (hub.hub.store.query("SELECT provider FROM calls").provider == "sim").all()
    lookups = wait_rows(hub, "SELECT outcome FROM lookups", n=25)
    assert {"found", "not_found"} <= set(lookups.outcome)
    events = hub.hub.store.query("SELECT call_id, count(DISTINCT extension) AS n FROM events "
                                 "WHERE type = 'ringing' GROUP BY call_id")
    assert events.n.max() >= 2  # some calls ring a group of extensions


def test_webhook_provider_posts_the_dial_and_takes_progress_back(start_hub):
    with WebhookPbx() as pbx:
        hub = start_hub(provider="webhook", webhook_dial_url=pbx.url)
        noa = Agent(hub, TOKENS["noa"])
        dial_id = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "0722776772"}).json()["dial_id"]
        assert noa.recv("dial")["state"] == "requested"
        sent = pbx.last_dial()  # the PBX gets the two legs and where to report progress
        assert (sent["dial_id"], sent["leg_a"], sent["leg_b"]) == (dial_id, "201", "+972722776772")
        for state in ("leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged"):
            r = httpx.post(sent["progress_url"], json={"state": state}, headers={"Authorization": f"Bearer {INGEST}"})
            assert r.status_code == 200
            assert noa.recv("dial")["state"] == state
        row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND outcome = 'bridged'", [dial_id]).iloc[0]
        assert row.provider == "webhook"


def test_webhook_without_a_dial_url_fails_the_dial_with_the_reason(start_hub):
    hub = start_hub(provider="webhook")
    noa = Agent(hub, TOKENS["noa"])
    api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "0722776772"})
    failed = noa.recv("dial", where=lambda m: m["state"] == "failed")
    assert failed["error"] == "no_dial_url" and "CALLPOP_WEBHOOK_DIAL_URL" in failed["reason"]


def test_sample_crm_speaks_the_contract_exactly(hub):
    found = httpx.get(f"{hub.url}/crm/lookup", params={"phone": "0722776772"}).json()
    assert found == {"STATUS": "OK", "URL": f"{hub.url}/crm/contacts/c0001", "CLIENTNAME": "John Doe",
                     "TOTAL": "1", "COMPANY": "Voicenter"}
    assert httpx.get(f"{hub.url}/crm/lookup", params={"phone": "+972 72-277-6772"}).json()["TOTAL"] == "1"
    several = httpx.get(f"{hub.url}/crm/lookup", params={"phone": "+1 212-555-0100"}).json()
    assert several["TOTAL"] == "3" and "/crm/search" in several["URL"]
    none = httpx.get(f"{hub.url}/crm/lookup", params={"phone": "0545551234"}).json()
    assert none["TOTAL"] == "0" and none["CLIENTNAME"] == "" and "/crm/new" in none["URL"]
    page = httpx.get(found["URL"])
    assert page.status_code == 200 and "John Doe" in page.text
