"""Matching against the real hub and a real CRM server: a number found in another format than
the first (within the one deadline, with "matched"), and several matches with CONTACTS: the
candidates in the pop, the agent's choice recorded and popped directly on the next call, also
after a restart."""

import time

import pytest

from console.hubclient import HubClient
from console.views import live

from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, Agent, post_event, wait_rows

NATIONAL, E164 = "0722776772", "+972722776772"
FORMATS = "national,e164,digits,last9"


@pytest.fixture
def crm():
    with FakeCrm() as server:
        yield server


def ring(hub, call_id, caller=NATIONAL, extension="201"):
    r = post_event(hub, call_id=call_id, type="ringing", caller=caller, callee="0722776773", extension=extension)
    assert r.status_code == 202, r.text


def hang_up(hub, call_id, caller=NATIONAL):
    assert post_event(hub, call_id=call_id, type="hangup", caller=caller, callee="0722776773").status_code == 202


def lookup_row(hub, call_id):
    df = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = ?", [call_id])
    assert len(df) == 1
    return df.iloc[0]


def test_a_number_stored_only_in_e164_is_found_when_the_first_format_is_national(start_hub, crm):
    crm.respond(E164, contract("John Doe", "Voicenter"))
    hub = start_hub(crm_url=crm.url, crm_phone_formats="national,e164")
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "fmt-1")
    pop = noa.recv("pop")
    assert pop["status"] == "found" and pop["name"] == "John Doe"
    assert pop["matched"] == {"how": "format", "format": "e164", "as": E164, "attempt": 2}
    assert [r["phone"] for r in crm.requests] == [NATIONAL, E164]  # national first, then E.164
    row = lookup_row(hub, "fmt-1")
    assert row.outcome == "found" and row.matched_format == "e164" and row.phone == E164
    # The console's Live page says so in its pops feed.
    frame = live.pops_frame(HubClient(hub.url, TOKENS["noa"]).recent_pops())
    assert frame.loc[0, "Matched"] == "matched as +972722776772 (e164)"


def test_one_format_keeps_todays_behaviour_and_says_it_matched_on_the_first(start_hub, crm):
    crm.respond(NATIONAL, contract("Dana Levi"))
    hub = start_hub(crm_url=crm.url, crm_phone_format="national")
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "fmt-one")
    pop = noa.recv("pop")
    assert pop["matched"] == {"how": "format", "format": "national", "as": NATIONAL, "attempt": 1}
    assert lookup_row(hub, "fmt-one").matched_format == "national" and len(crm.requests) == 1


def test_all_formats_not_found_is_not_found_within_the_deadline(start_hub, crm):
    for value in (NATIONAL, E164, "972722776772", "722776772"):
        crm.respond(value, contract(total="0", url=""), delay=0.1)
    hub = start_hub(crm_url=crm.url, crm_phone_formats=FORMATS, crm_deadline_ms=1000)
    noa = Agent(hub, TOKENS["noa"])
    started = time.monotonic()
    ring(hub, "fmt-none")
    pop = noa.recv("pop")
    took = time.monotonic() - started
    assert pop["status"] == "not_found" and "matched" not in pop and took < 1.0
    assert [r["phone"] for r in crm.requests] == [NATIONAL, E164, "972722776772", "722776772"]
    row = lookup_row(hub, "fmt-none")
    assert row.outcome == "not_found" and row.matched_format is None and row.latency_ms < 1000
    noa.nothing("pop", within=0.3)  # no second pop


def test_formats_that_run_past_the_deadline_stop_there(start_hub, crm):
    crm.respond(NATIONAL, contract(total="0", url=""), delay=0.3)
    crm.respond(E164, contract(total="0", url=""), delay=0.5)
    crm.respond("972722776772", contract("Never Asked"))
    hub = start_hub(crm_url=crm.url, crm_phone_formats=FORMATS, crm_deadline_ms=600)
    noa = Agent(hub, TOKENS["noa"])
    started = time.monotonic()
    ring(hub, "fmt-late")
    first = noa.recv("pop")  # national answered at 0.3 s, E.164 asked then, answering at 0.8 s
    assert first["status"] == "pending" and time.monotonic() - started < 0.8
    second = noa.recv("pop")  # the second format's late answer: final, no third format is asked
    assert second["status"] == "not_found"
    assert crm.lookups_of("972722776772") == 0
    row = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = 'fmt-late' AND late_outcome IS NOT NULL").iloc[0]
    assert row.outcome == "timeout" and row.late_outcome == "not_found" and row.phone == E164


def test_a_slow_first_format_keeps_the_deadline_and_ends_the_attempts(start_hub, crm):
    crm.respond(NATIONAL, contract(total="0", url=""), delay=0.8)
    crm.respond(E164, contract("John Doe"))
    hub = start_hub(crm_url=crm.url, crm_phone_formats="national,e164", crm_deadline_ms=300)
    noa = Agent(hub, TOKENS["noa"])
    started = time.monotonic()
    ring(hub, "fmt-slow")
    first = noa.recv("pop")
    assert first["status"] == "pending" and time.monotonic() - started < 0.7
    assert noa.recv("pop")["status"] == "not_found"  # the late answer path, as with one format
    assert crm.lookups_of(E164) == 0
    row = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = 'fmt-slow' AND late_outcome IS NOT NULL").iloc[0]
    assert row.outcome == "timeout" and row.latency_ms == 300


CANDIDATES = [{"NAME": f"Person {i}", "COMPANY": "Law", "URL": f"https://crm.example.com/c/{i}"} for i in range(3)]


def several(contacts=CANDIDATES):
    return contract("Person 0 / Person 1", "Law", total=str(len(contacts)), url="https://crm.example.com/search") | {
        "CONTACTS": contacts}


def test_several_matches_pop_the_candidates_and_the_choice_is_remembered(start_hub, crm, tmp_path):
    crm.respond(NATIONAL, several())
    db = str(tmp_path / "choices.duckdb")
    hub = start_hub(crm_url=crm.url, crm_phone_format="national", db_path=db)
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "mm-1")
    pop = noa.recv("pop")
    assert pop["status"] == "multiple" and pop["total"] == 3
    assert pop["contacts"] == [{"name": f"Person {i}", "company": "Law", "url": f"https://crm.example.com/c/{i}"}
                               for i in range(3)]
    assert wait_rows(hub, "SELECT candidates FROM pops WHERE call_id = 'mm-1'").candidates[0] == 3
    noa.send({"type": "ack", "call_id": "mm-1", "event": "clicked", "chosen": 2})
    row = wait_rows(hub, "SELECT * FROM contact_choices").iloc[0]
    assert (row.e164, row.url, row["name"], row.agent_id, row.call_id, row.candidates) == (
        E164, "https://crm.example.com/c/2", "Person 2", "noa", "mm-1", 3)
    assert wait_rows(hub, "SELECT * FROM pops WHERE call_id = 'mm-1' AND clicked_at IS NOT NULL").shape[0] == 1
    noa.nothing("error", within=0.2)
    hang_up(hub, "mm-1")

    ring(hub, "mm-2")  # the next call from the number: the chosen contact, directly
    pop = noa.recv("pop", where=lambda m: m["call_id"] == "mm-2")
    assert pop["status"] == "found" and pop["name"] == "Person 2" and pop["url"] == "https://crm.example.com/c/2"
    assert pop["matched"] == {"how": "chosen", "by": "noa", "total": 3} and "contacts" not in pop
    frame = live.pops_frame(HubClient(hub.url, TOKENS["noa"]).recent_pops())
    assert frame.loc[0, "Matched"] == "chosen by noa among 3"
    assert wait_rows(hub, "SELECT matched FROM pops WHERE call_id = 'mm-2'").matched[0] == "chosen"
    hang_up(hub, "mm-2")
    noa.close()
    hub.stop()

    again = start_hub(crm_url=crm.url, crm_phone_format="national", db_path=db)  # remembered across a restart
    avi = Agent(again, TOKENS["noa"])
    ring(again, "mm-3")
    pop = avi.recv("pop")
    assert pop["status"] == "found" and pop["url"] == "https://crm.example.com/c/2"
    assert pop["matched"]["how"] == "chosen"


def test_a_choice_by_url_and_the_latest_choice_wins(start_hub, crm):
    crm.respond(NATIONAL, several())
    hub = start_hub(crm_url=crm.url, crm_phone_format="national")
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "mm-url")
    noa.recv("pop")
    noa.send({"type": "ack", "call_id": "mm-url", "event": "clicked", "chosen": 0})
    noa.send({"type": "ack", "call_id": "mm-url", "event": "clicked", "chosen": "https://crm.example.com/c/1"})
    wait_rows(hub, "SELECT * FROM contact_choices", n=2)
    hang_up(hub, "mm-url")
    ring(hub, "mm-url-2")
    assert noa.recv("pop", where=lambda m: m["call_id"] == "mm-url-2")["url"] == "https://crm.example.com/c/1"


@pytest.mark.parametrize("ack", [
    {"event": "clicked", "chosen": 3},
    {"event": "clicked", "chosen": -1},
    {"event": "clicked", "chosen": True},
    {"event": "clicked", "chosen": "https://evil.example/"},
    {"event": "clicked", "chosen": None},
    {"event": "shown", "chosen": 0},
])
def test_a_bad_choice_gets_an_error_and_records_nothing(start_hub, crm, ack):
    crm.respond(NATIONAL, several())
    hub = start_hub(crm_url=crm.url, crm_phone_format="national")
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "mm-bad")
    noa.recv("pop")
    noa.send({"type": "ack", "call_id": "mm-bad", **ack})
    error = noa.recv("error")
    assert error["code"] == "bad_choice"
    assert hub.hub.store.query("SELECT count(*) AS n FROM contact_choices").n[0] == 0


def test_a_choice_for_a_pop_that_offered_none_or_was_not_yours(start_hub, crm):
    crm.respond(NATIONAL, contract("One Only"))
    hub = start_hub(crm_url=crm.url, crm_phone_format="national")
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    ring(hub, "mm-one")
    noa.recv("pop")
    noa.send({"type": "ack", "call_id": "mm-one", "event": "clicked", "chosen": 0})
    assert noa.recv("error")["code"] == "bad_choice"
    avi.send({"type": "ack", "call_id": "mm-one", "event": "clicked", "chosen": 0})
    assert avi.recv("error")["code"] == "unknown_call"


def test_the_sample_crm_lists_the_contacts_of_a_shared_number(hub):
    noa = Agent(hub, TOKENS["noa"])
    ring(hub, "mm-sample", caller="035551000")
    pop = noa.recv("pop")
    assert pop["status"] == "multiple" and [c["name"] for c in pop["contacts"]] == ["Ruth Ben-David", "Eli Ben-David"]
    assert all(c["url"].startswith(hub.url + "/crm/contacts/") for c in pop["contacts"])
