"""The hub: one object that owns the parts and carries out what the pure core decides.

Events from any provider enter through ``Hub.ingest``: the event is acted on once (its id is
unique in the database, whatever its age), the call book decides what it means, and the hub
acts: rows to the store, ``call`` messages to sockets, pops to ``Popper``. The event's row and
the rows made from it are committed together, and ``ingest`` returns once they are (a PBX's 202
means committed). Nothing here blocks the event loop: the store writes on its own thread, the
CRM client is async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from .access import sees_everything
from .agent_admin import AgentFile
from .agents import Agent, Agents
from .calllog import CallLog
from .calls import Call, CallBook
from .contacts import Contacts
from . import http_client
from .crm import client_for as crm_client_for
from .crm_contract import LookupResult
from .dial import Dialer, DialRules
from .events import CallEvent, utcnow
from .inbox import Inbox
from .limits import Rejects
from .metrics import Metrics
from .pops import Popper, load_choices
from .phone import normalise
from .providers.base import CallRecord, DialRecord, Provider
from .providers.registry import make_provider
from .sessions import Session, Sessions
from .settings import Settings, SettingsError
from .store import Store, StoreUnavailable, is_duplicate

log = logging.getLogger("callpop.hub")
ACK_TIMEOUT_S = 5.0  # longest an event's answer waits for its commit (then 503: the PBX retries)


class EventRefused(ValueError):
    """An event the hub will not act on; ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def refuse_unsafe(settings: Settings, agents: Agents) -> None:
    """SettingsError for a hub that must not start as configured."""
    if not settings.crm_url and not settings.sample_crm:
        raise SettingsError("no CRM: set CALLPOP_CRM_URL to your CRM's lookup URL (docs/crm-contract.md), or "
                            "CALLPOP_SAMPLE_CRM=true to try the sample CRM")
    if settings.loopback_only:
        return
    if demo := agents.with_demo_tokens():
        raise SettingsError(f"{settings.agents_csv} holds the demo's public tokens ({', '.join(demo[:5])}) and "
                            f"CALLPOP_HOST={settings.host} is reachable from other machines: give each agent a "
                            "token of its own (python -m pipelines agents token <id>)")
    if settings.sample_crm:
        raise SettingsError(f"CALLPOP_SAMPLE_CRM answers anyone without a token; it is refused on "
                            f"CALLPOP_HOST={settings.host} (use 127.0.0.1, or set CALLPOP_CRM_URL)")


class Hub:
    def __init__(self, settings: Settings, provider: Provider | None = None):
        self.settings = settings
        self.agents = Agents.from_csv(settings.agents_csv)
        refuse_unsafe(settings, self.agents)
        self.agent_file = AgentFile(self)  # changes to the agents, and hand edits of their file read again
        if settings.contacts_csv.is_file():
            self.contacts = Contacts.from_csv(settings.contacts_csv, settings.default_region)
        else:  # a server without a contacts file yet: an empty grid until a supervisor imports some
            log.warning("no contacts file at %s (CALLPOP_CONTACTS_CSV): the contact grid starts empty",
                        settings.contacts_csv.resolve())
            self.contacts = Contacts(settings.default_region, [])
        self.book = CallBook(settings.default_region)
        self.cluster = None  # one of several hubs on Redis (pipelines/cluster/): writes and sockets go through it
        if settings.redis_url.get_secret_value():
            from .cluster.node import Cluster
            self.cluster = Cluster(settings, self.book)
            self.store, self.sessions, self.inbox = self.cluster.journal, self.cluster.sessions, self.cluster.inbox
        else:
            self.store = Store(settings.db_path, commit_window_ms=settings.store_commit_ms,
                               queue_max=settings.store_queue_max)
            self.sessions = Sessions(per_agent=settings.ws_per_agent)
            self.inbox = Inbox(self.store, self.sessions, settings.default_region)
        self.rejects = Rejects(lambda row: self.store.insert("rejects", row), settings.rejects_window_s)
        # Made now, not at start: its routes are part of the app, which is built before it starts.
        self.provider = provider or make_provider(settings, self)
        # Events acted on whose rows are not committed yet: a copy arriving meanwhile waits for
        # the first one's commit. Once committed, the database's unique key answers instead.
        self._pending: dict[str, asyncio.Future[str | BaseException]] = {}
        self._loops: list[asyncio.Task] = []  # housekeeping: never finishes
        self._draining = False
        self.started = time.time()
        self.events_accepted = 0
        self.events_duplicate = 0
        self.metrics = Metrics()
        self.metrics.watch(self)
        self.calllog = CallLog(settings, self.store, self.sessions, lambda: self.agents)

    # --- life cycle
    async def start(self) -> None:
        s = self.settings
        if self.cluster is not None:
            await self.cluster.start()
        else:
            await asyncio.to_thread(self.store.open)
            await asyncio.to_thread(self.inbox.load)
        self.http = http_client.client(s)
        # in a cluster: one cache and one request per number across the hubs
        self.crm = crm_client_for(s, self.http, s.crm_lookup_url, shared=self.cluster and self.cluster.lookups)
        self.popper = Popper(self.crm, self.store, self.sessions, deadline_ms=s.crm_deadline_ms,
                             phone_formats=s.crm_phone_formats or [s.crm_phone_format],
                             context_params=s.crm_context_params, metrics=self.metrics)
        if self.cluster is None:
            self.popper.choices = await asyncio.to_thread(load_choices, self.store)
        else:
            self.popper.on_pop = self.cluster.calls.pop_sent
            self.popper.choices, self.popper.on_choice = self.cluster.choices.choices, self.cluster.choices.chosen
            self.cluster.sessions.on_remote_pop = self._popped_elsewhere
            self.cluster.takeover.pop = self._pop_orphan
        rules = DialRules(s.default_region, tuple(s.dial_blocked_prefixes), tuple(s.dial_allowed_countries),
                          tuple(s.dial_allowed_types), tuple(s.dial_leg_a_allowed))
        limits = {}
        if self.cluster is not None:  # the limits, the budget and the sign-in codes hold across hubs
            from .cluster import counters
            limits = dict(zip(("limiter", "budget"), counters.dial_limits(self.cluster.link, s)))
            self.agent_file.codes, self.agent_file.tries = counters.signin_limits(self.cluster.link, s)
        self.dialer = Dialer(self.provider, self.store, self.sessions, rules, s.dial_rate_per_minute,
                             s.dial_budget_per_hour, on_over=self.calllog.dialled, **limits)
        if self.cluster is None:  # in a cluster the recorder holds the outbox (pipelines/cluster/recorder.py)
            await self.calllog.start()
        await self.provider.start(self)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._housekeeping()), loop.create_task(self._count_rejects()),
                       loop.create_task(self.agent_file.watch())]
        if self.cluster is None:
            self._loops.append(loop.create_task(self.calllog.run()))
        log.info("hub started: provider %s, %d agents (%s), %d contacts, database %s, CRM %s", self.provider.name,
                 len(self.agents), s.agents_csv.resolve(), len(self.contacts), self.store.path.resolve(),
                 "sample" if not s.crm_url else "configured")

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
        self.rejects.flush(everything=True)  # the counts still open go to the store before it closes
        if self.crm.shared is not None:  # its refreshes behind the pops use the HTTP client
            await self.crm.shared.stop()
        await self.http.aclose()
        await self.calllog.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        else:
            await asyncio.to_thread(self.store.close)
        log.info("hub stopped")

    # --- events in
    async def ingest(self, event: CallEvent, provider: str, wait: bool = True) -> str:
        """Record one event and act on it: returns 'accepted', or 'duplicate' for an event id
        already recorded. ``wait``: return once the event and the rows made from it are committed
        (the PBX's 202); else at once (a provider in this process that acknowledges to nobody).

        The pop never waits for the disk: the event is acted on at once, and its rows go to the
        store as one unit that the unique key on ``event_id`` refuses whole if the id is already
        there, whatever its age. A copy arriving while the first is on its way waits for it.

        Raises ``EventRefused`` (its time is too far from the hub's clock) or ``StoreUnavailable``
        (not committed: the disk refuses writes; the event is held and a retry is answered once
        it is committed; with too much held, it is refused before it is acted on)."""
        now = utcnow()
        if event.at is not None and abs(event.at - now) > timedelta(hours=self.settings.event_window_h):
            raise EventRefused("at_out_of_range", f"'at' {event.at.isoformat()}Z is more than "
                                                  f"{self.settings.event_window_h:g} h from the hub's clock")
        if self.cluster is not None:
            return await self.cluster.ingest(self, event, provider, wait)
        event_id = event.event_id()
        first = self._pending.get(event_id)
        if first is not None:  # a copy of an event still on its way to the disk
            self.events_duplicate += 1
            if wait:
                await self._committed(first)
            return "duplicate"
        if refused := self.store.accepting():
            raise StoreUnavailable(refused)
        done: asyncio.Future[str | BaseException] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = done
        with self.store.together():
            written = self.act(event, event_id, provider, now)
        loop = asyncio.get_running_loop()
        written.add_done_callback(lambda f: loop.call_soon_threadsafe(self._settle, event_id, done, f))
        return await self._committed(done) if wait else "accepted"

    def act(self, event: CallEvent, event_id: str, provider: str, now: datetime):
        """The event's row, and what it means carried out (inside the caller's unit of writes)."""
        written = self.store.insert("events", {
            "event_id": event_id, "call_id": event.call_id, "type": event.type, "direction": event.direction,
            "caller": event.caller, "callee": event.callee, "extension": event.extension,
            "occurred_at": event.at or now, "received_at": now, "provider": provider})
        try:
            self.process(event, provider)
        except Exception:  # noqa: BLE001 - the event is kept even if acting on it failed
            log.exception("event %s of call %s could not be processed", event.type, event.call_id)
        return written

    def _popped_elsewhere(self, agent_id: str, call_id: str, pop: dict) -> None:
        """Another hub sent this pop to the agent (cluster mode): replayed to sockets that sign in
        here, and the acks and choices of this hub's browsers are taken."""
        self.cluster.calls.popped(call_id, pop)
        self.popper.sent_elsewhere(call_id, agent_id, pop)

    def _pop_orphan(self, call: Call) -> None:
        """The pops of a call whose hub died before sending them (cluster mode, takeover.py)."""
        by_extension: dict[str, list[Agent]] = {}
        for agent_id, extension in call.popped.items():
            if (agent := self.agents.get(agent_id)) is not None and agent.pop_on == "ring":
                by_extension.setdefault(extension, []).append(agent)
        for extension, agents in by_extension.items():
            self.popper.pop(call, agents, extension)

    def _settle(self, event_id: str, done: asyncio.Future, written) -> None:
        """The event's unit is committed (accepted), refused by the unique key (duplicate), or failed."""
        self._pending.pop(event_id, None)
        failed = written.exception()
        outcome = "duplicate" if is_duplicate(failed) else failed or "accepted"
        if outcome == "duplicate":
            self.events_duplicate += 1
        elif outcome == "accepted":
            self.events_accepted += 1
        done.set_result(outcome)

    async def _committed(self, done: asyncio.Future[str | BaseException]) -> str:
        """'accepted' or 'duplicate' once the event behind ``done`` is settled; else
        StoreUnavailable (or the error that failed its write)."""
        if not done.done() and self.store.problem:  # held until the disk takes writes again
            raise StoreUnavailable(self.store.problem)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(done), ACK_TIMEOUT_S)
        except TimeoutError:
            raise StoreUnavailable(self.store.problem or f"not committed within {ACK_TIMEOUT_S:g} s") from None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def process(self, event: CallEvent, provider: str) -> None:
        before = getattr(self.book.get(event.call_id), "status", None)
        step = self.book.apply(event, self.agents, utcnow(), provider)
        call = step.call
        if step.insert_call:
            self.store.insert("calls", step.insert_call)
        if step.update_call and call is not None:
            self.store.update("calls", call.key, step.update_call)
        for agent_id, message in step.notify:
            self.sessions.send(agent_id, message)
        if step.pop_to and call is not None:  # the lookup starts at the ring, whoever's pop waits (pop_on)
            ringing = [a for a in step.pop_to if a.pop_on == "ring"]
            self.popper.pop(call, ringing, step.extension)
            self.inbox.pop_sent(call, (a.id for a in ringing))
        if call is not None and call.status != before:
            if call.status == "answered" and (later := [a for a in self.agents.by_extension(call.answered_by)
                                                        if a.pop_on == "answer" and a.id in call.popped]):
                self.popper.pop(call, later, call.answered_by)
                self.inbox.pop_sent(call, (a.id for a in later))
            self.inbox.call_moved(call, utcnow())
        if call is not None and (step.update_call or {}).get("status") in ("ended", "missed"):
            self.calllog.ended(call)  # in the event's unit: its 202 means the log entry is kept too
        if step.ignored:
            log.debug("call %s %s: %s", event.call_id, event.type, step.ignored)

    # --- what providers ask of the hub (providers.base.ProviderHost)
    async def dial_progress(self, dial_id: str, state: str, error: str = "", reason: str = "") -> bool:
        return await self.dialer.progress(dial_id, state, error, reason)

    def dial_state(self, dial_id: str) -> str | None:
        dial = self.dialer.get(dial_id)
        return None if dial is None else dial.state

    async def crm_answer(self, call_id: str, extension: str = "", ringing: bool = False) -> LookupResult | None:
        call = self.book.get(call_id)
        if call is None:
            return None
        if ringing:
            return await self.popper.answer(call, extension)
        pop = call.pop  # what the pops showed: the CRM's answer once it came
        if not pop or pop.get("status") not in ("found", "multiple", "not_found"):
            return None
        return LookupResult(pop["status"], name=pop["name"], company=pop["company"], url=pop["url"],
                            total=pop["total"])

    async def complete_call(self, record: CallRecord, provider: str) -> None:
        call = self.book.get(record.call_id)
        if call is not None and call.status in ("ringing", "answered"):  # no hangup came: close it now
            base = {"call_id": record.call_id, "direction": call.direction, "caller": call.caller,
                    "callee": call.callee}
            if record.answered and call.status == "ringing":
                await self.ingest(CallEvent(**base, type="answered", extension=record.extension), provider)
            await self.ingest(CallEvent(**base, type="hangup", cause=record.cause), provider)
        values: dict[str, Any] = {"duration_s": record.duration_s, "ring_s": record.ring_s, "talk_s": record.talk_s,
                                  "cdr_status": record.status or None, "recording_url": record.recording_url or None}
        if record.answered and record.extension:
            values["answered_by"] = record.extension
        if record.answered:  # a call that ended missed here but the provider's record says answered
            self.inbox.answered_after_all(record.call_id, utcnow())
        started = call.started_at if call is not None else await self._latest("calls", "call_id", record.call_id,
                                                                             "started_at")
        if started is not None:
            self.store.update("calls", {"call_id": record.call_id, "started_at": started}, values)
            await self.calllog.amend(record.call_id, {k: v for k, v in (("duration_s", record.duration_s),
                                                      ("recording_url", record.recording_url)) if v})
            return
        # Nothing popped for this call (e.g. before the hub ran): the record is all there is.
        agents = self.agents.by_extension(record.extension) if record.extension else []
        start = record.started or utcnow()
        end = record.started + timedelta(seconds=record.duration_s) \
            if record.started and record.duration_s is not None else None
        self.store.insert("calls", {
            **values, "call_id": record.call_id, "direction": record.direction, "caller": record.customer,
            "caller_e164": normalise(record.customer, self.settings.default_region).e164, "callee": record.callee,
            "extension": record.extension or None, "agent_id": agents[0].id if agents else None,
            "started_at": start, "answered_at": start + timedelta(seconds=record.ring_s or 0) if record.answered
            else None, "ended_at": end, "status": "ended" if record.answered else "missed", "provider": provider,
            "hangup_cause": record.cause or None})

    async def record_dial(self, dial_id: str, record: DialRecord) -> None:
        dial = self.dialer.get(dial_id)  # in progress or just over: no read needed
        requested = dial.requested_at if dial is not None else \
            await self._latest("dials", "dial_id", dial_id, "requested_at")
        if requested is None:
            return
        values: dict[str, Any] = {"provider_call_id": record.provider_call_id}
        if record.leg:
            values[f"leg_{'a' if record.leg == 1 else 'b'}_status"] = record.leg_status or None
        if record.leg == 2:
            values |= {"duration_s": record.duration_s, "recording_url": record.recording_url or None}
        self.store.update("dials", {"dial_id": dial_id, "requested_at": requested}, values)

    async def dial_of(self, provider_call_id: str) -> str:
        rows = await asyncio.to_thread(self.store.query, "SELECT dial_id FROM dials WHERE provider_call_id = ? "
                                       "LIMIT 1", [provider_call_id])
        return "" if rows.empty else str(rows.dial_id[0])

    async def _latest(self, table: str, key: str, value: str, column: str) -> datetime | None:
        """The newest ``column`` of the rows where ``key`` is ``value`` (the second half of their key)."""
        rows = await asyncio.to_thread(self.store.query, f'SELECT "{column}" AS t FROM "{table}" WHERE "{key}" = ? '
                                       f'ORDER BY "{column}" DESC LIMIT 1', [value])
        return None if rows.empty else rows.t[0].to_pydatetime()

    def reject(self, source: str, reason: str, detail: str = "") -> None:
        """Record refused input (never a token) and log it: a kind of refusal seen again within
        ``rejects_window_s`` is counted, not written again (see pipelines/limits.py)."""
        self.rejects.add(source, reason, detail)

    # --- sockets
    def welcome(self, session: Session) -> None:
        """A new socket: greet it, replay the pops waiting for its agent (still ringing, or answered
        by a ``pop_on=answer`` agent), then send the agent's inbox."""
        self.sessions.add(session)
        session.offer_message({"type": "welcome", "agent": session.agent.public(),
                               "heartbeat_s": self.settings.ws_heartbeat_s})
        agent, due = session.agent, []
        for call in self.book.live():
            if agent.id in call.popped and (
                    (call.status == "ringing" and agent.pop_on == "ring") or (
                    call.status == "answered" and agent.pop_on == "answer"
                    and call.answered_by == call.popped[agent.id])):
                due.append(call.call_id)  # replayed now, or sent to this socket once the CRM answers
                if call.pop:
                    session.offer_message(call.pop)
        self.inbox.reached(agent.id, due)
        session.offer_message(self.inbox.message_for(agent.id))

    async def _count_rejects(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.settings.rejects_window_s / 4))
            self.rejects.flush()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(30)
            for call in self.book.evict(utcnow()):
                self.popper.forget(call.call_id)

    # --- what the API shows
    def live_calls(self, agent: Agent) -> list[dict[str, Any]]:
        now = utcnow()
        calls = self.book.live()
        if not sees_everything(agent):
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
                    "deadline_ms": self.settings.crm_deadline_ms, "failing": self.crm.failing,
                    "first_error": self.crm.first_error},
            "store": self.store_status(),
            "dial": self.dialer.status(),
            "call_log": self.calllog.status(),
        } | ({"redis": self.cluster.status()} if self.cluster is not None else {})

    def store_status(self) -> dict[str, Any]:
        return {"state": self.store.state, "problem": self.store.problem, "commits": self.store.commits,
                "rows": self.store.rows_written, "queued": self.store.pending()}
