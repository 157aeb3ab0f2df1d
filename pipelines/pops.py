"""Screen pops: the CRM lookup under its deadline, the pop built from it, the acks that follow.

``build_pop`` (pure) makes the ``pop`` message. ``Popper.pop`` is the inbound hot path: one
task that starts (or joins) the call's lookup, waits for it at most until the deadline, sends
the pop to every socket of the agents being rung, and if the CRM was late sends a provisional
pop first and the real one when it comes. Every lookup is recorded in ``lookups`` with its
latency and outcome, every pop in ``pops``, every ack (shown / clicked / closed) on its pop's row.

Two things say why a caller was named (the pop's ``matched``): the lookup format that found
them (``CALLPOP_CRM_PHONE_FORMATS``: while the CRM says not found, the next format is asked,
within the call's one deadline), or, for a number with several matches, the contact an agent
chose for it before (``contact_choices``; ``choose`` records a choice, ``load_choices`` reads
the latest per number at start).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from datetime import datetime
from typing import Any, Callable

from .agents import Agent
from .calls import Call
from .crm import CrmClient
from .crm_contract import LookupResult
from .events import ACK_EVENTS, utcnow
from .metrics import Metrics
from .phone import for_crm
from .sessions import Sessions, dumps
from .store import Store

log = logging.getLogger("callpop.pops")


def build_pop(call: Call, result: LookupResult | None, extension: str,
              matched: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``pop`` message for a call; ``result`` None means the CRM has not answered yet.
    ``matched``: why the caller was named (docs/PROTOCOL.md)."""
    status = "pending" if result is None else result.pop_status
    r = result or LookupResult("timeout")
    extra: dict[str, Any] = {}
    if status == "multiple" and r.contacts:
        extra["contacts"] = [c.public() for c in r.contacts]
    if matched:
        extra["matched"] = matched
    return extra | {
        "type": "pop", "call_id": call.call_id, "status": status,
        "phone": call.phone.display, "e164": call.phone.e164, "raw": call.caller,
        "name": r.name, "company": r.company, "url": r.url, "total": r.total,
        "did": call.callee, "extension": extension, "direction": call.direction,
        "at": call.started_at.isoformat() + "Z",
    }


_ACK_BITS = {event: 1 << i for i, event in enumerate(ACK_EVENTS)}


@dataclasses.dataclass
class _CallLookup:
    """One lookup per call, shared by every extension of a ring group."""
    future: asyncio.Future[LookupResult]
    cache: str
    started: float  # monotonic
    started_at: datetime
    sent: str = ""  # the value the CRM was last asked (the one that matched, for a hit)
    format: str = ""  # its format
    attempt: int = 1  # which of the formats it is (1: the first)
    row_written: bool = False
    late_written: bool = False

    @property
    def result(self) -> LookupResult | None:
        return _result_of(self.future) if self.future.done() else None


HITS = ("found", "multiple")


class Popper:
    def __init__(self, crm: CrmClient, store: Store, sessions: Sessions, *, deadline_ms: int,
                 phone_formats: list[str], context_params: list[str], clock: Callable[[], float] = time.monotonic,
                 ledger_size: int = 50000, metrics: Metrics | None = None):
        self.crm, self.store, self.sessions = crm, store, sessions
        self.metrics = metrics or Metrics()
        self.deadline_s = deadline_ms / 1000
        self.phone_formats = phone_formats
        # number -> the contact last chosen for it (see choose); the hub loads them at start.
        self.choices: dict[str, dict[str, Any]] = {}
        # call id -> (number, contacts offered): what an ack's "chosen" may name.
        self._offered: collections.OrderedDict[str, tuple[str, list[dict]]] = collections.OrderedDict()
        self.context_params = context_params
        self.clock = clock
        self._lookups: dict[str, _CallLookup] = {}
        # (call id, agent id) -> (sent at, acks as _ACK_BITS); outlives the call so a late click still lands.
        self._ledger: collections.OrderedDict[tuple[str, str], tuple[datetime | None, int]] = collections.OrderedDict()
        self._ledger_size = ledger_size
        self.tasks: set[asyncio.Task] = set()  # pops under way (the hub's drain waits for them)
        self.recent: collections.OrderedDict[str, dict] = collections.OrderedDict()  # the console's pop feed
        self.on_pop: Callable[[Call], None] | None = None  # told of each pop sent (cluster mode shares it)
        self.on_choice: Callable[[dict], None] | None = None  # told of each choice (cluster mode shares it)

    # --- the hot path
    def pop(self, call: Call, agents: list[Agent], extension: str) -> None:
        """Send the call's pop to ``agents`` (a task: the caller does not wait for the CRM)."""
        self._spawn(self._pop(call, agents, extension))

    async def _pop(self, call: Call, agents: list[Agent], extension: str) -> None:
        if not call.phone.digits:  # number withheld: nothing to look up
            self._send(call, agents, build_pop(call, LookupResult("not_found"), extension))
            return
        lookup = self._lookup_for(call, extension)
        if not lookup.future.done():  # a cache hit pops without another turn of the loop
            await asyncio.wait([lookup.future], timeout=self._left(lookup))
        result = lookup.result
        if result is not None:
            self._finish_lookup(call, lookup)
            self._send(call, agents, self._pop_for(call, lookup, result, extension))
            return
        # Past the deadline: the agent gets the number now and the name when the CRM answers.
        self._write_timeout(call, lookup)
        self._send(call, agents, build_pop(call, None, extension))
        result = await self._late(call, lookup)
        if call.status not in ("ended", "missed"):  # else the bubble is gone; the row keeps what the CRM said
            self._send(call, agents, self._pop_for(call, lookup, result, extension), update=True)

    async def answer(self, call: Call, extension: str) -> LookupResult | None:
        """The call's CRM answer within the deadline, for a phone system that waits for it
        (Voicenter's pop-up URL). It is the call's one lookup, shared with its pops and recorded
        the same way; None when the CRM missed the deadline (a late answer still updates the
        ``lookups`` row, and the pops if any)."""
        if not call.phone.digits:
            return LookupResult("not_found")
        lookup = self._lookup_for(call, extension)
        if not lookup.future.done():
            await asyncio.wait([lookup.future], timeout=self._left(lookup))
        result = lookup.result
        if result is not None:
            self._finish_lookup(call, lookup)
            return result
        self._write_timeout(call, lookup)
        if not call.popped:  # no pop is waiting for the late answer: record it from here
            self._spawn(self._late(call, lookup))
        return None

    def _left(self, lookup: _CallLookup) -> float:
        return max(0.0, self.deadline_s - (self.clock() - lookup.started))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _lookup_for(self, call: Call, extension: str) -> _CallLookup:
        lookup = self._lookups.get(call.call_id)
        if lookup is None:
            context = {}
            values = {"did": call.callee, "extension": extension, "call_id": call.call_id,
                      "direction": call.direction}
            for name in self.context_params:
                if values.get(name):
                    context[name] = values[name]
            tries: dict[str, str] = {}  # value -> format: two formats that write the number alike ask once
            for fmt in self.phone_formats:
                tries.setdefault(for_crm(call.phone, fmt), fmt)
            (value, fmt), *rest = tries.items()
            future, cache = self.crm.lookup(value, context)
            lookup = self._lookups[call.call_id] = _CallLookup(future, cache, self.clock(), utcnow(), value, fmt)
            if rest and not (future.done() and _result_of(future).outcome != "not_found"):
                lookup.future = asyncio.get_running_loop().create_task(
                    self._next_formats(lookup, future, rest, context))
        return lookup

    async def _next_formats(self, lookup: _CallLookup, first: asyncio.Future[LookupResult],
                            rest: list[tuple[str, str]], context: dict) -> LookupResult:
        """The first format's answer, or while it is not found the next formats' (each cached and
        coalesced per its own value by the client), as long as the call's deadline has not passed:
        after it, the agent has the provisional pop and the answer in hand is final."""
        await asyncio.wait([first])
        result = _result_of(first)
        for attempt, (value, fmt) in enumerate(rest, 2):
            if result.outcome != "not_found" or self._left(lookup) <= 0:
                break
            future, _ = self.crm.lookup(value, context)
            await asyncio.wait([future])
            result = _result_of(future)
            lookup.sent, lookup.format, lookup.attempt = value, fmt, attempt
        return result

    def _pop_for(self, call: Call, lookup: _CallLookup, result: LookupResult, extension: str) -> dict[str, Any]:
        """The pop for a settled lookup, with why it matched; several matches for a number an agent
        chose a contact for pop that contact."""
        if result.outcome not in HITS:
            return build_pop(call, result, extension)
        matched: dict[str, Any] = {"how": "format", "format": lookup.format, "as": lookup.sent,
                                   "attempt": lookup.attempt}
        choice = self.choices.get(_number(call)) if result.outcome == "multiple" else None
        if choice is not None:
            matched = {"how": "chosen", "by": choice["agent_id"], "total": result.total}
            result = dataclasses.replace(result, outcome="found", name=choice["name"], company=choice["company"],
                                         url=choice["url"], total=1, contacts=())
        return build_pop(call, result, extension, matched)

    async def _late(self, call: Call, lookup: _CallLookup) -> LookupResult:
        """Wait for a lookup that missed its deadline (the client's hard timeout bounds it) and
        complete its row once."""
        await asyncio.wait([lookup.future])
        result = lookup.result
        latency = (self.clock() - lookup.started) * 1000
        call.lookup_ms = latency
        if not lookup.late_written:
            lookup.late_written = True
            self.metrics.late(result.outcome)
            self.store.update("lookups", {"call_id": call.call_id, "started_at": lookup.started_at}, {
                "late_outcome": result.outcome, "late_latency_ms": latency, "http_status": result.http_status,
                "total": result.total, "client_name": result.name or None, "company": result.company or None,
                "url": result.url or None, "contract_faults": "; ".join(result.faults) or None,
                "phone": lookup.sent, "matched_format": lookup.format if result.outcome in HITS else None,
            })
        return result

    def _finish_lookup(self, call: Call, lookup: _CallLookup) -> None:
        """Record the settled lookup's row (once per call)."""
        if lookup.row_written:
            return
        lookup.row_written, result = True, lookup.result
        if lookup.cache == "miss":  # in a cluster the shared cache may have served it (its result says)
            lookup.cache = result.cache
        latency = (self.clock() - lookup.started) * 1000
        call.lookup_ms = latency
        self.metrics.lookup(result.outcome, lookup.cache, latency)
        self.store.insert("lookups", self._lookup_row(call, lookup, result.outcome, latency) | {
            "http_status": result.http_status, "total": result.total,
            "client_name": result.name or None, "company": result.company or None,
            "url": result.url or None, "error": result.error or None,
            "contract_faults": "; ".join(result.faults) or None,
            "matched_format": lookup.format if result.outcome in HITS else None,
        })

    def _write_timeout(self, call: Call, lookup: _CallLookup) -> None:
        if lookup.row_written:
            return
        lookup.row_written = True
        self.metrics.lookup("timeout", lookup.cache, self.deadline_s * 1000)
        self.store.insert("lookups", self._lookup_row(call, lookup, "timeout", self.deadline_s * 1000) | {
            "error": f"no answer within the {self.deadline_s * 1000:.0f} ms deadline"})

    def _lookup_row(self, call: Call, lookup: _CallLookup, outcome: str, latency_ms: float) -> dict:
        return {"call_id": call.call_id, "phone": lookup.sent,
                "phone_e164": call.phone.e164, "started_at": lookup.started_at, "latency_ms": latency_ms,
                "outcome": outcome, "cache": lookup.cache, "deadline_ms": round(self.deadline_s * 1000),
                "extension": call.extensions[0] if call.extensions else None, "did": call.callee or None}

    def _send(self, call: Call, agents: list[Agent], message: dict, update: bool = False) -> None:
        call.pop = message
        if self.on_pop is not None:
            self.on_pop(call)
        text = dumps(message)
        now = utcnow()
        self._feed(call, message)
        if message.get("contacts"):
            self._offered[call.call_id] = (_number(call), message["contacts"])
            while len(self._offered) > self._ledger_size:
                self._offered.popitem(last=False)
        why = {"candidates": len(message.get("contacts", ())) or None,
               "matched": message.get("matched", {}).get("how")}
        for agent in agents:
            if call.status in ("ended", "missed") or (
                    call.status == "answered" and call.answered_by and call.popped.get(agent.id) != call.answered_by):
                continue  # the call moved on while the CRM answered: no bubble for a finished ring
            reached = self.sessions.send(agent.id, text)
            sent = self._ledger.get((call.call_id, agent.id))
            if sent is None:
                self._remember(call.call_id, agent.id, now)
                self.metrics.pop(reached)
                self.store.insert("pops", {"call_id": call.call_id, "agent_id": agent.id,
                                           "extension": message["extension"], "sent_at": now,
                                           "status": message["status"], "sessions": reached} | why)
            elif update:
                self.store.update("pops", {"call_id": call.call_id, "agent_id": agent.id, "sent_at": sent[0]},
                                  {"status": message["status"], "updated_at": now} | why)

    def _feed(self, call: Call, message: dict) -> None:
        lookup = self._lookups.get(call.call_id)
        self.recent[call.call_id] = {
            "call_id": call.call_id, "at": message["at"], "phone": message["phone"], "name": message["name"],
            "company": message["company"], "status": message["status"], "extension": message["extension"],
            "agents": sorted(call.popped), "lookup_ms": None if call.lookup_ms is None else round(call.lookup_ms, 1),
            "cache": lookup.cache if lookup else None, "matched": message.get("matched")}
        self.recent.move_to_end(call.call_id)
        while len(self.recent) > 200:
            self.recent.popitem(last=False)

    # --- acks from the browser
    def ack(self, agent: Agent, call_id: str, event: str) -> str | None:
        """Record shown / clicked / closed; returns an error text when the pop is not this agent's."""
        sent = self._ledger.get((call_id, agent.id))
        if sent is None:
            return f"no pop for call {call_id!r} was sent to you"
        sent_at, acked = sent
        if acked & _ACK_BITS[event]:
            return None  # a second 'shown' from another browser of the same agent
        self._ledger[(call_id, agent.id)] = (sent_at, acked | _ACK_BITS[event])
        key = {"call_id": call_id, "agent_id": agent.id} | ({"sent_at": sent_at} if sent_at is not None else {})
        self.store.update("pops", key, {f"{event}_at": utcnow()})
        return None

    def sent_elsewhere(self, call_id: str, agent_id: str, message: dict) -> None:
        """Another hub sent the agent this pop (cluster mode): what the agent's browsers here ack or
        choose is theirs. The row's time is that hub's, so acks find the row by call and agent."""
        if (call_id, agent_id) not in self._ledger:
            self._remember(call_id, agent_id, None)
        if message.get("contacts"):
            number = message.get("e164") or "".join(c for c in message.get("raw", "") if c.isdigit())
            self._offered[call_id] = (number, message["contacts"])

    def choose(self, agent: Agent, call_id: str, chosen: Any) -> str | None:
        """The agent chose one of the contacts the call's pop offered (its index or its URL):
        recorded, and popped directly on the number's next calls. An error text for a choice
        the pop did not offer."""
        offered = self._offered.get(call_id)
        if offered is None or (call_id, agent.id) not in self._ledger:
            return f"the pop of call {call_id!r} offered you no contacts to choose from"
        number, contacts = offered
        if isinstance(chosen, int) and not isinstance(chosen, bool) and 0 <= chosen < len(contacts):
            contact = contacts[chosen]
        elif isinstance(chosen, str) and any(c["url"] == chosen for c in contacts):
            contact = next(c for c in contacts if c["url"] == chosen)
        else:
            return (f"chosen must be the index (0 to {len(contacts) - 1}) or the url of a contact the pop "
                    f"offered, not {str(chosen)[:40]!r}")
        row = {"e164": number, "url": contact["url"], "name": contact["name"], "company": contact["company"],
               "agent_id": agent.id, "chosen_at": utcnow(), "call_id": call_id, "candidates": len(contacts)}
        self.store.insert("contact_choices", row)
        self.choices[number] = row
        if self.on_choice is not None:
            self.on_choice(row)
        return None

    def _remember(self, call_id: str, agent_id: str, sent_at: datetime | None) -> None:
        self._ledger[(call_id, agent_id)] = (sent_at, 0)
        while len(self._ledger) > self._ledger_size:
            self._ledger.popitem(last=False)

    def forget(self, call_id: str) -> None:
        """The call left the book: its lookup is no longer needed (its pops stay ackable)."""
        self._lookups.pop(call_id, None)


def _number(call: Call) -> str:
    """The key a choice is remembered by: the caller's E.164, or the digits of a number that has none."""
    return call.phone.e164 or call.phone.digits


def load_choices(store: Store) -> dict[str, dict[str, Any]]:
    """The latest contact chosen for each number (for ``Popper.choices``)."""
    rows = store.query("SELECT * FROM contact_choices QUALIFY row_number() OVER "
                       "(PARTITION BY e164 ORDER BY chosen_at DESC) = 1")
    return {r["e164"]: r for r in rows.astype(object).where(rows.notna(), None).to_dict("records")}


def _result_of(future: asyncio.Future[LookupResult]) -> LookupResult:
    """A finished lookup's result. ``CrmClient.fetch`` never raises; should a lookup still end
    in an exception (or be cancelled), the pop goes out as an error rather than not at all."""
    if future.cancelled():
        return LookupResult("http_error", error="lookup cancelled")
    if (e := future.exception()) is not None:
        log.error("CRM lookup failed: %r", e)
        return LookupResult("http_error", error=f"lookup failed ({type(e).__name__})")
    return future.result()
