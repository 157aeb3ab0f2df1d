"""Screen pops against the real hub and a real CRM server: every lookup outcome, routing, sessions."""

import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows


@pytest.fixture
def crm():
    with FakeCrm() as server:
        yield server


def ring(hub, call_id, caller, extension="201", **kw):
    r = post_event(hub, call_id=call_id, type="ringing", caller=caller, callee="0722776773",
                   extension=extension, **kw)
    assert r.status_code == 202, r.text
    return r


def lookup_row(hub, call_id):
    df = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = ?", [call_id])
    assert len(df) == 1, f"expected one lookup row for {call_id}"
    return df.iloc[0]


def test_not_found_pops_unknown_caller_with_the_number(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "nf-1", "+972 54 555 1234")
    pop = noa.recv("pop")
    assert pop["status"] == "not_found" and pop["name"] == "" and pop["total"] == 0
    assert pop["phone"] == "054-555-1234"
    assert pop["url"].startswith(hub.url + "/crm/new?phone=")
    assert lookup_row(hub, "nf-1").outcome == "not_found"


def test_several_matches_pop_as_multiple_with_a_results_url(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "mul-1", "035551000")  # a law office: two contacts share the number
    pop = noa.recv("pop")
    assert pop["status"] == "multiple" and pop["total"] == 2
    assert "Ruth Ben-David" in pop["name"] and pop["company"] == "Ben-David Law"
    assert "/crm/search?phone=" in pop["url"]
    row = lookup_row(hub, "mul-1")
    assert row.outcome == "multiple" and row.total == 2


def test_crm_past_deadline_gets_a_provisional_pop_then_the_update(start_hub, crm):
    crm.respond("0545550123", contract("Slow Sam", "Tortoise Ltd"), delay=0.6)
    hub = start_hub(crm_url=crm.url, crm_deadline_ms=200)
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "slow-1", "0545550123")
    first = noa.recv("pop")
    assert first["status"] == "pending" and first["name"] == "" and first["phone"] == "054-555-0123"
    second = noa.recv("pop")
    assert second["call_id"] == "slow-1"
    assert (second["status"], second["name"], second["company"]) == ("found", "Slow Sam", "Tortoise Ltd")
    row = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = ? AND late_outcome IS NOT NULL", ["slow-1"]).iloc[0]
    assert row.outcome == "timeout" and row.latency_ms == 200 and row.deadline_ms == 200
    assert row.late_outcome == "found" and row.late_latency_ms >= 550
    pops = wait_rows(hub, "SELECT * FROM pops WHERE call_id = ? AND updated_at IS NOT NULL", ["slow-1"])
    assert pops.status.tolist() == ["found"]


def test_crm_answering_html_pops_unknown_caller_and_records_bad_response(start_hub, crm):
    crm.respond("0545550123", "<!DOCTYPE html><html><body>Error 500</body></html>", content_type="text/html")
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "html-1", "0545550123")
    pop = noa.recv("pop")
    assert pop["status"] == "error" and pop["name"] == "" and pop["phone"] == "054-555-0123"
    row = lookup_row(hub, "html-1")
    assert row.outcome == "bad_response" and "not JSON" in row.error and row.http_status == 200


def test_crm_down_pops_unknown_caller_and_records_http_error(start_hub):
    with FakeCrm() as gone:
        url = gone.url  # a port that was just open and is now closed
    hub = start_hub(crm_url=url)
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "down-1", "0545550123")
    pop = noa.recv("pop")
    assert pop["status"] == "error" and pop["phone"] == "054-555-0123"
    row = lookup_row(hub, "down-1")
    assert row.outcome == "http_error" and "connect" in row.error


def test_a_failing_crm_is_logged_when_it_starts_failing_and_when_it_is_back_not_per_lookup(start_hub, crm, caplog):
    for phone in ("0545550001", "0545550002", "0545550003"):
        crm.respond(phone, "<html>Service Unavailable</html>", status=503, content_type="text/html")
    crm.respond("0545550004", contract("Back Again"))
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    with caplog.at_level("WARNING", logger="callpop.crm"):
        for i in range(1, 5):
            ring(hub, f"log-{i}", f"054555000{i}")
            noa.recv("pop", where=lambda m, i=i: m["call_id"] == f"log-{i}")
    said = [r.getMessage() for r in caplog.records if r.name == "callpop.crm"]
    assert said == ["CRM lookups are failing: http_error: CRM answered HTTP 503",
                    "CRM lookups answer again (3 failed since: http_error: CRM answered HTTP 503)"]


def test_crm_gets_the_configured_format_and_context_and_auth(start_hub, crm):
    crm.respond("972722776772", contract("John Doe", "Voicenter"))
    hub = start_hub(crm_url=crm.url, crm_phone_format="digits", crm_context_params="did,extension",
                    crm_auth_header="X-Api-Key: s3cret")
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "fmt-1", "0722776772")
    assert noa.recv("pop")["name"] == "John Doe"
    request = crm.requests[-1]
    assert request["phone"] == "972722776772"
    assert request["did"] == "0722776773" and request["extension"] == "201"
    assert request["header:x-api-key"] == "s3cret"


def test_a_javascript_url_is_never_sent_to_the_browser(start_hub, crm):
    crm.respond("0545550123", contract("Eve", "Evil", url="javascript:alert(1)"))
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "js-1", "0545550123")
    pop = noa.recv("pop")
    assert pop["name"] == "Eve" and pop["url"] == ""
    assert "dropped" in lookup_row(hub, "js-1").contract_faults


def test_cache_serves_repeat_callers_and_concurrent_lookups_share_one_request(start_hub, crm):
    crm.respond("0545550123", contract("Cached Carl", "C Ltd"), delay=0.3)
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    avi = Agent(hub, TOKENS["avi"])
    # Two different calls from the same number at the same moment: one CRM request.
    threads = [threading.Thread(target=ring, args=(hub, f"co-{i}", "0545550123", ext)) for i, ext in
               enumerate(("201", "202"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert noa.recv("pop")["name"] == "Cached Carl" and avi.recv("pop")["name"] == "Cached Carl"
    assert crm.lookups_of("0545550123") == 1
    ring(hub, "co-3", "0545550123")
    assert noa.recv("pop", where=lambda m: m["call_id"] == "co-3")["name"] == "Cached Carl"
    assert crm.lookups_of("0545550123") == 1
    rows = wait_rows(hub, "SELECT call_id, cache FROM lookups ORDER BY call_id", n=3)
    assert sorted(rows.cache) == ["coalesced", "hit", "miss"]


def test_two_browsers_of_one_agent_both_get_the_pop_and_others_get_nothing(hub):
    noa1, noa2 = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["noa"])
    avi = Agent(hub, TOKENS["avi"])
    ring(hub, "two-1", "0722776772")
    assert noa1.recv("pop")["call_id"] == "two-1"
    assert noa2.recv("pop")["call_id"] == "two-1"
    avi.nothing("pop")
    noa1.close()  # closing one browser does not affect the other
    ring(hub, "two-2", "0722776772")
    assert noa2.recv("pop")["call_id"] == "two-2"
    assert wait_rows(hub, "SELECT sessions FROM pops WHERE call_id = 'two-1'").sessions[0] == 2


def test_second_ringing_for_the_same_call_never_pops_twice(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "dup-1", "0722776772")
    noa.recv("pop")
    assert post_event(hub, call_id="dup-1", type="ringing", caller="0722776772", extension="201",
                      at=datetime.now(timezone.utc).isoformat()).status_code == 202
    noa.nothing("pop")
    assert len(wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'dup-1'")) == 1


def test_ring_group_pops_each_extension_and_clears_the_others_on_answer(hub):
    noa, avi, sarah = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"]), Agent(hub, TOKENS["sarah"])
    for ext in ("201", "202", "203"):
        ring(hub, "grp-1", "0722776772", extension=ext)
    for agent in (noa, avi, sarah):
        assert agent.recv("pop")["name"] == "John Doe"
    assert post_event(hub, call_id="grp-1", type="answered", extension="202").status_code == 202
    assert noa.recv("call") == {"type": "call", "call_id": "grp-1", "state": "answered_elsewhere", "by": "202"}
    assert sarah.recv("call")["state"] == "answered_elsewhere"
    assert avi.recv("call")["state"] == "answered"
    assert post_event(hub, call_id="grp-1", type="hangup", cause="normal").status_code == 202
    assert avi.recv("call")["state"] == "ended"
    call = wait_rows(hub, "SELECT * FROM calls WHERE call_id = 'grp-1' AND status = 'ended'").iloc[0]
    assert call.answered_by == "202" and call.agent_id == "avi" and call.extension == "201"
    assert len(wait_rows(hub, "SELECT * FROM lookups WHERE call_id = 'grp-1'")) == 1  # one lookup per call


def test_unanswered_call_is_recorded_as_missed(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "miss-1", "0722776772")
    noa.recv("pop")
    post_event(hub, call_id="miss-1", type="hangup", cause="caller hung up")
    assert noa.recv("call")["state"] == "missed"
    call = wait_rows(hub, "SELECT * FROM calls WHERE call_id = 'miss-1' AND status = 'missed'").iloc[0]
    assert call.hangup_cause == "caller hung up" and call.answered_at is None or str(call.answered_at) == "NaT"


def test_withheld_number_pops_without_a_lookup(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "anon-1", "anonymous")
    pop = noa.recv("pop")
    assert pop["status"] == "not_found" and pop["phone"] == ""
    assert hub.hub.crm.requests == 0


def test_a_socket_that_connects_while_a_call_rings_gets_its_pop(hub):
    ring(hub, "late-1", "0722776772")
    wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'late-1'")
    noa = Agent(hub, TOKENS["noa"])
    assert noa.recv("pop")["call_id"] == "late-1"


def test_acks_only_for_your_own_pops(hub):
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    ring(hub, "ack-1", "0722776772")
    noa.recv("pop")
    avi.send({"type": "ack", "call_id": "ack-1", "event": "clicked"})
    error = avi.recv("error")
    assert error["code"] == "unknown_call"
    noa.send({"type": "ack", "call_id": "ack-1", "event": "closed"})
    row = wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'ack-1' AND closed_at IS NOT NULL").iloc[0]
    assert row.agent_id == "noa" and str(row.clicked_at) == "NaT"


def test_live_calls_and_pop_feed(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "live-1", "0722776772")
    noa.recv("pop")
    ring(hub, "live-2", "0722776772", extension="202")
    wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'live-2'")
    mine = api(hub, "GET", "/api/calls/live", TOKENS["noa"]).json()["calls"]
    assert [c["call_id"] for c in mine] == ["live-1"]
    assert mine[0]["name"] == "John Doe" and mine[0]["status"] == "ringing"
    everyone = api(hub, "GET", "/api/calls/live", TOKENS["dana"]).json()["calls"]
    assert {c["call_id"] for c in everyone} == {"live-1", "live-2"}
    feed = api(hub, "GET", "/api/pops/recent", TOKENS["noa"]).json()["pops"]
    assert feed[0]["call_id"] == "live-1" and feed[0]["status"] == "found" and feed[0]["lookup_ms"] > 0
    status = api(hub, "GET", "/api/status", TOKENS["dana"]).json()
    assert status["calls_ringing"] == 2 and status["agents_online"] == 1 and status["provider"]["name"] == "sim"
    assert "token" not in httpx.get(f"{hub.url}/api/me", headers={"Authorization": f"Bearer {TOKENS['noa']}"}).text


def test_a_quiet_socket_gets_a_heartbeat_each_period_and_a_busy_one_none(start_hub):
    """A Manifest V3 worker needs a message at least every 30 s: a socket that has been sent
    nothing for ``ws_heartbeat_s`` gets a heartbeat; one that is sent other frames needs none."""
    period = 1.0
    hub = start_hub(ws_heartbeat_s=period)
    quiet, busy = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    beats: list[float] = []
    end = time.monotonic() + 2.6 * period

    def listen():
        while (left := end - time.monotonic()) > 0:
            try:
                message = quiet.recv("heartbeat", timeout=left)
            except TimeoutError:
                return
            beats.append(time.monotonic())
            assert message["at"].endswith("Z")

    listener = threading.Thread(target=listen)
    listener.start()
    busy_frames = []
    while time.monotonic() < end:
        busy.send({"type": "ping"})
        busy_frames.append(busy.recv(where=lambda m: m["type"] != "inbox")["type"])  # the welcome's inbox aside
        time.sleep(period / 4)
    listener.join()
    assert len(beats) >= 2, f"the quiet socket got {len(beats)} heartbeats in 2.6 periods"
    assert all(0.7 * period < b - a < 1.5 * period for a, b in zip(beats, beats[1:]))
    assert set(busy_frames) == {"pong"}
