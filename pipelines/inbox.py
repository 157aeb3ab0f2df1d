"""The agents' inbox: missed calls (and pops that reached no browser) kept until handled.

``InboxBook`` is the pure state: which entries are open for whom, and how a call moving on
changes them. ``Inbox`` is the thin shell around it: the ``missed_calls`` rows in the store (the
open ones are loaded again when the hub starts), and an ``inbox`` message to each agent whose
entries changed.

Rules (docs/PROTOCOL.md, "Inbox"):

- A call that rang at an agent (it was popped to them, whatever their ``pop_on``) and was not
  answered anywhere enters the inbox of every agent it rang at, as kind ``missed``, when it ends.
  A call answered by anyone never enters anyone's inbox.
- A call answered by the agent while the pop reached none of their browsers enters theirs as
  kind ``unseen`` (the pop waited for them), when it ends.
- An entry leaves the inbox when it is handled: ``done`` (the agent said so), ``called_back``
  (a click-to-call with ``callback_for``; the dial's id is kept), ``answered_later`` (a later call
  from the same number was answered, by anyone), ``answered_elsewhere`` (the provider's call
  record says the call was answered after all).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any, Iterable

from .calls import Call
from .errors import ApiError
from .events import iso_utc
from .phone import normalise
from .sessions import Sessions
from .store import Store

log = logging.getLogger("callpop.inbox")
HOW = ("called_back", "done", "answered_later", "answered_elsewhere")
MAX_SHOWN = 200  # entries one inbox message carries at most (the count is always the whole)


@dataclasses.dataclass
class Entry:
    call_id: str
    agent_id: str
    kind: str  # missed | unseen
    caller: str
    e164: str
    phone: str  # as shown to people
    name: str
    missed_at: datetime
    handled_at: datetime | None = None
    handled_how: str = ""
    callback_dial_id: str = ""

    @property
    def key(self) -> dict:
        return {"call_id": self.call_id, "agent_id": self.agent_id, "missed_at": self.missed_at}

    def row(self) -> dict:
        return {**self.key, "kind": self.kind, "caller": self.caller, "e164": self.e164 or None,
                "name": self.name or None, "handled_at": self.handled_at, "handled_how": self.handled_how or None,
                "callback_dial_id": self.callback_dial_id or None}

    def public(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "agent_id": self.agent_id, "kind": self.kind, "caller": self.caller,
                "phone": self.phone, "e164": self.e164, "name": self.name, "missed_at": iso_utc(self.missed_at, "auto"),
                "handled_at": iso_utc(self.handled_at, "auto"), "handled_how": self.handled_how or None,
                "callback_dial_id": self.callback_dial_id or None}


class InboxBook:
    """The open entries, by agent; pure (no store, no sockets)."""

    def __init__(self):
        self.open: dict[str, dict[str, Entry]] = {}  # agent id -> call id -> entry
        self.unreached: set[tuple[str, str]] = set()  # (call id, agent id): a pop that reached no browser yet

    def add(self, entry: Entry) -> bool:
        mine = self.open.setdefault(entry.agent_id, {})
        if entry.call_id in mine:
            return False
        mine[entry.call_id] = entry
        return True

    def of(self, agent_id: str) -> list[Entry]:
        """The agent's open entries, newest first."""
        return sorted(self.open.get(agent_id, {}).values(), key=lambda e: e.missed_at, reverse=True)

    def everyone(self) -> list[Entry]:
        return sorted((e for mine in self.open.values() for e in mine.values()),
                      key=lambda e: e.missed_at, reverse=True)

    def get(self, agent_id: str, call_id: str) -> Entry | None:
        return self.open.get(agent_id, {}).get(call_id)

    def handle(self, entry: Entry, how: str, at: datetime, dial_id: str = "") -> Entry:
        assert how in HOW, how
        self.open.get(entry.agent_id, {}).pop(entry.call_id, None)
        entry.handled_at, entry.handled_how, entry.callback_dial_id = at, how, dial_id
        return entry

    def call_ended(self, call: Call, at: datetime) -> list[Entry]:
        """The entries a call that just ended makes (none for a call answered and seen)."""
        pop = call.pop or {}
        made = []
        if call.status == "missed":
            owners = [(a, "missed") for a in call.popped]
        elif call.status == "ended" and (call.call_id, call.agent_id) in self.unreached:
            owners = [(call.agent_id, "unseen")]
        else:
            owners = []
        for agent_id, kind in owners:
            entry = Entry(call.call_id, agent_id, kind, call.caller, call.phone.e164, call.phone.display,
                          pop.get("name", ""), at)
            if self.add(entry):
                made.append(entry)
        self.unreached = {k for k in self.unreached if k[0] != call.call_id}
        return made

    def number_answered(self, call: Call, at: datetime) -> list[Entry]:
        """A call answered: the open entries of other calls from the same number are handled."""
        if not call.phone.e164:
            return []
        return [self.handle(e, "answered_later", at) for e in self.everyone()
                if e.e164 == call.phone.e164 and e.call_id != call.call_id]

    def answered_after_all(self, call_id: str, at: datetime) -> list[Entry]:
        return [self.handle(e, "answered_elsewhere", at) for e in self.everyone() if e.call_id == call_id]


def message(entries: list[Entry]) -> dict[str, Any]:
    """The ``inbox`` message: an agent's open entries (newest first) and how many there are."""
    return {"type": "inbox", "missed": [e.public() for e in entries[:MAX_SHOWN]], "count": len(entries)}


class Inbox:
    """The book, its rows in ``missed_calls`` and the ``inbox`` messages."""

    def __init__(self, store: Store, sessions: Sessions, region: str):
        self.store, self.sessions, self.region = store, sessions, region
        self.book = InboxBook()

    def load(self) -> int:
        """The open entries from the database (a blocking read: called once, at start)."""
        rows = self.store.query("SELECT * FROM missed_calls WHERE handled_at IS NULL ORDER BY missed_at")
        for r in rows.to_dict("records"):
            self.book.add(self.entry_of(r))
        return len(rows)

    def entry_of(self, r: dict) -> Entry:
        """An entry from its ``missed_calls`` row (as pandas gives it)."""
        caller = text(r["caller"])
        return Entry(r["call_id"], r["agent_id"], text(r["kind"]) or "missed", caller, text(r["e164"]),
                     normalise(caller, self.region).display, text(r["name"]), r["missed_at"].to_pydatetime())

    def message_for(self, agent_id: str) -> dict[str, Any]:
        return message(self.book.of(agent_id))

    def entries(self, agent_id: str | None) -> list[Entry]:
        """Open entries: the agent's, or everyone's for None."""
        return self.book.everyone() if agent_id is None else self.book.of(agent_id)

    # --- what the hub tells it
    def pop_sent(self, call: Call, agent_ids: Iterable[str]) -> None:
        """A pop went out now: the agents with no socket did not get it."""
        for agent_id in agent_ids:
            if not self.sessions.count(agent_id):
                self.book.unreached.add((call.call_id, agent_id))

    def reached(self, agent_id: str, call_ids: Iterable[str]) -> None:
        """A socket of the agent got these calls' pops (the welcome's replay)."""
        for call_id in call_ids:
            self.book.unreached.discard((call_id, agent_id))

    def call_moved(self, call: Call, at: datetime) -> None:
        if call.status == "answered":
            self._handled(self.book.number_answered(call, at))
        elif call.status in ("missed", "ended"):
            self._added(self.book.call_ended(call, at))

    def _added(self, entries: list[Entry]) -> None:
        for e in entries:
            self.store.insert("missed_calls", e.row())
        self._notify({e.agent_id for e in entries})

    def answered_after_all(self, call_id: str, at: datetime) -> None:
        self._handled(self.book.answered_after_all(call_id, at))

    # --- what agents do
    def done(self, entry: Entry, at: datetime) -> Entry:
        self._handled([self.book.handle(entry, "done", at)])
        return entry

    def callback_entry(self, agent_id: str, call_id: str | None) -> Entry | None:
        """The open entry a dial's ``callback_for`` names (the agent's own); 422 if there is none."""
        if call_id is None:
            return None
        entry = self.book.get(agent_id, call_id)
        if entry is None:
            raise ApiError(422, "bad_callback_for", f"callback_for: no open missed call {call_id[:60]!r} of yours")
        return entry

    def called_back(self, entry: Entry, dial_id: str, at: datetime) -> None:
        if self.book.get(entry.agent_id, entry.call_id) is not entry:  # two call backs at once: the first counts
            return
        self._handled([self.book.handle(entry, "called_back", at, dial_id)])

    def _handled(self, entries: list[Entry]) -> None:
        for e in entries:
            self.store.update("missed_calls", e.key, {"handled_at": e.handled_at, "handled_how": e.handled_how,
                                                      "callback_dial_id": e.callback_dial_id or None})
        self._notify({e.agent_id for e in entries})

    def _notify(self, agent_ids: set[str]) -> None:
        for agent_id in agent_ids:
            self.sessions.send(agent_id, self.message_for(agent_id))


def text(value: Any) -> str:
    """A text column's value, '' for NULL (NaN or None)."""
    return value if isinstance(value, str) else ""
