"""The routing core, without sockets or a database."""

from datetime import datetime, timedelta

from pipelines.agents import Agent, Agents
from pipelines.calls import CallBook
from pipelines.events import CallEvent

T0 = datetime(2026, 11, 25, 10, 0, 0)
AGENTS = Agents([Agent("noa", "Noa", "t1", "201"), Agent("avi", "Avi", "t2", "202"),
                 Agent("avi2", "Avi's desk", "t3", "202")])


def ev(kind, ext="", call_id="c1", **kw):
    return CallEvent(call_id=call_id, type=kind, caller="0722776772", callee="0722776773", extension=ext, **kw)


def test_ringing_pops_every_agent_of_the_extension_once():
    book = CallBook("IL")
    step = book.apply(ev("ringing", "202"), AGENTS, T0, "sim")
    assert [a.id for a in step.pop_to] == ["avi", "avi2"] and step.extension == "202"
    assert step.insert_call["extension"] == "202" and step.insert_call["caller_e164"] == "+972722776772"
    again = book.apply(ev("ringing", "202"), AGENTS, T0, "sim")
    assert again.pop_to == [] and again.ignored == "repeated ringing" and again.insert_call is None


def test_ring_group_then_answer_clears_the_others():
    book = CallBook("IL")
    book.apply(ev("ringing", "201"), AGENTS, T0, "sim")
    second = book.apply(ev("ringing", "202"), AGENTS, T0, "sim")
    assert [a.id for a in second.pop_to] == ["avi", "avi2"]
    answered = book.apply(ev("answered", "201"), AGENTS, T0 + timedelta(seconds=5), "sim")
    states = dict((agent, m["state"]) for agent, m in answered.notify)
    assert states == {"noa": "answered", "avi": "answered_elsewhere", "avi2": "answered_elsewhere"}
    assert answered.update_call["answered_by"] == "201" and answered.update_call["agent_id"] == "noa"
    hangup = book.apply(ev("hangup"), AGENTS, T0 + timedelta(seconds=60), "sim")
    assert {m["state"] for _, m in hangup.notify} == {"ended"} and hangup.update_call["status"] == "ended"
    assert book.apply(ev("hangup"), AGENTS, T0, "sim").ignored == "repeated hangup"


def test_missed_call_and_late_ringing():
    book = CallBook("IL")
    book.apply(ev("ringing", "201"), AGENTS, T0, "sim")
    missed = book.apply(ev("hangup", cause="no answer"), AGENTS, T0, "sim")
    assert missed.notify == [("noa", {"type": "call", "call_id": "c1", "state": "missed"})]
    assert missed.update_call["hangup_cause"] == "no answer"
    late = book.apply(ev("ringing", "202"), AGENTS, T0, "sim")
    assert late.pop_to == [] and "missed" in late.ignored


def test_outbound_and_unknown_extensions_do_not_pop():
    book = CallBook("IL")
    assert book.apply(ev("ringing", "201", direction="outbound"), AGENTS, T0, "sim").pop_to == []
    unknown = book.apply(ev("ringing", "999", call_id="c2"), AGENTS, T0, "sim")
    assert unknown.pop_to == [] and "999" in unknown.ignored and unknown.insert_call is not None


def test_the_event_time_is_used_when_given_and_calls_are_evicted():
    book = CallBook("IL")
    at = datetime.fromisoformat("2026-11-25T12:00:00+02:00")
    step = book.apply(ev("ringing", "201", at=at), AGENTS, T0, "sim")
    assert step.call.started_at == datetime(2026, 11, 25, 10, 0, 0)
    book.apply(ev("hangup"), AGENTS, T0, "sim")
    assert book.evict(T0 + timedelta(minutes=1)) == []
    assert [c.call_id for c in book.evict(T0 + timedelta(minutes=3))] == ["c1"]


def test_a_call_stamped_in_the_future_is_evicted_by_the_hubs_clock():
    book = CallBook("IL")
    book.apply(ev("ringing", "201", at=T0 + timedelta(hours=20)), AGENTS, T0, "sim")
    assert book.evict(T0 + timedelta(hours=3)) == []
    assert [c.call_id for c in book.evict(T0 + timedelta(hours=5))] == ["c1"]
