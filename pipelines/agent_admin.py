"""Agents managed by supervisors: the ``/api/agents`` routes, one-time sign-in (``/api/signin``),
and the agents file kept in step with the hub.

The agents file stays the source (``CALLPOP_AGENTS_CSV``): every change is written to it
atomically (``agents.rewrite``: a temporary file renamed over it) and the hub reads it again; an
edit made by hand is noticed within ``CALLPOP_AGENTS_CHECK_S`` (its size, time or inode changed).
Whenever the directory changes, each open socket is checked against it: a disabled or removed
agent's sockets, and those of a token that was replaced, are closed at once (4401 with the
reason). Every change is recorded in ``agent_changes`` (who, when, what; never a token).

Tokens: issuing (``POST /api/agents/{id}/token``) replaces all of the agent's tokens, so every
session of the old ones ends; a sign-in code adds one token for the device that used it (at most
``MAX_TOKENS`` per agent, the oldest going first), so signing in a second browser does not sign
the first one out.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, field_validator

from .access import SUPERVISOR, require_role
from .agents import ROLES, Agent, Agents, AgentsError, digest_text, rewrite
from .errors import ApiError
from .events import utcnow
from .limits import Throttle, settled
from .phone import normalise
from .providers import peers
from .sessions import CLOSE_UNAUTHORIZED
from .signin_codes import WHY, Codes

log = logging.getLogger("callpop.agents")
MAX_TOKENS = 5  # devices signed in with codes, per agent
# Wrong codes from the whole world per minute before every try waits (addresses are cheap, IPv6
# ones above all, so the per-address throttle alone would not bound guessing): ~40 bits of code
# at 60 guesses a minute is millions of years per live code.
MAX_WRONG_PER_MINUTE = 60
FILE_ACTOR = "file"
EMPTY = (None, "", False)
SHOWN = ("name", "extension", "mobile", "home", "role", "voicenter_user", "disabled", "expires_at")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
EXTENSION = re.compile(r"^[0-9]{1,15}$")
VOICENTER_USER = re.compile(r"^[A-Za-z0-9._@-]{0,64}$")
Supervisor = Annotated[Agent, Depends(require_role(SUPERVISOR))]
SIGNIN_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>callpop sign-in</title>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">
<h1>Sign in to callpop</h1>
<p>This is a one-time sign-in link. Copy this page's address, then open callpop's options (right-click the callpop
icon, then <b>Options</b>) and paste it into <b>Sign-in code</b>; or paste it into the console's sign-in.</p>
<p>The link works once, for a few minutes. If it has expired, ask your supervisor for a new one.</p>
</body></html>"""


def _value(agent: Agent, name: str) -> Any:
    value = getattr(agent, name)
    return value.isoformat() if isinstance(value, datetime) else value


def diff(old: Agent | None, new: Agent | None) -> dict[str, Any]:
    """What changed between two versions of an agent, for ``agent_changes``: never a token."""
    out: dict[str, Any] = {}
    for name in SHOWN:
        before = _value(old, name) if old else None
        after = _value(new, name) if new else None
        if before != after and not (before in EMPTY and after in EMPTY):  # a new agent's empty phones: nothing
            out[name] = [before, after]
    had, has = set(old.digests if old else ()), set(new.digests if new else ())
    if had != has:
        out["tokens"] = f"{len(has - had)} added, {len(had - has)} removed"
    return out


def admin_view(agent: Agent, sockets: int) -> dict[str, Any]:
    return {**agent.public(), "voicenter_user": agent.voicenter_user, "disabled": agent.disabled,
            "expires_at": _value(agent, "expires_at"), "tokens": len(agent.digests), "sockets": sockets}


def _why_closed(hub, session) -> str:
    """'' when the socket may stay open with the directory as it is now, else why it must close."""
    now = hub.agents.by_digest(session.token_digest)
    if now is None or now.id != session.agent.id:
        return "agent removed" if hub.agents.get(session.agent.id) is None else "token replaced: sign in again"
    if now.disabled:
        return "agent disabled by a supervisor"
    if why := now.usable(datetime.now(timezone.utc)):
        return why
    session.agent = now  # the same agent, maybe with another name, extension or role
    return ""


class AgentFile:
    """The hub's side of the agents file: changes written through it, hand edits read again."""

    def __init__(self, hub):
        self.hub = hub
        self.path = hub.settings.agents_csv
        # In cluster mode the hub puts the ones all hubs share here (cluster/counters.py,
        # ``signin_limits``): their methods are awaited.
        self.codes = Codes(hub.settings.signin_code_ttl_s)
        self.tries = Throttle(hub.settings.signin_try_every_s)
        self.trusted = peers.networks(hub.settings.trusted_proxies)
        self.wrong: collections.deque[float] = collections.deque()  # when recent wrong codes came (monotonic)
        self._lock = asyncio.Lock()
        self._seen = self._signature()
        self._broken: tuple | None = None  # the signature of a hand edit that does not load (said once)

    def _signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    async def watch(self) -> None:
        """Housekeeping: read the file again when it changed on disk."""
        while True:
            await asyncio.sleep(self.hub.settings.agents_check_s)
            if self._signature() != self._seen and not self._lock.locked():
                async with self._lock:
                    await self._reload(FILE_ACTOR)

    async def _reload(self, actor: str, action: str = FILE_ACTOR) -> int:
        """Read the file, take it as the directory, close the sockets it no longer allows and
        record what changed; returns how many sockets were closed."""
        signature = self._signature()
        try:
            fresh = await asyncio.to_thread(Agents.from_csv, self.path)
        except (OSError, ValueError) as e:  # AgentsError, csv.Error, a bad encoding: keep the last good one
            if signature != self._broken:
                log.error("the agents file does not load; the hub keeps the agents it had: %s", e)
            self._broken = signature
            return 0
        if not self.hub.settings.loopback_only and (demo := fresh.with_demo_tokens()):
            if signature != self._broken:  # as at start (hub.refuse_unsafe): public tokens on a reachable hub
                log.error("the agents file now holds the demo's public tokens (%s): not taken", ", ".join(demo[:5]))
            self._broken = signature
            return 0
        self._seen, self._broken = signature, None
        old, self.hub.agents = self.hub.agents, fresh
        touched = sorted(i for i in {a.id for a in old} | {a.id for a in fresh} if diff(old.get(i), fresh.get(i)))
        for agent_id in touched:
            self.record(actor, action, agent_id, diff(old.get(agent_id), fresh.get(agent_id)))
        if actor == FILE_ACTOR:
            log.info("agents file edited by hand, read again: %d agents, %d changed (%s)", len(fresh), len(touched),
                     ", ".join(touched[:10]))
        closed = 0
        for session in self.hub.sessions.all():
            if why := _why_closed(self.hub, session):
                session.drop(CLOSE_UNAUTHORIZED, why, level=logging.INFO)
                closed += 1
        for agent in fresh:
            if agent.disabled:
                await settled(self.codes.forget(agent.id))
        return closed

    def record(self, actor: str, action: str, agent_id: str, detail: dict[str, Any]) -> None:
        self.hub.store.insert("agent_changes", {"changed_at": utcnow(), "actor": actor, "action": action,
                                                "agent_id": agent_id, "detail": json.dumps(detail, default=str)})

    async def change(self, actor: str, action: str, edit: Callable[[list[str], list[dict]], list[dict]]) -> int:
        """Write ``edit`` to the file and take it at once; sockets closed. 422 when the result
        would not load (the file is left as it was)."""
        async with self._lock:
            try:
                await asyncio.to_thread(rewrite, self.path, edit)
            except AgentsError as e:
                raise ApiError(422, "invalid_agent", str(e)) from None
            return await self._reload(actor, action)


# --- what the routes take

def _one_line(value: str) -> str:
    if any(ord(ch) < 32 for ch in value):
        raise ValueError("must be one line of text")
    return value.strip()


class AgentFields(BaseModel):
    """The editable columns; an edit sends only those it changes."""
    name: str | None = Field(default=None, min_length=1, max_length=80)
    extension: str | None = Field(default=None, max_length=15, description="digits, or empty")
    mobile: str | None = Field(default=None, max_length=40)
    home: str | None = Field(default=None, max_length=40)
    role: str | None = Field(default=None, description=f"one of {', '.join(ROLES)}")
    voicenter_user: str | None = Field(default=None, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is None:
            return v
        v = _one_line(v)
        if not v or v[0] in "=+-@":  # a spreadsheet would take it for a formula
            raise ValueError("must not be empty or start with = + - @")
        return v

    @field_validator("extension")
    @classmethod
    def _extension(cls, v):
        if v is not None and (v := v.strip()) and not EXTENSION.match(v):
            raise ValueError("an extension is digits only, e.g. 201")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v):
        if v is not None and (v := v.strip().lower()) not in ROLES:
            raise ValueError(f"must be one of {', '.join(ROLES)}")
        return v

    @field_validator("voicenter_user")
    @classmethod
    def _voicenter(cls, v):
        if v is not None and not VOICENTER_USER.match(v := v.strip()):
            raise ValueError("letters, digits and . _ @ - only")
        return v


class NewAgent(AgentFields):
    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=80)

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        if not ID.match(v):
            raise ValueError("letters, digits and . _ - only, starting with a letter or digit")
        return v


class SignIn(BaseModel):
    code: str = Field(min_length=1, max_length=200)


def _phones(hub, fields: dict[str, Any]) -> None:
    for name in ("mobile", "home"):
        if text := fields.get(name):
            fields[name] = _one_line(text)
            if not normalise(fields[name], hub.settings.default_region).valid:
                raise ApiError(422, "invalid_phone", f"{name}: {fields[name][:40]!r} is not a phone number "
                                                     f"(region {hub.settings.default_region})")


def _set(fields: list[str], row: dict, values: dict[str, Any]) -> dict:
    for name, value in values.items():
        text = "true" if value is True else "" if value in (False, None) else str(value)
        if name not in fields and text:  # a column the file did not have (role, disabled...)
            fields.append(name)
        row[name] = text
    return row


def router(hub) -> APIRouter:
    book: AgentFile = hub.agent_file
    routes = APIRouter(tags=["agents"])

    def known(agent_id: str) -> Agent:
        agent = hub.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "not_found", f"no agent with id {agent_id[:40]!r}")
        return agent

    def view(agent_id: str) -> dict[str, Any]:
        return admin_view(hub.agents.get(agent_id), hub.sessions.online().get(agent_id, 0))

    def on_row(agent_id: str, change: Callable[[list[str], dict], dict]):
        def edit(fields: list[str], rows: list[dict]) -> list[dict]:
            return [change(fields, row) if (row.get("id") or "").strip() == agent_id else row for row in rows]
        return edit

    @routes.get("/api/agents", summary="Every agent, with its state and sockets (supervisors)")
    async def list_agents(me: Supervisor) -> dict:
        online = hub.sessions.online()
        return {"agents": [admin_view(a, online.get(a.id, 0)) for a in hub.agents]}

    @routes.post("/api/agents", status_code=201, summary="Add an agent; its token is in the answer, once")
    async def add_agent(body: NewAgent, me: Supervisor) -> dict:
        if hub.agents.get(body.id) is not None:
            raise ApiError(409, "agent_exists", f"an agent with id {body.id!r} exists already")
        values = body.model_dump(exclude_none=True)
        _phones(hub, values)
        token = secrets.token_urlsafe(32)
        values = {"role": "agent", **values, "token": digest_text(token)}

        def edit(fields: list[str], rows: list[dict]) -> list[dict]:
            if any((r.get("id") or "").strip() == body.id for r in rows):
                raise AgentsError(f"an agent with id {body.id!r} exists already")
            return rows + [_set(fields, {f: "" for f in fields}, values)]
        await book.change(me.id, "add", edit)
        return {"agent": view(body.id), "token": token}

    @routes.patch("/api/agents/{agent_id}", summary="Change an agent's name, phones, role or Voicenter user")
    async def edit_agent(agent_id: str, body: AgentFields, me: Supervisor) -> dict:
        known(agent_id)
        values = body.model_dump(exclude_none=True)
        if not values:
            raise ApiError(422, "invalid_request", "nothing to change: send one of " + ", ".join(AgentFields.model_fields))
        if agent_id == me.id and values.get("role", SUPERVISOR) != SUPERVISOR:
            raise ApiError(409, "own_account", "a supervisor cannot take their own supervisor role away")
        _phones(hub, values)
        closed = await book.change(me.id, "edit", on_row(agent_id, lambda fields, row: _set(fields, row, values)))
        return {"agent": view(agent_id), "sockets_closed": closed}

    async def set_disabled(agent_id: str, me: Agent, disabled: bool) -> dict:
        known(agent_id)
        if agent_id == me.id and disabled:
            raise ApiError(409, "own_account", "a supervisor cannot disable their own account")
        closed = await book.change(me.id, "disable" if disabled else "enable",
                                   on_row(agent_id, lambda fields, row: _set(fields, row, {"disabled": disabled})))
        return {"agent": view(agent_id), "sockets_closed": closed}

    @routes.post("/api/agents/{agent_id}/disable", summary="Disable an agent: its sockets close at once")
    async def disable_agent(agent_id: str, me: Supervisor) -> dict:
        return await set_disabled(agent_id, me, True)

    @routes.post("/api/agents/{agent_id}/enable", summary="Let a disabled agent sign in again")
    async def enable_agent(agent_id: str, me: Supervisor) -> dict:
        return await set_disabled(agent_id, me, False)

    @routes.post("/api/agents/{agent_id}/token", summary="Issue a new token (shown once); the old ones stop, "
                 "their sockets close")
    async def rotate_token(agent_id: str, me: Supervisor) -> dict:
        known(agent_id)
        token = secrets.token_urlsafe(32)
        closed = await book.change(me.id, "token", on_row(
            agent_id, lambda fields, row: _set(fields, row, {"token": digest_text(token)})))
        return {"agent": view(agent_id), "token": token, "sockets_closed": closed}

    @routes.post("/api/agents/{agent_id}/signin-code", summary="A one-time sign-in code for the agent (shown once)")
    async def make_code(agent_id: str, me: Supervisor) -> dict:
        if known(agent_id).disabled:
            raise ApiError(409, "agent_disabled", "enable the agent first")
        code = await settled(book.codes.make(agent_id, me.id))
        book.record(me.id, "signin_code", agent_id, {"expires_in_s": hub.settings.signin_code_ttl_s})
        base = hub.settings.base_url
        return {"code": code, "link": f"{base}/signin#code={code}", "hub_url": base,
                "expires_in_s": hub.settings.signin_code_ttl_s}

    @routes.get("/api/agents/changes", summary="The latest changes to the agents (who, when, what)")
    async def changes(me: Supervisor, agent_id: Annotated[str | None, Query(max_length=40)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
        sql = "SELECT changed_at, actor, action, agent_id, detail FROM agent_changes"
        params: list[Any] = []
        if agent_id:
            sql, params = sql + " WHERE agent_id = ?", [agent_id]
        rows = await asyncio.to_thread(hub.store.query, sql + " ORDER BY changed_at DESC LIMIT ?", params + [limit])
        return {"changes": [{"changed_at": r.changed_at.isoformat() + "Z", "actor": r.actor, "action": r.action,
                             "agent_id": r.agent_id, "detail": json.loads(r.detail or "{}")}
                            for r in rows.itertuples()]}

    @routes.get("/signin", response_class=HTMLResponse, summary="Where a sign-in link opens: says what to do with it")
    async def signin_page() -> HTMLResponse:
        # The code is in the link's #fragment: the browser never sends it here, and the page never reads it.
        return HTMLResponse(SIGNIN_PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                                  "Content-Security-Policy": "default-src 'none'"})

    @routes.post("/api/signin", summary="Trade a one-time sign-in code for a token of your own (no bearer)")
    async def sign_in(body: SignIn, request: Request) -> JSONResponse:
        peer = request.client.host if request.client else ""
        client = peers.client_address(peer, request.headers.getlist("x-forwarded-for"), book.trusted)
        # behind the TLS proxy: the agent's address, not the proxy's
        allowed, _ = await settled(book.tries.allow(str(client or peer)))
        now = time.monotonic()
        while book.wrong and now - book.wrong[0] > 60:
            book.wrong.popleft()
        if not allowed or len(book.wrong) >= MAX_WRONG_PER_MINUTE:
            hub.reject("/api/signin", "too_many_tries")
            return JSONResponse({"error": "too_many_tries", "message": "one try per "
                                 f"{hub.settings.signin_try_every_s:g} s: wait, then try again"}, status_code=429,
                                headers={"Retry-After": str(max(1, round(hub.settings.signin_try_every_s)))})
        code, why = await settled(book.codes.take(body.code))
        if code is None:
            if why != "malformed":
                book.wrong.append(now)
            hub.reject("/api/signin", "bad_code", why)  # the kind of refusal, never the code
            status, message = WHY[why]
            raise ApiError(status, "bad_code", message)
        agent = hub.agents.get(code.agent_id)
        if agent is None or agent.disabled:
            raise ApiError(403, "agent_disabled", "this agent may not sign in now")
        token = secrets.token_urlsafe(32)

        def add_token(fields: list[str], row: dict) -> dict:
            kept = (row.get("token") or "").split()[-(MAX_TOKENS - 1):]
            return _set(fields, row, {"token": " ".join(kept + [digest_text(token)])})
        await book.change(agent.id, "signin", on_row(agent.id, add_token))
        return JSONResponse({"token": token, "agent": hub.agents.get(agent.id).public()})

    return routes
