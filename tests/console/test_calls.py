"""My calls under AppTest against the real hub: the agent's calls listed, a note saved from the
form reaches the hub's database, and nobody else's calls show."""

from __future__ import annotations

from tests.console.conftest import rendered
from tests.support.hub import post_event, wait_rows


def test_my_calls_lists_the_agents_calls_and_saves_a_note(console, hub):
    for event in ({"type": "ringing", "extension": "201"}, {"type": "answered", "extension": "201"},
                  {"type": "hangup"}):
        assert post_event(hub, call_id="k1", caller="0722776772", **event).status_code == 202
    wait_rows(hub, "SELECT 1 FROM calls WHERE call_id = 'k1' AND status = 'ended'")
    at = console("calls", token="noa")
    page = rendered(at)
    assert "My calls" in page and "0722776772" in page and "ended" in page
    disposition = next(s for s in at.selectbox if s.label == "Disposition")
    disposition.set_value("Callback")
    next(t for t in at.text_area if t.label == "Notes").input("call back after the demo")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    rows = wait_rows(hub, "SELECT agent_id, disposition, notes FROM call_notes WHERE call_id = 'k1'")
    assert rows.to_dict("records") == [{"agent_id": "noa", "disposition": "Callback",
                                        "notes": "call back after the demo"}]


def test_another_agent_sees_none_of_them(console, hub):
    assert post_event(hub, call_id="k2", caller="0722776772", type="ringing", extension="201").status_code == 202
    assert post_event(hub, call_id="k2", type="hangup").status_code == 202
    wait_rows(hub, "SELECT 1 FROM calls WHERE call_id = 'k2' AND status = 'missed'")
    page = rendered(console("calls", token="avi"))
    assert "No calls of yours" in page and "0722776772" not in page
