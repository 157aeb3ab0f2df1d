"""The hub: one object that owns the parts and carries out what the pure core decides.

Events from any provider enter through ``Hub.ingest``: the event is written to ``events`` (and
``ingest`` returns only once it is on disk, in the store's journal), the call book decides what it means, and the hub
acts: rows to the store, ``call`` messages to sockets, pops to ``Popper``. Nothing here blocks
the event loop: the store writes on its own thread, the CRM client is async.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any

from .agents import Agent, Agents
from .calls import CallBook
from .contacts import Contacts
from .crm import client_for as crm_client_for
from .crm import http_client as crm_http_client
from .crm import http_transport as crm_http_transport
from .dial import Dialer, DialRules
from .events import CallEvent, as_utc, utcnow
from .pops import Popper
from .providers.base import Provider
from .sessions import Session, Sessions
from .settings import Settings
from .store import Store
from .store_process import StoreProcess

log = logging.getLogger("callpop.hub")
SEEN_EVENTS = 200_000  # event ids remembered for idempotency (and reloaded at start)


def make_provider(settings: Settings, hub: "Hub") -> Provider:
    """The provider the settings name."""
    name = settings.provider
    if name == "sim":
        from .providers.sim import SimProvider
        return SimProvider(hub.agents, hub.contacts, calls_per_minute=settings.sim_calls_per_minute,
                           seed=settings.sim_seed, speed=settings.sim_speed)
    if name == "webhook":
        from .providers.webhook import WebhookProvider
        return WebhookProvider(hub.http, settings.webhook_dial_url, settings.base_url)
    if name == "voicenter":
        from .providers.voicenter import VoicenterProvider
        return VoicenterProvider(hub, settings)
    if name == "asterisk":
        from .providers.asterisk import AsteriskProvider
        return AsteriskProvider(settings)
    raise ValueError(f"provider {name!r} is not available in this build")


class Hub:
    def __init__(self, settings: Settings, provider: Provider | None = None):
        self.settings = settings
        self.agents = Agents.from_csv(settings.agents_csv)
        self.contacts = Contacts.from_csv(settings.contacts_csv, settings.default_region)
        self.store = (StoreProcess(settings.db_path, commit_window_ms=settings.store_commit_ms,
                                   log_level=settings.log_level, send_linger_ms=settings.store_send_linger_ms)
                      if settings.store_process
                      else Store(settings.db_path, commit_window_ms=settings.store_commit_ms))
        self.sessions = Sessions()
        self.book = CallBook(settings.default_region)
        self._provider = provider
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._loops: list[asyncio.Task] = []  # heartbeat and housekeeping: they never finish
        self._draining = False
        self.started = time.time()
        self.events_accepted = 0
        self.events_duplicate = 0

    # --- life cycle
    async def start(self) -> None:
        s = self.settings
        await asyncio.to_thread(self.store.open)
        ids = await asyncio.to_thread(self.store.query, "SELECT event_id FROM events "
                                      "WHERE received_at > now()::TIMESTAMP - INTERVAL 1 DAY "
                                      f"ORDER BY received_at DESC LIMIT {SEEN_EVENTS}")
        for eid in reversed(ids["event_id"].tolist()):
            self._seen[eid] = None
        pool = crm_http_transport(s)
        self.http = crm_http_client(s, pool)
        self.crm = crm_client_for(s, self.http, s.crm_url or f"{s.base_url}/crm/lookup", pool=pool)
        self.popper = Popper(self.crm, self.store, self.sessions, deadline_ms=s.crm_deadline_ms,
                             phone_format=s.crm_phone_format, context_params=s.csv_list("crm_context_params"))
        self.provider = self._provider or make_provider(s, self)
        rules = DialRules(s.default_region, tuple(s.csv_list("dial_blocked_prefixes")),
                          tuple(c.upper() for c in s.csv_list("dial_allowed_countries")))
        self.dialer = Dialer(self.provider, self.store, self.sessions, rules, s.dial_rate_per_minute)
        await self.provider.start(self)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._heartbeat()), loop.create_task(self._housekeeping())]
        log.info("hub started: provider %s, %d agents, %d contacts, CRM %s", self.provider.name,
                 len(self.agents), len(self.contacts), "sample" if not s.crm_url else "configured")

    async def drain(self, grace_s: float = 2.0) -> None:
        """Shutdown, first half (the server calls it before closing connections): no more calls
        from the provider; pops waiting for their CRM, late CRM answers and dials being placed
        finish within a short grace; then every socket gets what is queued and a close 1001."""
        if self._draining:
            return
        self._draining = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.provider.stop(), timeout=5)
        end = time.monotonic() + grace_s
        # A pop that reaches its deadline starts a late lookup: look again until nothing is left.
        while (pending := self.popper.tasks | self.dialer.tasks) \
                and (left := end - time.monotonic()) > 0:
            await asyncio.wait(pending, timeout=left)
        await asyncio.gather(*(s.close() for s in self.sessions.all()), return_exceptions=True)

    async def stop(self) -> None:
        """Finish what is in flight, say goodbye to every socket, checkpoint the database."""
        await self.drain()
        for t in self._loops:
            t.cancel()
        await self.http.aclose()
        await asyncio.to_thread(self.store.close)
        log.info("hub stopped")

    # --- events in
    async def ingest(self, event: CallEvent, provider: str, durable: bool = True) -> str:
        """Record one event, act on it, and return 'accepted' or 'duplicate': once it is on disk
        when ``durable`` (the PBX gets an acknowledgement), else at once (a provider in this
        process with nobody to acknowledge: its next event is not held back by the journal's sync)."""
        event_id = event.event_id()
        if event_id in self._seen:
            self.events_duplicate += 1
            return "duplicate"
        self._seen[event_id] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        now = utcnow()
        written = self.store.insert("events", {
            "event_id": event_id, "call_id": event.call_id, "type": event.type, "direction": event.direction,
            "caller": event.caller, "callee": event.callee, "extension": event.extension,
            "occurred_at": as_utc(event.at) if event.at else now, "received_at": now, "provider": provider},
            durable=durable)
        try:
            self.process(event, provider)
        except Exception:  # noqa: BLE001 - the event is kept even if acting on it failed
            log.exception("event %s of call %s could not be processed", event.type, event.call_id)
        if durable:  # otherwise a failed write is only logged by the store
            try:
                await asyncio.wrap_future(written)
            except Exception:
                self._seen.pop(event_id, None)  # not on disk: a retry must be accepted
                raise
        self.events_accepted += 1
        return "accepted"

    def process(self, event: CallEvent, provider: str) -> None:
        step = self.book.apply(event, self.agents, utcnow(), provider)
        call = step.call
        if step.insert_call:
            self.store.insert("calls", step.insert_call)
        if step.update_call and call is not None:
            self.store.update("calls", call.key, step.update_call)
        for agent_id, message in step.notify:
            self.sessions.send(agent_id, message)
        if step.pop_to and call is not None:
            self.popper.pop(call, step.pop_to, step.extension)
        if step.ignored:
            log.debug("call %s %s: %s", event.call_id, event.type, step.ignored)

    async def dial_progress(self, dial_id: str, state: str, error: str = "", reason: str = "") -> bool:
        return await self.dialer.progress(dial_id, state, error, reason)

    def reject(self, source: str, reason: str, detail: str = "") -> None:
        """Record refused input (never a token) and log it."""
        log.warning("rejected %s: %s %s", source, reason, detail[:200])
        self.store.insert("rejects", {"logged_at": utcnow(), "source": source, "reason": reason,
                                      "detail": detail[:500] or None})

    # --- sockets
    def welcome(self, session: Session) -> None:
        """A new socket: greet it and replay the pops of calls still ringing for its agent."""
        self.sessions.add(session)
        session.offer_message({"type": "welcome", "agent": session.agent.public(),
                               "heartbeat_s": self.settings.ws_heartbeat_s})
        for call in self.book.live():
            if call.status == "ringing" and session.agent.id in call.popped and call.pop:
                session.offer_message(call.pop)

    async def _heartbeat(self, parts: int = 20) -> None:
        # A Manifest V3 service worker is stopped after ~30 s without extension events; an
        # application message (not a protocol ping) counts as one. Every socket gets one each
        # period, a twentieth of them at a time: 1,000 sockets woken at once held the event loop
        # (and any pop queued behind them) for tens of milliseconds.
        part = 0
        while True:
            await asyncio.sleep(self.settings.ws_heartbeat_s / parts)
            self.sessions.broadcast({"type": "heartbeat", "at": utcnow().isoformat() + "Z"}, part, parts)
            part = (part + 1) % parts

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(30)
            for call in self.book.evict(utcnow()):
                self.popper.forget(call.call_id)

    # --- what the API shows
    def live_calls(self, agent: Agent) -> list[dict[str, Any]]:
        now = utcnow()
        calls = self.book.live()
        if agent.role != "supervisor":
            calls = [c for c in calls if agent.id in c.popped or c.agent_id == agent.id]
        return [c.public(now, self.agents) for c in sorted(calls, key=lambda c: c.started_at, reverse=True)]

    def status(self) -> dict[str, Any]:
        online = self.sessions.online()
        return {
            "status": "ok", "uptime_s": round(time.time() - self.started),
            "provider": self.provider.status(),
            "agents": len(self.agents), "agents_online": len(online), "sockets": len(self.sessions),
            "calls_ringing": sum(1 for c in self.book.live() if c.status == "ringing"),
            "calls_live": len(self.book.live()),
            "events_accepted": self.events_accepted, "events_duplicate": self.events_duplicate,
            "crm": {"configured": bool(self.settings.crm_url), "requests": self.crm.requests,
                    "deadline_ms": self.settings.crm_deadline_ms},
            "store": {"commits": self.store.commits, "rows": self.store.rows_written,
                      "queued": self.store.pending()},
        }
