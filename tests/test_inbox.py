"""The inbox's rules, pure: which calls enter whose inbox, and what handles them."""

from datetime import datetime, timedelta

from pipelines.calls import Call
from pipelines.inbox import InboxBook, message
from pipelines.phone import normalise

T0 = datetime(2026, 12, 2, 10, 0)


def call(call_id, status, popped=("noa",), caller="0722776772", agent_id="noa", name="John Doe"):
    c = Call(call_id, "inbound", caller, "0722776773", "sim", normalise(caller, "IL"), T0, status=status,
             popped={a: "201" for a in popped}, agent_id=agent_id)
    c.pop = {"name": name}
    return c


def test_a_missed_call_enters_every_inbox_it_rang_at_once():
    book = InboxBook()
    made = book.call_ended(call("m1", "missed", popped=("noa", "avi")), T0)
    assert [(e.agent_id, e.kind, e.name, e.phone, e.e164) for e in made] == [
        ("noa", "missed", "John Doe", "072-277-6772", "+972722776772"),
        ("avi", "missed", "John Doe", "072-277-6772", "+972722776772")]
    assert book.call_ended(call("m1", "missed", popped=("noa", "avi")), T0) == []  # a repeated end: no copy
    assert message(book.of("noa"))["count"] == 1 and message(book.of("dana")) == {"type": "inbox", "missed": [],
                                                                                   "count": 0}


def test_an_answered_call_enters_only_when_its_pop_reached_no_browser():
    book = InboxBook()
    assert book.call_ended(call("a1", "ended"), T0) == []
    book.unreached.add(("a2", "noa"))
    (entry,) = book.call_ended(call("a2", "ended"), T0)
    assert (entry.agent_id, entry.kind) == ("noa", "unseen")
    assert not book.unreached  # forgotten once the call is over


def test_a_later_answer_from_the_same_number_handles_the_earlier_entries_only():
    book = InboxBook()
    book.call_ended(call("m1", "missed"), T0)
    book.call_ended(call("m2", "missed", popped=("avi",), agent_id="avi", caller="+972-72-277-6772"), T0)
    book.call_ended(call("m3", "missed", caller="0545550123"), T0)
    handled = book.number_answered(call("m4", "answered", popped=("sarah",)), T0 + timedelta(minutes=5))
    assert sorted((e.call_id, e.handled_how) for e in handled) == [("m1", "answered_later"), ("m2", "answered_later")]
    assert [e.call_id for e in book.everyone()] == ["m3"]
    assert book.number_answered(call("w1", "answered", caller=""), T0) == []  # withheld: matches nothing


def test_handled_entries_leave_the_open_book_with_how_and_the_dial():
    book = InboxBook()
    (entry,) = book.call_ended(call("m1", "missed"), T0)
    book.handle(entry, "called_back", T0 + timedelta(seconds=90), "d1")
    assert book.get("noa", "m1") is None
    assert entry.public()["handled_how"] == "called_back" and entry.public()["callback_dial_id"] == "d1"
    assert entry.public()["handled_at"] == "2026-12-02T10:01:30Z"
    book.call_ended(call("m2", "missed"), T0)
    assert [e.handled_how for e in book.answered_after_all("m2", T0)] == ["answered_elsewhere"]
