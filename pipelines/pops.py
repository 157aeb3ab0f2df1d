"""Screen pops: the CRM lookup under its deadline, the pop built from it, the acks that follow.

``build_pop`` (pure) makes the ``pop`` message. ``Popper.pop`` is the inbound hot path: one
task that starts (or joins) the call's lookup, waits for it at most until the deadline, sends
the pop to every socket of the agents being rung, and if the CRM was late sends a provisional
pop first and the real one when it comes. Every lookup is recorded in ``lookups`` with its
latency and outcome, every pop in ``pops``, every ack (shown / clicked / closed) on its pop's row.
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


def build_pop(call: Call, result: LookupResult | None, extension: str) -> dict[str, Any]:
    """The ``pop`` message for a call; ``result`` None means the CRM has not answered yet."""
    status = "pending" if result is None else result.pop_status
    r = result or LookupResult("timeout")
    return {
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
    row_written: bool = False
    late_written: bool = False

    @property
    def result(self) -> LookupResult | None:
        return _result_of(self.future) if self.future.done() else None


class Popper:
    def __init__(self, crm: CrmClient, store: Store, sessions: Sessions, *, deadline_ms: int,
                 phone_format: str, context_params: list[str], clock: Callable[[], float] = time.monotonic,
                 ledger_size: int = 50000, metrics: Metrics | None = None):
        self.crm, self.store, self.sessions = crm, store, sessions
        self.metrics = metrics or Metrics()
        self.deadline_s = deadline_ms / 1000
        self.phone_format = phone_format
        self.context_params = context_params
        self.clock = clock
        self._lookups: dict[str, _CallLookup] = {}
        # (call id, agent id) -> (sent at, acks as _ACK_BITS); outlives the call so a late click still lands.
        self._ledger: collections.OrderedDict[tuple[str, str], tuple[datetime, int]] = collections.OrderedDict()
        self._ledger_size = ledger_size
        self.tasks: set[asyncio.Task] = set()  # pops under way (the hub's drain waits for them)
        self.recent: collections.OrderedDict[str, dict] = collections.OrderedDict()  # the console's pop feed

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
            self._send(call, agents, build_pop(call, result, extension))
            return
        # Past the deadline: the agent gets the number now and the name when the CRM answers.
        self._write_timeout(call, lookup)
        self._send(call, agents, build_pop(call, None, extension))
        result = await self._late(call, lookup)
        if call.status not in ("ended", "missed"):  # else the bubble is gone; the row keeps what the CRM said
            self._send(call, agents, build_pop(call, result, extension), update=True)

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
            future, cache = self.crm.lookup(for_crm(call.phone, self.phone_format), context)
            lookup = self._lookups[call.call_id] = _CallLookup(future, cache, self.clock(), utcnow())
        return lookup

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
            })
        return result

    def _finish_lookup(self, call: Call, lookup: _CallLookup) -> None:
        """Record the settled lookup's row (once per call)."""
        if lookup.row_written:
            return
        lookup.row_written, result = True, lookup.result
        latency = (self.clock() - lookup.started) * 1000
        call.lookup_ms = latency
        self.metrics.lookup(result.outcome, lookup.cache, latency)
        self.store.insert("lookups", self._lookup_row(call, lookup, result.outcome, latency) | {
            "http_status": result.http_status, "total": result.total,
            "client_name": result.name or None, "company": result.company or None,
            "url": result.url or None, "error": result.error or None,
            "contract_faults": "; ".join(result.faults) or None,
        })

    def _write_timeout(self, call: Call, lookup: _CallLookup) -> None:
        if lookup.row_written:
            return
        lookup.row_written = True
        self.metrics.lookup("timeout", lookup.cache, self.deadline_s * 1000)
        self.store.insert("lookups", self._lookup_row(call, lookup, "timeout", self.deadline_s * 1000) | {
            "error": f"no answer within the {self.deadline_s * 1000:.0f} ms deadline"})

    def _lookup_row(self, call: Call, lookup: _CallLookup, outcome: str, latency_ms: float) -> dict:
        return {"call_id": call.call_id, "phone": for_crm(call.phone, self.phone_format),
                "phone_e164": call.phone.e164, "started_at": lookup.started_at, "latency_ms": latency_ms,
                "outcome": outcome, "cache": lookup.cache, "deadline_ms": round(self.deadline_s * 1000),
                "extension": call.extensions[0] if call.extensions else None, "did": call.callee or None}

    def _send(self, call: Call, agents: list[Agent], message: dict, update: bool = False) -> None:
        call.pop = message
        text = dumps(message)
        now = utcnow()
        self._feed(call, message)
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
                                           "status": message["status"], "sessions": reached})
            elif update:
                self.store.update("pops", {"call_id": call.call_id, "agent_id": agent.id, "sent_at": sent[0]},
                                  {"status": message["status"], "updated_at": now})

    def _feed(self, call: Call, message: dict) -> None:
        lookup = self._lookups.get(call.call_id)
        self.recent[call.call_id] = {
            "call_id": call.call_id, "at": message["at"], "phone": message["phone"], "name": message["name"],
            "company": message["company"], "status": message["status"], "extension": message["extension"],
            "agents": sorted(call.popped), "lookup_ms": None if call.lookup_ms is None else round(call.lookup_ms, 1),
            "cache": lookup.cache if lookup else None}
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
        self.store.update("pops", {"call_id": call_id, "agent_id": agent.id, "sent_at": sent_at},
                          {f"{event}_at": utcnow()})
        return None

    def _remember(self, call_id: str, agent_id: str, sent_at: datetime) -> None:
        self._ledger[(call_id, agent_id)] = (sent_at, 0)
        while len(self._ledger) > self._ledger_size:
            self._ledger.popitem(last=False)

    def forget(self, call_id: str) -> None:
        """The call left the book: its lookup is no longer needed (its pops stay ackable)."""
        self._lookups.pop(call_id, None)


def _result_of(future: asyncio.Future[LookupResult]) -> LookupResult:
    """A finished lookup's result. ``CrmClient.fetch`` never raises; should a lookup still end
    in an exception (or be cancelled), the pop goes out as an error rather than not at all."""
    if future.cancelled():
        return LookupResult("http_error", error="lookup cancelled")
    if (e := future.exception()) is not None:
        log.error("CRM lookup failed: %r", e)
        return LookupResult("http_error", error=f"lookup failed ({type(e).__name__})")
    return future.result()
