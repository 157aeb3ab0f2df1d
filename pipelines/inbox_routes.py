"""The inbox's HTTP routes (docs/PROTOCOL.md, "Inbox"): the open missed calls, and marking one
done. A callback is a click-to-call (``POST /api/dial`` with ``callback_for``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from .access import AgentDep, may_act_for, sees_everything
from .errors import ApiError
from .events import utcnow
from .inbox import text

IdParam = Annotated[str, Query(min_length=1, max_length=100)]


def router(hub) -> APIRouter:
    r = APIRouter(tags=["inbox"])

    @r.get("/api/missed", summary="Your missed calls (open ones by default); a supervisor's: the team's")
    async def missed(agent: AgentDep, state: Literal["open", "handled", "all"] = "open",
                     agent_id: IdParam | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
        if agent_id is not None and not may_act_for(agent, agent_id):
            raise ApiError(403, "forbidden", "an agent sees only their own missed calls")
        whose = agent_id or (None if sees_everything(agent) else agent.id)
        open_ = hub.inbox.entries(whose)
        found = [e.public() for e in open_] if state != "handled" else []
        if state != "open":  # handled entries are not kept in memory: the table has them
            found += await asyncio.to_thread(_handled, hub, whose, limit)
            found.sort(key=lambda e: e["missed_at"], reverse=True)
        return {"missed": found[:limit], "count": len(open_)}

    @r.post("/api/missed/{call_id}/done", summary="Mark one of your missed calls handled")
    async def done(call_id: str, agent: AgentDep, agent_id: IdParam | None = None) -> dict:
        owner = agent_id or agent.id
        if not may_act_for(agent, owner):
            raise ApiError(403, "forbidden", "an agent handles only their own missed calls")
        entry = hub.inbox.book.get(owner, call_id[:100])
        if entry is None:
            whose = "your" if owner == agent.id else "that agent's"
            raise ApiError(404, "not_found", f"no open missed call with that id in {whose} inbox")
        return hub.inbox.done(entry, utcnow()).public()

    return r


def _handled(hub, agent_id: str | None, limit: int) -> list[dict]:
    where, params = ("handled_at IS NOT NULL AND agent_id = ?", [agent_id]) if agent_id else \
        ("handled_at IS NOT NULL", [])
    rows = hub.store.query(f"SELECT * FROM missed_calls WHERE {where} ORDER BY missed_at DESC LIMIT {int(limit)}",
                           params)
    out = []
    for r in rows.to_dict("records"):
        entry = hub.inbox.entry_of(r)
        entry.handled_at, entry.handled_how = r["handled_at"].to_pydatetime(), text(r["handled_how"])
        entry.callback_dial_id = text(r["callback_dial_id"])
        out.append(entry.public())
    return out
