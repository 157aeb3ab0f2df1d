"""The call log sent back to the CRM (``CALLPOP_CRM_LOG_URL``), and the agent's notes and
disposition: ``POST /api/calls/{call_id}/log``.

When a call ends, the hub writes revision 1 of its entry; each note, disposition or call record
(a provider's CDR: duration, recording) that comes later writes the next revision. A revision is
first a row of ``call_logs`` (the outbox), committed with the event that ended the call, and only
then sent: POSTed as JSON with ``Idempotency-Key: <call_id>:<revision>``, retried with backoff
for ``CALLPOP_CRM_LOG_RETRY_H`` hours, and marked delivered or failed in the same row. Delivery is
at least once: a CRM that took a revision but did not answer gets it again, under the same key.
A hub that restarts picks up the pending rows where it left off. The revisions of one call go
in order; a failing revision never holds up another call's.

The entry (docs/crm-contract.md, "Call log") is built by ``entry`` from the call, pure.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Callable

import httpx
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from . import http_client
from .access import AgentDep, sees_everything
from .calls import Call
from .crm import TooLarge, read_capped
from .crm_contract import safe_url
from .errors import ApiError
from .events import iso_utc, utcnow
from .phone import for_crm

log = logging.getLogger("callpop.calllog")

FIRST_RETRY_S, LAST_RETRY_S = 1.0, 300.0  # backoff between attempts: doubling, at most five minutes
ATTEMPT_TIMEOUT_S = 10.0  # one delivery attempt, connecting and answering included
ANSWER_MAX_BYTES = 65536
BATCH = 20  # deliveries in flight at once
REMEMBERED = 5000  # calls whose last entry is kept in memory (older ones are read back from the file)


def iso(moment: datetime | None) -> str | None:
    """Times in the entry: to the second (docs/crm-contract.md, "Call log")."""
    return iso_utc(moment, "seconds")


def entry(call: Call, *, agent_name: str, answered_by_agent: bool, phone_format: str,
          disposition: str = "", notes: str = "") -> dict[str, Any]:
    """Revision 1 of a call's entry, at its end."""
    pop = call.pop or {}
    if call.status == "missed":
        status = "missed"
    else:
        status = "answered" if answered_by_agent or not call.answered_by else "answered_elsewhere"
    talk = (call.ended_at - call.answered_at).total_seconds() if call.ended_at and call.answered_at else 0
    return {
        "call_id": call.call_id, "direction": call.direction, "phone": for_crm(call.phone, phone_format),
        "e164": call.phone.e164, "did": call.callee, "extension": call.answered_by or (call.extensions or [""])[0],
        "agent_id": call.agent_id, "agent_name": agent_name, "started_at": iso(call.started_at),
        "answered_at": iso(call.answered_at), "ended_at": iso(call.ended_at), "duration_s": round(talk),
        "status": status, "disposition": disposition, "notes": notes, "recording_url": "",
        "crm_url": pop.get("url", ""), "contact_total": pop.get("total", 0),
    }


def dial_entry(plan, *, agent_name: str, requested_at: datetime, bridged_at: datetime | None,
               ended_at: datetime, outcome: str | None) -> dict[str, Any]:
    """Revision 1 of a click-to-call's entry, once it is over (``plan``: its DialPlan)."""
    talk = (ended_at - bridged_at).total_seconds() if bridged_at else 0
    return {
        "call_id": plan.dial_id, "dial_id": plan.dial_id, "direction": "outbound", "phone": plan.leg_b,
        "e164": plan.leg_b, "did": "", "extension": plan.extension, "agent_id": plan.agent_id,
        "agent_name": agent_name, "started_at": iso(requested_at), "answered_at": iso(bridged_at),
        "ended_at": iso(ended_at), "duration_s": round(talk), "status": "answered" if outcome == "bridged" else "failed",
        "disposition": "", "notes": "", "recording_url": "", "crm_url": "", "contact_total": 0,
    }


@dataclass
class _Pending:
    call_id: str
    revision: int
    created_at: datetime
    entry: dict
    attempts: int = 0
    next_at: datetime = field(default_factory=utcnow)


class CallLog:
    """The outbox and its delivery loop. ``store`` and ``sessions`` are the hub's, ``agents``
    gives its agents now (the file may be re-read); the HTTP client is its own
    (``http_client.client``), so the credential goes to the log URL's origin only, wherever the
    lookups go."""

    def __init__(self, settings, store, sessions, agents: Callable[[], Any]):
        self.settings, self.store, self.sessions, self._agents = settings, store, sessions, agents
        self.url = settings.crm_log_url
        self.headers = http_client.credential(settings.crm_auth_header.get_secret_value())
        self.http: httpx.AsyncClient | None = None
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._last: collections.OrderedDict[str, tuple[int, dict]] = collections.OrderedDict()
        self._held: dict[str, tuple[str, str]] = {}  # notes saved while the call was live
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one revision at a time: numbers are handed out in order
        self.delivered = self.failed = 0
        # Whether this process delivers (``start``): a single hub does; in a cluster the hubs only
        # write revisions and the recorder, which owns the outbox, delivers them (``queue``).
        self.delivering = False

    # --- life cycle
    async def start(self) -> None:
        if not self.url:
            return
        self.delivering = True
        self.http = http_client.client(self.settings)
        if self.headers:
            http_client.only_to_origin(self.http, httpx.URL(self.url), self.headers)
        rows = await asyncio.to_thread(self.store.query, "SELECT call_id, revision, created_at, entry, attempts, "
                                       "next_at FROM call_logs WHERE state = 'pending' ORDER BY created_at, revision")
        for r in rows.itertuples():
            p = _Pending(r.call_id, int(r.revision), r.created_at.to_pydatetime(), json.loads(r.entry),
                         int(r.attempts), r.next_at.to_pydatetime() if r.next_at is not None else utcnow())
            self._pending[(p.call_id, p.revision)] = p
        held = await asyncio.to_thread(self.store.query, "SELECT call_id, disposition, notes FROM call_notes WHERE "
                                       "revision IS NULL AND saved_at > ? ORDER BY saved_at",
                                       [utcnow() - timedelta(hours=4)])
        for r in held.itertuples():
            self._held[r.call_id] = (r.disposition or "", r.notes or "")
        if self._pending:
            log.info("%d call log entries still to deliver", len(self._pending))

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    def status(self) -> dict[str, Any]:
        return {"configured": bool(self.url), "pending": len(self._pending), "delivered": self.delivered,
                "failed": self.failed}

    # --- revisions
    def ended(self, call: Call) -> None:
        """The call is over: revision 1, in the unit of the event that ended it."""
        disposition, notes = self._held.pop(call.call_id, ("", ""))
        if not self.url:
            return
        agents = self._agents()
        agent = agents.get(call.agent_id) if call.agent_id else None
        answered_by_agent = bool(call.answered_by) and bool(agents.by_extension(call.answered_by))
        self._write(call.call_id, 1, entry(call, agent_name=agent.name if agent else "",
                                           answered_by_agent=answered_by_agent,
                                           phone_format=self.settings.crm_phone_format,
                                           disposition=disposition, notes=notes))

    def dialled(self, plan, **over: Any) -> None:
        """A click-to-call is over: revision 1 of its entry (its call id is the dial's id)."""
        if not self.url:
            return
        agent = self._agents().get(plan.agent_id)
        fields = {k: over[k] for k in ("requested_at", "bridged_at", "ended_at", "outcome")}
        self._write(plan.dial_id, 1, dial_entry(plan, agent_name=agent.name if agent else "", **fields))

    async def amend(self, call_id: str, changes: dict[str, Any]) -> int | None:
        """The next revision of an ended call's entry with ``changes``; None when there is no
        entry to amend (no log URL, or the call's end never reached the hub)."""
        if not self.url:
            return None
        async with self._lock:
            last = await self._latest(call_id)
            if last is None:
                return None
            revision, previous = last
            if all(previous.get(k) == v for k, v in changes.items()):
                return revision  # nothing new (a call record sent twice): no revision for it
            self._write(call_id, revision + 1, {**previous, **changes})
            return revision + 1

    async def _latest(self, call_id: str) -> tuple[int, dict] | None:
        if call_id in self._last:
            return self._last[call_id]
        rows = await asyncio.to_thread(self.store.query, "SELECT revision, entry FROM call_logs WHERE call_id = ? "
                                       "ORDER BY revision DESC LIMIT 1", [call_id])
        return None if rows.empty else (int(rows.revision[0]), json.loads(rows.entry[0]))

    def _write(self, call_id: str, revision: int, body: dict) -> None:
        now = utcnow()
        pending = _Pending(call_id, revision, now, body)
        self._last[call_id] = (revision, body)
        self._last.move_to_end(call_id)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        written = self.store.insert("call_logs", {
            "call_id": call_id, "revision": revision, "created_at": now, "agent_id": body.get("agent_id") or None,
            "entry": json.dumps(body, ensure_ascii=False), "state": "pending", "attempts": 0, "next_at": now})
        loop = asyncio.get_running_loop()

        def committed(f) -> None:  # sent only once it is in the file: a restart cannot lose it
            if not f.exception() and self.delivering:
                self._pending[(call_id, revision)] = pending
                self._wake.set()
        written.add_done_callback(lambda f: loop.call_soon_threadsafe(committed, f))

    def queue(self, row: dict) -> None:
        """A pending revision another process wrote, now committed here (the recorder, from the
        cluster's journal): delivered like this process's own."""
        if not self.delivering or row.get("state") != "pending":
            return
        p = _Pending(row["call_id"], int(row["revision"]), row["created_at"], json.loads(row["entry"]),
                     int(row.get("attempts") or 0), row.get("next_at") or utcnow())
        self._pending.setdefault((p.call_id, p.revision), p)
        self._wake.set()

    # --- notes and disposition (the route)
    async def save(self, call: dict, agent_id: str, disposition: str, notes: str) -> dict[str, Any]:
        """Record the agent's note; on an ended call, the next revision of its entry."""
        now = utcnow()
        ended = call["status"] in ("ended", "missed")
        revision = await self.amend(call["call_id"], {"disposition": disposition, "notes": notes}) if ended else None
        if not ended:
            self._held[call["call_id"]] = (disposition, notes)  # goes with revision 1 at the call's end
        await asyncio.wrap_future(self.store.insert("call_notes", {
            "call_id": call["call_id"], "agent_id": agent_id, "saved_at": now, "revision": revision,
            "disposition": disposition or None, "notes": notes or None}))
        logged = ("not configured" if not self.url else "queued" if revision else
                  "with the call's end" if not ended else "no entry of this call to amend")
        return {"call_id": call["call_id"], "revision": revision, "saved_at": iso(now), "logged": logged}

    # --- delivery
    async def run(self) -> None:
        while True:
            if self.url:
                await self._deliver_due()
            self._wake.clear()
            waits = [p.next_at for p in self._pending.values()]
            delay = max(0.05, min(((min(waits) - utcnow()).total_seconds() if waits else 60.0), 60.0))
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def _deliver_due(self) -> None:
        now = utcnow()
        first: dict[str, _Pending] = {}
        for p in sorted(self._pending.values(), key=lambda p: p.revision):
            first.setdefault(p.call_id, p)  # one call's revisions in order
        due = [p for p in first.values() if p.next_at <= now][:BATCH]
        if due:
            await asyncio.gather(*(self._attempt_safely(p) for p in due))

    async def _attempt_safely(self, p: _Pending) -> None:
        """One attempt; a fault of ours (or a store shutting down) puts the entry back for later
        instead of ending the delivery loop."""
        try:
            await self._attempt(p)
        except Exception:  # noqa: BLE001 - the loop outlives any one entry
            log.exception("call log of %s revision %d: the attempt failed; trying again later", p.call_id, p.revision)
            p.next_at = utcnow() + timedelta(seconds=LAST_RETRY_S)

    async def _attempt(self, p: _Pending) -> None:
        p.attempts += 1
        status, error, url = await self._post(p)
        key = {"call_id": p.call_id, "revision": p.revision, "created_at": p.created_at}
        now = utcnow()
        if not error:
            del self._pending[(p.call_id, p.revision)]
            self.delivered += 1
            self.store.update("call_logs", key, {"state": "delivered", "attempts": p.attempts, "delivered_at": now,
                                                 "http_status": status, "last_error": None, "activity_url": url or None,
                                                 "next_at": None})
            self._tell(p, "delivered", url)
            return
        give_up = now - p.created_at > timedelta(hours=self.settings.crm_log_retry_h)
        if give_up:
            del self._pending[(p.call_id, p.revision)]
            self.failed += 1
            log.warning("call log of %s revision %d not delivered after %d attempts: %s", p.call_id, p.revision,
                        p.attempts, error)
            self._tell(p, "failed", "")
        else:
            wait = min(LAST_RETRY_S, FIRST_RETRY_S * 2 ** (p.attempts - 1)) * random.uniform(0.8, 1.2)
            p.next_at = now + timedelta(seconds=wait)
            if p.attempts == 1:
                log.info("call log of %s revision %d: %s; retrying", p.call_id, p.revision, error)
        self.store.update("call_logs", key, {"state": "failed" if give_up else "pending", "attempts": p.attempts,
                                             "http_status": status, "last_error": error[:300],
                                             "next_at": None if give_up else p.next_at})

    async def _post(self, p: _Pending) -> tuple[int | None, str, str]:
        """(HTTP status, '' or why it failed, the logged activity's URL)."""
        headers = {"Idempotency-Key": f"{p.call_id}:{p.revision}", **self.headers}
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                async with self.http.stream("POST", self.url, json=p.entry, headers=headers) as response:
                    body = await read_capped(response, ANSWER_MAX_BYTES)
        except TimeoutError:
            return None, f"no answer within {ATTEMPT_TIMEOUT_S:g} s", ""
        except TooLarge:
            return None, f"an answer over {ANSWER_MAX_BYTES} bytes", ""
        except httpx.HTTPError as e:
            return None, f"cannot reach the log URL ({type(e).__name__})", ""
        if not 200 <= response.status_code < 300:
            return response.status_code, f"HTTP {response.status_code}", ""
        try:
            answer = json.loads(body)
        except ValueError:
            return response.status_code, "the answer is not JSON", ""
        if not isinstance(answer, dict) or str(answer.get("STATUS", "")).upper() != "OK":
            return response.status_code, 'the answer is not {"STATUS":"OK"}', ""
        url, _ = safe_url(answer.get("URL", ""))
        return response.status_code, "", url

    def _tell(self, p: _Pending, state: str, url: str) -> None:
        agent_id = p.entry.get("agent_id")
        if agent_id:
            self.sessions.send(agent_id, {"type": "call_log", "call_id": p.call_id, "revision": p.revision,
                                          "state": state, "url": url})


# --- the route
class LogRequest(BaseModel):
    disposition: str = Field(default="", max_length=100, description="One of CALLPOP_DISPOSITIONS, or empty.")
    notes: str = Field(default="", description="Free text, at most CALLPOP_NOTES_MAX_CHARS characters.")


router = APIRouter(tags=["calls"])
CallId = Annotated[str, Path(min_length=1, max_length=200)]


async def _call(hub, call_id: str) -> dict | None:
    """The call as the hub knows it: live in memory, else its row."""
    live = hub.book.get(call_id)
    if live is not None:
        return {"call_id": live.call_id, "agent_id": live.agent_id, "status": live.status}
    rows = await asyncio.to_thread(
        hub.store.query, "SELECT agent_id, status FROM (SELECT agent_id, status, started_at FROM calls WHERE call_id = ? "
        "UNION ALL SELECT agent_id, CASE WHEN outcome IS NULL THEN 'answered' ELSE 'ended' END, requested_at "
        "FROM dials WHERE dial_id = ? AND outcome IS DISTINCT FROM 'refused') ORDER BY started_at DESC LIMIT 1",
        [call_id, call_id])  # a click-to-call's notes go by its dial id
    return None if rows.empty else {"call_id": call_id, "agent_id": rows.agent_id[0], "status": rows.status[0]}


async def _own_call(hub, call_id: str, agent) -> dict:
    call = await _call(hub, call_id)
    if call is None:
        raise ApiError(404, "not_found", f"no call {call_id!r}")
    if call["agent_id"] != agent.id:
        raise ApiError(403, "forbidden", "this call is not yours: notes go on your own calls")
    return call


@router.post("/api/calls/{call_id}/log", status_code=202,
             summary="Your note and disposition for one of your calls; 202 once recorded")
async def save_log(call_id: CallId, request: LogRequest, http: Request, agent: AgentDep) -> dict:
    hub = http.app.state.hub
    s = hub.settings
    if request.disposition and request.disposition not in s.dispositions:
        raise ApiError(422, "unknown_disposition", f"disposition must be one of: {', '.join(s.dispositions)}")
    if len(request.notes) > s.notes_max_chars:
        raise ApiError(422, "notes_too_long", f"notes are {len(request.notes)} characters; at most "
                                              f"{s.notes_max_chars} (CALLPOP_NOTES_MAX_CHARS)")
    call = await _own_call(hub, call_id, agent)
    return await hub.calllog.save(call, agent.id, request.disposition, request.notes)


HISTORY_SQL = """
SELECT c.call_id, c.direction, c.caller, c.started_at, c.answered_at, c.ended_at, c.status,
       l.client_name AS name, l.company,
       (SELECT n.disposition FROM call_notes n WHERE n.call_id = c.call_id ORDER BY n.saved_at DESC LIMIT 1)
           AS disposition,
       (SELECT n.notes FROM call_notes n WHERE n.call_id = c.call_id ORDER BY n.saved_at DESC LIMIT 1) AS notes,
       (SELECT g.state FROM call_logs g WHERE g.call_id = c.call_id ORDER BY g.revision DESC LIMIT 1) AS logged
FROM calls c LEFT JOIN lookups l ON l.call_id = c.call_id
WHERE c.agent_id = ? AND c.started_at >= ?
ORDER BY c.started_at DESC LIMIT ?"""


@router.get("/api/calls/history", summary="Your latest calls, with their notes and how their call log went")
async def history(http: Request, agent: AgentDep,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  days: Annotated[int, Query(ge=1, le=90)] = 7) -> dict:
    hub = http.app.state.hub
    rows = await asyncio.to_thread(hub.store.query, HISTORY_SQL, [agent.id, utcnow() - timedelta(days=days), limit])
    calls = []
    for r in rows.to_dict("records"):
        calls.append({k: _plain(v) for k, v in r.items()})
    return {"calls": calls, "dispositions": list(hub.settings.dispositions)}


@router.get("/api/calls/{call_id}/log", summary="One call's notes, dispositions to choose from, and its log "
                                                  "entries' delivery")
async def show_log(call_id: CallId, http: Request, agent: AgentDep) -> dict:
    hub = http.app.state.hub
    call = await _call(hub, call_id)
    if call is None or (call["agent_id"] != agent.id and not sees_everything(agent)):
        raise ApiError(404, "not_found", f"no call {call_id!r} of yours")

    # Two plain queries (not a cursor function): in a cluster they are read at the recorder.
    notes = await asyncio.to_thread(hub.store.query, "SELECT saved_at, disposition, notes, revision FROM call_notes "
                                    "WHERE call_id = ? ORDER BY saved_at", [call_id])
    logs = await asyncio.to_thread(hub.store.query, "SELECT revision, state, attempts, http_status, last_error, "
                                   "delivered_at, activity_url FROM call_logs WHERE call_id = ? ORDER BY revision",
                                   [call_id])
    return {"call_id": call_id, "status": call["status"], "dispositions": list(hub.settings.dispositions),
            "notes": [{"saved_at": _plain(t), "disposition": _plain(d) or "", "notes": _plain(n) or "",
                       "revision": _plain(r)} for t, d, n, r in notes.itertuples(index=False)],
            "log": [{"revision": _plain(r), "state": st, "attempts": _plain(a), "http_status": _plain(h),
                     "error": _plain(e) or "", "delivered_at": _plain(d), "url": _plain(u) or ""}
                    for r, st, a, h, e, d, u in logs.itertuples(index=False)]}


def _plain(value: Any) -> Any:
    """A value as pandas gives it, for JSON: a time in ISO form, None for NULL (NaN, NaT), a number as int."""
    if value is None or value != value:
        return None
    if hasattr(value, "to_pydatetime"):
        return iso(value.to_pydatetime())
    if isinstance(value, (int, float)) or hasattr(value, "item"):  # numpy's numbers too
        number = float(value)
        return int(number) if number.is_integer() else number
    return value
