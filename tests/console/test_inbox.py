"""The Live page's missed calls (the inbox), against the real hub: listed with caller, name and
time; "Call back" places a dial linked to the missed call; "Done" clears it."""

from __future__ import annotations

from console.hubclient import HubClient
from tests.console.conftest import rendered
from tests.support.hub import TOKENS, post_event, wait_rows


def missed(hub, call_id: str, caller: str, extension: str = "201") -> None:
    for type_ in ("ringing", "hangup"):
        r = post_event(hub, call_id=call_id, type=type_, caller=caller, callee="0722776773", extension=extension)
        assert r.status_code == 202, r.text


def test_the_live_page_lists_my_missed_calls_and_calls_back_or_marks_done(hub, console):
    at = console("live", token="noa")
    assert any(s.value == "Missed calls · 0" for s in at.subheader)
    missed(hub, "ci-1", "0722776772")  # John Doe
    missed(hub, "ci-2", "0545550123")  # not in the CRM
    missed(hub, "ci-3", "0527654000", extension="202")  # Avi's: not on Noa's page
    assert HubClient(hub.url, TOKENS["noa"]).missed()["count"] == 2
    at.run()
    assert any(s.value == "Missed calls · 2" for s in at.subheader)
    page = rendered(at)
    assert "John Doe" in page and "072-277-6772" in page and "054-555-0123" in page
    assert "052-765-4000" not in page

    at.button(key="callback-noa-ci-1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Calling back 072-277-6772" in at.success[0].value
    dial = wait_rows(hub, "SELECT * FROM dials WHERE callback_for = 'ci-1'").iloc[0]
    assert (dial.source, dial.leg_a, dial.leg_b_e164) == ("console", "201", "+972722776772")
    assert any(s.value == "Missed calls · 1" for s in at.subheader)
    assert not [b for b in at.button if b.key == "callback-noa-ci-1"]

    at.button(key="done-noa-ci-2").click().run()
    assert at.success[0].value == "Marked done."
    assert any(s.value == "Missed calls · 0" for s in at.subheader)
    rows = wait_rows(hub, "SELECT call_id, handled_how, coalesce(callback_dial_id, '') FROM missed_calls "
                          "WHERE agent_id = 'noa' AND handled_at IS NOT NULL ORDER BY call_id", n=2)
    assert rows.values.tolist() == [["ci-1", "called_back", dial.dial_id], ["ci-2", "done", ""]]


def test_a_supervisor_sees_the_team_and_may_mark_done_but_not_call_back_for_another(hub, console):
    missed(hub, "cs-1", "0527654000", extension="202")
    at = console("live", token="dana")
    assert any(s.value == "Missed calls · 1" for s in at.subheader)
    assert "for avi" in rendered(at)
    assert at.button(key="callback-avi-cs-1").disabled
    at.button(key="done-avi-cs-1").click().run()
    assert at.success[0].value == "Marked done."
    assert HubClient(hub.url, TOKENS["avi"]).missed()["count"] == 0


def test_the_analytics_page_shows_missed_calls_and_time_to_call_back_from_the_named_query(hub, console):
    missed(hub, "ca-1", "0722776772")
    missed(hub, "ca-2", "0545550123")
    wait_rows(hub, "SELECT * FROM missed_calls", n=2)
    r = HubClient(hub.url, TOKENS["noa"]).dial("0722776772", "extension", callback_for="ca-1")
    wait_rows(hub, "SELECT * FROM missed_calls WHERE handled_how = 'called_back'")
    at = console("analytics", token="dana")
    assert not at.exception and not at.main.error
    shown = at.session_state["analytics_snapshot"]["frames"]["missed"]
    noa = shown[shown["agent_id"] == "noa"].iloc[0]
    assert (noa.entries, noa.called_back, noa.open, noa.callback_rate) == (2, 1, 1, 0.5)
    assert 0 <= noa.ttcb_p50_s < 30 and r["dial_id"]
    (grid,) = [d.value for d in at.dataframe if "ttcb_p50_s" in d.value.columns]
    mine = grid[grid["agent_id"] == "noa"].iloc[0]
    assert (mine["entries"], mine["called_back"], mine["callback_rate"]) == (2, 1, "50%")
