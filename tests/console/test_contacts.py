"""Contacts page: search, dial from a selected row, CSV import — against the real hub."""

from __future__ import annotations

import re
import time

from console import session
from console.hubclient import HubClient, HubError, csv_chunks
from console.views import contacts
from tests.support.hub import TOKENS, wait_rows

GRID = contacts.GRID_KEY


def select(at, row: int):
    at.session_state[GRID] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def test_search_narrows_the_grid_by_name_company_or_any_spelling_of_a_number(console):
    at = console("contacts", token="noa")
    everyone = at.dataframe[0].value
    assert len(everyone) == 148 and list(everyone.columns) == contacts.GRID_COLUMNS
    for query in ("voicenter", "John Doe", "0722776772", "072-277-6772", "+972 72 277 6772", "972722776772"):
        at.text_input(key=contacts.SEARCH_KEY).input(query).run()
        found = at.dataframe[0].value
        assert 1 <= len(found) < 10, query
        assert "John Doe" in set(found["name"]), query
    at.text_input(key=contacts.SEARCH_KEY).input("zzz-nobody").run()
    assert not at.dataframe and "No contact matches" in at.info[0].value


def test_a_selected_row_dials_through_the_hub_with_source_console(hub, console):
    at = console("contacts", token="noa")
    at.text_input(key=contacts.SEARCH_KEY).input("voicenter").run()
    assert at.button(key="dial_button").disabled  # nothing selected yet
    select(at, 0)
    row = at.dataframe[0].value.iloc[0]
    assert [t.value for t in at.text][:2] == [f"{row['name']} · {row['company']}", row["phone"]]
    at.button(key="dial_button").click().run()
    assert not at.exception
    dials = wait_rows(hub, "SELECT source, leg_a_kind, leg_b, agent_id FROM dials", timeout=15)
    assert dials.to_dict("records") == [{"source": "console", "leg_a_kind": "extension",
                                         "leg_b": row["phone"], "agent_id": "noa"}]
    assert at.get("progress")  # the progress beside the grid
    # The fragment's function polls /api/dials/{id}; the sim (20x speed) finishes the dial quickly.
    deadline = time.monotonic() + 30
    while at.session_state["dial"]["state"] not in contacts.DONE and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    dial = at.session_state["dial"]
    assert dial["state"] in ("bridged", "ended", "failed")
    if dial["state"] == "failed":  # the sim fails some dials at random: the reason is said
        assert at.error[0].value.startswith("Failed: ") and len(at.error[0].value) > 10
    else:
        assert at.success or at.info


def test_leg_a_can_be_mobile_or_another_number(hub, console):
    at = console("contacts", token="avi")
    select(at, 1)
    labels = at.selectbox(key="leg_a_choice").options
    assert labels == ["My extension (202)", "My mobile (052-765-4321)", "My home phone (09-955-1234)", "Another number…"]
    at.selectbox(key="leg_a_choice").select("Another number…").run()
    assert at.button(key="dial_button").disabled  # no number typed yet
    # A typed leg A must be one of the agent's own numbers (or on the hub's allow-list)
    at.text_input(key="leg_a_number").input("+972 52-765-4321").run()
    at.button(key="dial_button").click().run()
    dials = wait_rows(hub, "SELECT source, leg_a_kind, leg_a FROM dials", timeout=15)
    assert dials.to_dict("records") == [{"source": "console", "leg_a_kind": "number", "leg_a": "+972527654321"}]


def test_a_refused_dial_says_why(hub, console):
    at = console("contacts", token="noa")
    at.text_input(key=contacts.SEARCH_KEY).input("John Doe").run()
    select(at, 0)
    at.selectbox(key="leg_a_choice").select("Another number…").run()
    at.text_input(key="leg_a_number").input("0722776772").run()  # John's own number as leg A
    at.button(key="dial_button").click().run()
    assert at.session_state["dial"]["state"] == "failed"
    assert at.error[0].value.startswith("Failed: ") and "your own phone" in at.error[0].value


def test_a_selection_made_before_a_new_search_is_not_dialled(console):
    at = console("contacts", token="noa")
    select(at, 3)
    assert not at.button(key="dial_button").disabled
    at.text_input(key=contacts.SEARCH_KEY).input("voicenter").run()  # row 3 would now be someone else
    assert at.button(key="dial_button").disabled


CSV = ("name,phone,company,email\n"
       "Zelda Imported,054-812-9876,Hyrule Ltd,zelda@example.com\n"
       ",0527654000,Nameless,\n"
       "Bad Number,12,Nowhere,\n"
       "Link Imported,+44 20 7946 0999,Hyrule Ltd,\n")


def test_csv_import_previews_then_imports_and_lists_bad_rows(hub, console):
    at = console("contacts", token="dana")
    at.get("file_uploader")[0].upload("new.csv", CSV.encode(), "text/csv")
    at.run()
    assert not at.exception
    assert "2 contact(s) ready to import; 2 row(s) will be skipped." in [t.value for t in at.text]
    grid, preview, problems = (d.value for d in at.dataframe)
    assert list(preview["name"]) == ["Zelda Imported", "Link Imported"]
    assert problems.to_dict("records") == [{"line": 3, "reason": "name is empty"},
                                           {"line": 4, "reason": "'12' is not a valid phone number"}]
    assert len(hub.hub.contacts) == 148  # a preview imports nothing
    at.button(key="import_button").click().run()
    assert len(hub.hub.contacts) == 150
    assert "Imported 2 contact(s) from this file." in at.success[0].value
    assert len(at.dataframe[0].value) == 150  # the grid was refreshed
    at.run()
    assert len(hub.hub.contacts) == 150  # a rerun does not import twice
    at.text_input(key=contacts.SEARCH_KEY).input("hyrule").run()
    assert set(at.dataframe[0].value["name"]) == {"Zelda Imported", "Link Imported"}


def test_a_file_that_is_not_utf8_is_refused_with_what_to_do(console):
    at = console("contacts", token="dana")
    at.get("file_uploader")[0].upload("latin1.csv", "name,phone\nJosé,0527654000\n".encode("latin-1"), "text/csv")
    at.run()
    assert "not UTF-8" in at.error[0].value


def test_a_big_import_goes_in_chunks_under_the_hubs_body_limit(hub):
    rows = [f"Person {i:05d},+1 212-555-{i % 10000:04d},Big Co {i}" for i in range(3000)]
    rows[2500] = "Broken Row,not-a-number,X"
    text = "name,phone,company\n" + "\n".join(rows) + "\n"
    assert len(text.encode()) > hub.settings.max_body_bytes
    chunks = csv_chunks(text, 60_000)
    assert len(chunks) > 1 and all(len(c.encode()) <= 60_000 for _, c in chunks)
    client = HubClient(hub.url, TOKENS["dana"])
    preview = client.import_contacts(text, dry_run=True)
    assert (preview["valid"], preview["imported"]) == (2999, 0)
    assert preview["problems"] == [{"line": 2502, "reason": "'not-a-number' is not a valid phone number"}]
    assert client.import_contacts(text, dry_run=False)["imported"] == 2999
    assert client.contacts("Person 02999")["contacts"][0]["company"] == "Big Co 2999"


def test_thousands_of_contacts_stay_fast(hub, console):
    client = HubClient(hub.url, TOKENS["dana"])
    text = "name,phone\n" + "\n".join(f"Bulk {i:05d},+1 212-555-{i % 10000:04d}" for i in range(5000))
    client.import_contacts(text, dry_run=False)
    at = console("contacts", token="noa")
    assert len(at.dataframe[0].value) == contacts.LIMIT
    assert "(the first 5,000: search to narrow)" in at.caption[0].value
    started = time.perf_counter()
    select(at, 4000)  # a row click: the grid is not fetched again
    assert time.perf_counter() - started < 3
    assert at.text[0].value.startswith("Bulk ")


def test_no_sign_in_no_grid(console):
    at = console("contacts", token=None)
    assert not at.dataframe and "Sign in" in at.info[0].value


class ScriptedDials:
    """What /api/dials/{id} answers, one answer per poll."""

    def __init__(self, *answers: dict):
        self.answers = iter(answers)

    def dial_state(self, dial_id: str) -> dict:
        return next(self.answers)


def test_dial_progress_never_goes_back_and_a_failure_says_why():
    # Between the provider's report and the hub's row being written, the hub may answer from
    # the row (still "requested"): the panel keeps the furthest step it saw.
    client = ScriptedDials({"state": "leg_b_ringing"}, {"state": "requested", "outcome": None},
                           {"state": "failed", "outcome": "failed", "error": "leg_b_busy"})
    dial = {"dial_id": "d1", "state": "requested", "started": time.time()}
    dial = contacts.poll_dial(client, dial)
    assert dial["state"] == "leg_b_ringing"
    dial = contacts.poll_dial(client, dial)
    assert dial["state"] == "leg_b_ringing"
    dial = contacts.poll_dial(client, dial)
    assert (dial["state"], dial["reason"]) == ("failed", "the number is busy")
    assert contacts.poll_dial(client, dial) is dial  # over: the hub is not asked again


def test_time_to_connect_is_measured_once():
    dial = contacts.poll_dial(ScriptedDials({"state": "bridged"}),
                              {"dial_id": "d2", "state": "leg_b_ringing", "started": time.time() - 4})
    assert dial["state"] == "bridged" and 3.5 < dial["to_bridge_s"] < 6


def test_a_typed_number_is_dialled_hung_up_and_says_when_it_ended(hub, console):
    at = console("contacts", token="noa")
    assert at.button(key="dial_button").disabled  # nothing selected, nothing typed
    at.text_input(key="dial_to").input("054-765-7777").run()  # the sim's always-connects test number
    at.button(key="dial_button").click().run()
    assert not at.exception
    dials = wait_rows(hub, "SELECT source, leg_b, agent_id FROM dials", timeout=15)
    assert dials.to_dict("records") == [{"source": "console", "leg_b": "054-765-7777", "agent_id": "noa"}]
    at.button(key="hangup_button").click().run()  # still ringing noa's phone
    assert not at.exception
    assert at.session_state["dial"]["state"] == "failed"
    assert at.error[0].value == "Failed: you hung up before the call was connected"
    assert any(re.fullmatch(r"Ended at \d\d:\d\d:\d\d", c.value) for c in at.main.caption), at.main.caption
    assert not [b for b in at.button if b.key == "hangup_button"]  # over: nothing left to hang up
    assert wait_rows(hub, "SELECT error FROM dials WHERE ended_at IS NOT NULL", timeout=15).error[0] == "hung_up"


class NoHangup(ScriptedDials):
    def hangup(self, dial_id: str) -> dict:
        raise HubError("refused", "the webhook provider cannot hang up a dial; hang up on your phone",
                       "hangup_unsupported", 409)


def test_a_provider_that_cannot_hang_up_is_said_and_the_dial_goes_on():
    dial = {"dial_id": "d3", "state": "bridged", "started": time.time()}
    dial = contacts.hang_up(NoHangup(), dial)
    assert dial["state"] == "bridged" and "hang up on your phone" in dial["hangup_note"]
    ended = contacts.apply_answer(dial, {"state": "ended", "outcome": "bridged", "ended_at": "2026-12-02T09:15:07.250Z"})
    assert ended["state"] == "ended" and session.clock_time(ended["ended_at"], "Asia/Jerusalem") == "11:15:07"
