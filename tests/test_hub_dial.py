"""Click-to-call through the real hub and the simulated PBX."""

import logging

import pytest

from tests.support import INGEST
from tests.support.hub import TOKENS, Agent, api, wait_rows


def dial(hub, token=TOKENS["noa"], **body):
    return api(hub, "POST", "/api/dial", token, json=body)


def states(agent, dial_id, until=("ended", "failed"), timeout=10):
    seen = []
    while not seen or seen[-1]["state"] not in until:
        seen.append(agent.recv("dial", timeout=timeout, where=lambda m: m["dial_id"] == dial_id))
    return seen


def test_dial_walks_leg_a_then_leg_b_to_bridged(hub):
    noa = Agent(hub, TOKENS["noa"])
    r = dial(hub, to="054-555-7777", leg_a="mobile", source="console")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["leg_a"] == "+972548124567" and body["leg_a_kind"] == "mobile" and body["to"] == "054-555-7777"
    seen = [m["state"] for m in states(noa, body["dial_id"])]
    assert seen == ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended"]
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL", [body["dial_id"]]).iloc[0]
    assert (row.outcome, row.source, row.leg_b_e164, row.provider) == ("bridged", "console", "+972545557777", "sim")
    assert row.requested_at <= row.leg_a_answered_at <= row.bridged_at <= row.ended_at
    assert api(hub, "GET", f"/api/dials/{body['dial_id']}", TOKENS["noa"]).json()["outcome"] == "bridged"


def test_unanswered_leg_a_fails_with_the_reason_recorded(start_hub):
    hub = start_hub(dial_leg_a_allowed="+972545219999")  # a number Noa may type as her phone
    noa = Agent(hub, TOKENS["noa"])
    dial_id = dial(hub, to="054-555-7777", leg_a="054-521-9999").json()["dial_id"]
    last = states(noa, dial_id)[-1]
    assert last["state"] == "failed" and last["error"] == "leg_a_no_answer" and last["reason"]
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND outcome IS NOT NULL", [dial_id]).iloc[0]
    assert (row.outcome, row.error, row.leg_a_kind) == ("failed", "leg_a_no_answer", "number")


def test_busy_leg_b_fails(hub):
    noa = Agent(hub, TOKENS["noa"])
    dial_id = dial(hub, to="054-555-8888").json()["dial_id"]
    last = states(noa, dial_id)[-1]
    assert (last["state"], last["error"]) == ("failed", "leg_b_busy")


def test_extension_leg_a_is_dialled_as_is(hub):
    r = dial(hub, to="03-555-7777", leg_a="extension")
    assert r.status_code == 202 and r.json()["leg_a"] == "201"


@pytest.mark.parametrize("body, code", [
    ({"to": "call me maybe"}, "not_a_number"),
    ({"to": "12"}, "not_a_number"),
    ({"to": "054-812-4567"}, "own_number"),             # Noa's own mobile
    ({"to": "03-987-6543", "leg_a": "mobile"}, "own_number"),  # Noa's home phone
    ({"to": "+1 900 555 0100"}, "blocked_prefix"),
    ({"to": "+44 9 0912 3456"}, "not_a_number"),
    ({"to": "0722776772", "leg_a": "pager"}, "bad_leg_a"),
    # Leg A is rung first: the toll-fraud rules hold for it too, however it is written.
    ({"to": "0722776772", "leg_a": "+1 900 555 0123"}, "blocked_prefix"),
    ({"to": "0722776772", "leg_a": "+33 8 91 23 45 67"}, "premium_rate"),
    ({"to": "0722776772", "leg_a": "+٣٣ ٨ ٩١ ٢٣ ٤٥ ٦٧"}, "premium_rate"),
    ({"to": "0722776772", "leg_a": "00\u00a0881\u00a06\u00a01234\u00a05678"}, "high_cost_network"),
    ({"to": "0722776772", "leg_a": "+972 1 700 700 700"}, "number_type_not_allowed"),
    ({"to": "0722776772", "leg_a": "054-521-9999"}, "leg_a_not_allowed"),  # not one of Noa's phones
    ({"to": "+53 5 123 4567"}, "country_not_allowed"),  # only the default region (IL) by default
])
def test_undiallable_requests_are_refused_with_a_reason_and_recorded(hub, body, code):
    r = dial(hub, **body)
    assert r.status_code == 422 and r.json()["error"] == code, r.text
    assert r.json()["message"]
    assert wait_rows(hub, "SELECT * FROM dials WHERE outcome = 'refused'").error.tolist() == [code]


def test_blocked_prefix_and_allowed_countries_come_from_settings(start_hub):
    hub = start_hub(dial_blocked_prefixes="+97254", dial_allowed_countries="IL,GB")
    assert dial(hub, to="054-555-7777").json()["error"] == "blocked_prefix"
    assert dial(hub, to="+1 212 555 7777").json()["error"] == "country_not_allowed"
    assert dial(hub, to="03-555-7777").status_code == 202
    assert dial(hub, to="+44 20 7946 0321").status_code == 202
    assert dial(hub, to="+44 70 1234 5678").json()["error"] == "number_type_not_allowed"  # UK personal number


def test_every_country_and_opted_in_types_when_the_settings_say_so(start_hub):
    hub = start_hub(dial_allowed_countries="*", dial_allowed_types="PERSONAL_NUMBER")
    assert dial(hub, to="+1 212 555 7777").status_code == 202
    assert dial(hub, to="+44 70 1234 5678").status_code == 202
    assert dial(hub, to="+33 8 91 23 45 67").json()["error"] == "premium_rate"


def test_a_csv_agent_whose_mobile_is_premium_is_not_rung(start_hub, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text("id,name,token,extension,mobile,home\n"
                      "mal,Mal,tok-mal,301,+33 8 91 23 45 67,\u0660\u0663-\u0669\u0668\u0667-\u0666\u0665\u0664\u0663\n")
    hub = start_hub(agents_csv=str(agents))
    r = dial(hub, "tok-mal", to="054-555-7777", leg_a="mobile")
    assert r.status_code == 422 and r.json()["error"] == "premium_rate" and "mobile" in r.json()["message"]
    row = wait_rows(hub, "SELECT * FROM dials WHERE outcome = 'refused'").iloc[0]
    assert (row.agent_id, row.leg_a_kind, row.error) == ("mal", "mobile", "premium_rate")
    # The home phone, written in Arabic-Indic digits in the CSV, is an ordinary Israeli number.
    r = dial(hub, "tok-mal", to="054-555-7777", leg_a="home")
    assert r.status_code == 202 and r.json()["leg_a"] == "+97239876543"


def test_the_hours_dial_budget_refuses_all_agents_once_spent(start_hub, caplog):
    hub = start_hub(dial_budget_per_hour=3)
    assert dial(hub, to="+1 900 555 0100").status_code == 422  # refused dials do not spend it
    for token in (TOKENS["noa"], TOKENS["avi"], TOKENS["noa"]):
        assert dial(hub, token, to="054-555-7777").status_code == 202
    status = api(hub, "GET", "/api/status", TOKENS["dana"]).json()["dial"]  # supervisors only
    assert status == {"budget_per_hour": 3, "used_last_hour": 3, "exhausted": True}
    with caplog.at_level(logging.WARNING, logger="callpop.dial"):
        for token in (TOKENS["noa"], TOKENS["avi"], TOKENS["dana"]):
            r = dial(hub, token, to="054-555-7777")
            assert r.status_code == 429 and r.json()["error"] == "dial_budget_exhausted" and r.json()["message"]
    assert len([r for r in caplog.records if "budget" in r.getMessage() and r.levelno == logging.WARNING]) == 1
    rows = wait_rows(hub, "SELECT * FROM dials WHERE error = 'dial_budget_exhausted'", n=3)
    assert len(rows) == 3 and set(rows.outcome) == {"refused"}


def test_status_shows_the_dial_budget(hub):
    assert api(hub, "GET", "/api/status", TOKENS["dana"]).json()["dial"] == {
        "budget_per_hour": 600, "used_last_hour": 0, "exhausted": False}


def test_agent_without_a_mobile_is_told_so(hub):
    r = dial(hub, TOKENS["dana"], to="054-555-7777", leg_a="home")
    assert r.status_code == 422 and r.json()["error"] == "no_leg_a"


def test_dials_are_rate_limited_per_agent(start_hub):
    hub = start_hub(dial_rate_per_minute=2)
    assert dial(hub, to="054-555-7777").status_code == 202
    assert dial(hub, to="054-555-7777").status_code == 202
    third = dial(hub, to="054-555-7777")
    assert third.status_code == 429 and third.json()["error"] == "rate_limited"
    assert dial(hub, TOKENS["avi"], to="054-555-7777").status_code == 202  # other agents unaffected


def test_agents_see_only_their_own_dials(hub):
    dial_id = dial(hub, to="054-555-7777").json()["dial_id"]
    assert api(hub, "GET", f"/api/dials/{dial_id}", TOKENS["noa"]).status_code == 200
    assert api(hub, "GET", f"/api/dials/{dial_id}", TOKENS["avi"]).status_code == 404


def test_dial_messages_go_only_to_the_dialling_agent(hub):
    noa, avi = Agent(hub, TOKENS["noa"]), Agent(hub, TOKENS["avi"])
    dial_id = dial(hub, to="054-555-7777").json()["dial_id"]
    noa.recv("dial", where=lambda m: m["dial_id"] == dial_id)
    avi.nothing("dial")


def test_webhook_progress_route_needs_the_ingest_token_and_a_known_dial(hub):
    r = api(hub, "POST", "/api/dials/nope/events", INGEST, json={"state": "bridged"})
    assert r.status_code == 404
    r = api(hub, "POST", "/api/dials/nope/events", INGEST, json={"state": "exploded"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_state"
    assert api(hub, "POST", "/api/dials/nope/events", TOKENS["noa"], json={"state": "bridged"}).status_code == 403


def test_a_finished_dial_is_answered_as_it_ends_and_after_from_the_table(start_hub):
    """The console polls a dial's state as it ends: the same answer before and after its row is
    committed, and after a restart."""
    hub = start_hub(store_commit_ms=500.0)
    noa = Agent(hub, TOKENS["noa"])
    bridged = dial(hub, to="054-555-7777", leg_a="mobile").json()["dial_id"]
    states(noa, bridged)
    busy = dial(hub, to="054-555-8888").json()["dial_id"]
    states(noa, busy)
    expected = api(hub, "GET", f"/api/dials/{bridged}", TOKENS["noa"]).json()
    assert expected.pop("ended_at").startswith("20")
    assert expected == {"dial_id": bridged, "state": "ended", "outcome": "bridged", "error": None, "to": "054-555-7777"}
    expected = api(hub, "GET", f"/api/dials/{bridged}", TOKENS["noa"]).json()
    answer = api(hub, "GET", f"/api/dials/{busy}", TOKENS["noa"]).json()
    assert (answer["state"], answer["outcome"], answer["error"]) == ("failed", "failed", "leg_b_busy")
    assert api(hub, "GET", f"/api/dials/{bridged}", TOKENS["avi"]).status_code == 404
    wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL", [bridged])
    assert api(hub, "GET", f"/api/dials/{bridged}", TOKENS["noa"]).json() == expected
    settings = hub.settings
    hub.stop()
    again = start_hub(db_path=str(settings.db_path))
    assert api(again, "GET", f"/api/dials/{bridged}", TOKENS["noa"]).json() == expected

