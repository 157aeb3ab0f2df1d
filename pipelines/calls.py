"""Live calls and who hears about them: the routing core, pure.

``CallBook.apply(event)`` moves a call through ringing → answered → ended (or missed) and says,
as data, what must happen: which agents get a pop, which get a ``call`` message, and which rows
change. It does no I/O, so every routing rule is tested without a socket or a database.

Rules: a ringing at extension E pops to E's agents once per call (a repeated ringing never pops
twice; a ring group pops each new extension). When one extension answers, the other agents that
were popped get ``answered_elsewhere`` so their bubbles clear; the hangup tells everyone popped.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from .agents import Agent, Agents
from .events import CallEvent, as_utc
from .phone import Phone, normalise

KEEP_ENDED = timedelta(minutes=2)  # ended calls stay in the book for late events and acks
KEEP_RINGING = timedelta(hours=4)  # a call with no event for this long is dropped from memory


@dataclasses.dataclass
class Call:
    call_id: str
    direction: str
    caller: str
    callee: str
    provider: str
    phone: Phone
    started_at: datetime
    status: str = "ringing"  # ringing | answered | ended | missed
    extensions: list[str] = dataclasses.field(default_factory=list)
    popped: dict[str, str] = dataclasses.field(default_factory=dict)  # agent id -> extension
    answered_by: str = ""
    agent_id: str = ""
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    pop: dict | None = None  # the last pop sent, for sockets that connect while it rings
    lookup_ms: float | None = None
    seen_at: datetime | None = None  # the hub's clock at the call's last event (what eviction goes by)

    @property
    def key(self) -> dict:
        """Row key in the calls table (started_at lets DuckDB skip most of the file)."""
        return {"call_id": self.call_id, "started_at": self.started_at}

    def public(self, now: datetime, agents: Agents | None = None) -> dict[str, Any]:
        agent = agents.get(self.agent_id) if agents and self.agent_id else None
        pop = self.pop or {}
        return {
            "call_id": self.call_id, "direction": self.direction, "caller": self.caller,
            "phone": self.phone.display, "callee": self.callee, "extensions": list(self.extensions),
            "status": self.status, "answered_by": self.answered_by, "agent_id": self.agent_id,
            "agent_name": agent.name if agent else "", "name": pop.get("name", ""),
            "company": pop.get("company", ""), "url": pop.get("url", ""),
            "lookup": pop.get("status", ""), "lookup_ms": self.lookup_ms,
            "started_at": self.started_at.isoformat() + "Z",
            "answered_at": self.answered_at.isoformat() + "Z" if self.answered_at else None,
            "seconds": round(((self.ended_at or now) - self.started_at).total_seconds(), 1),
            "provider": self.provider,
        }


@dataclasses.dataclass
class Step:
    """What one event means: the decisions, for the hub to carry out."""
    call: Call | None
    pop_to: list[Agent] = dataclasses.field(default_factory=list)
    extension: str = ""  # the extension the pop is for
    notify: list[tuple[str, dict]] = dataclasses.field(default_factory=list)  # (agent id, message)
    insert_call: dict | None = None
    update_call: dict | None = None
    ignored: str = ""  # why nothing happened, for the log


class CallBook:
    def __init__(self, region: str):
        self.region = region
        self.calls: dict[str, Call] = {}

    def get(self, call_id: str) -> Call | None:
        return self.calls.get(call_id)

    def live(self) -> list[Call]:
        return [c for c in self.calls.values() if c.status in ("ringing", "answered")]

    def apply(self, event: CallEvent, agents: Agents, now: datetime, provider: str) -> Step:
        step = self._apply(event, agents, now, provider)
        if step.call is not None:
            step.call.seen_at = now
        return step

    def _apply(self, event: CallEvent, agents: Agents, now: datetime, provider: str) -> Step:
        call = self.calls.get(event.call_id)
        at = as_utc(event.at) if event.at else now
        if event.type == "ringing":
            return self._ringing(call, event, agents, at, provider)
        if call is None:
            # We never saw it ring (hub restarted, or a PBX that reports only later phases).
            call = self._new(event, at, provider)
            step = Step(call, insert_call=self._row(call))
        else:
            step = Step(call)
        if event.type == "answered":
            return self._answered(step, event, agents, at)
        return self._hangup(step, event, at)

    def evict(self, now: datetime) -> list[Call]:
        """Forget calls that ended a while ago or never ended; returns those dropped. By the hub's
        clock, not the PBX's: an event stamped far in the future cannot pin a call in memory."""
        gone = [c for c in self.calls.values() if c.seen_at is not None and (
            (c.ended_at and now - c.seen_at > KEEP_ENDED) or now - c.seen_at > KEEP_RINGING)]
        for c in gone:
            del self.calls[c.call_id]
        return gone

    # --- one method per event type
    def _ringing(self, call: Call | None, event: CallEvent, agents: Agents, at: datetime, provider: str) -> Step:
        step = Step(call)
        if call is None:
            call = step.call = self._new(event, at, provider)
            step.insert_call = self._row(call)
        elif call.status != "ringing":
            step.ignored = f"ringing after the call was {call.status}"
            return step
        ext = event.extension
        if not ext:
            step.ignored = "ringing without an extension: nobody to pop"
            return step
        if ext not in call.extensions:
            call.extensions.append(ext)
        if step.insert_call is not None:
            step.insert_call["extension"] = call.extensions[0]
        if call.direction != "inbound":
            step.ignored = "outbound call: no pop"
            return step
        targets = [a for a in agents.by_extension(ext) if a.id not in call.popped]
        if not targets:
            step.ignored = "repeated ringing" if agents.by_extension(ext) else f"no agent has extension {ext}"
            return step
        for a in targets:
            call.popped[a.id] = ext
        if not call.agent_id:
            call.agent_id = targets[0].id
            if step.insert_call is not None:
                step.insert_call["agent_id"] = call.agent_id
            else:
                step.update_call = {"agent_id": call.agent_id}
        step.pop_to, step.extension = targets, ext
        return step

    def _answered(self, step: Step, event: CallEvent, agents: Agents, at: datetime) -> Step:
        call = step.call
        if call.status != "ringing":
            step.ignored = f"answered after the call was {call.status}"
            return step
        ext = event.extension
        call.status, call.answered_at, call.answered_by = "answered", at, ext
        by = agents.by_extension(ext) if ext else []
        if by:
            call.agent_id = by[0].id
        for agent_id, popped_ext in call.popped.items():
            mine = not ext or popped_ext == ext
            step.notify.append((agent_id, {"type": "call", "call_id": call.call_id,
                                           "state": "answered" if mine else "answered_elsewhere",
                                           "by": ext}))
        values = {"status": "answered", "answered_at": at, "answered_by": ext or None}
        if call.agent_id:
            values["agent_id"] = call.agent_id
        step.update_call = {**(step.update_call or {}), **values}
        return step

    def _hangup(self, step: Step, event: CallEvent, at: datetime) -> Step:
        call = step.call
        if call.status in ("ended", "missed"):
            step.ignored = "repeated hangup"
            return step
        call.status = "ended" if call.status == "answered" else "missed"
        call.ended_at = at
        for agent_id in call.popped:
            step.notify.append((agent_id, {"type": "call", "call_id": call.call_id, "state": call.status}))
        step.update_call = {**(step.update_call or {}), "status": call.status, "ended_at": at,
                            "hangup_cause": event.cause or None}
        return step

    def _new(self, event: CallEvent, at: datetime, provider: str) -> Call:
        call = Call(call_id=event.call_id, direction=event.direction, caller=event.caller,
                    callee=event.callee, provider=provider, phone=normalise(event.caller, self.region),
                    started_at=at)
        self.calls[call.call_id] = call
        return call

    @staticmethod
    def _row(call: Call) -> dict:
        return {"call_id": call.call_id, "direction": call.direction, "caller": call.caller,
                "caller_e164": call.phone.e164, "callee": call.callee,
                "extension": call.extensions[0] if call.extensions else None,
                "agent_id": call.agent_id or None, "started_at": call.started_at,
                "status": call.status, "provider": call.provider}
