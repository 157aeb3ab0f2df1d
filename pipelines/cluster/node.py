"""This hub as one of several: what ``Hub`` does differently when ``CALLPOP_REDIS_URL`` is set.

An event goes through ``ingest``: its id is claimed across hubs (``callpop:seen:<id>``), the
call's lock taken and its state loaded from Redis, then the hub acts on it exactly as one hub
does (``Hub.act``: the call book decides, pops and call updates go out); the event's unit goes
to the journal with the call's new state, and the 202 waits for Redis to have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import duckdb
from redis.exceptions import RedisError

from .. import migrations
from ..calls import CallBook
from ..events import CallEvent, utcnow
from ..settings import Settings
from ..store import StoreUnavailable
from ..store_schema import SCHEMA
from . import callstate, liveness
from .callstate import SharedCalls
from .choices import CHOICES, SharedChoices
from .fanout import ClusterSessions
from .inbox import INBOX, SharedInbox
from .lookups import SharedLookups
from .journal import Journal
from .reads import RemoteReads
from .takeover import Takeover
from .link import CALLS, DELIVER, Link, RedisDown

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("callpop.cluster")


def schema_columns() -> dict[str, list[str]]:
    """Table -> columns of this release's schema (what the recorder's file has once upgraded)."""
    con = duckdb.connect(":memory:")
    try:
        migrations.upgrade(con, SCHEMA.read_text(encoding="utf-8"))
        return {t: [c for c, _ in cols] for t, cols in migrations.columns(con).items()}
    finally:
        con.close()


class Cluster:
    def __init__(self, settings: Settings, book: CallBook):
        self.link = Link(settings)
        self.journal = Journal(self.link, schema_columns(), seen_ttl_s=int(settings.event_window_h * 3600),
                               queue_max=settings.store_queue_max, reads=RemoteReads(settings))
        self.calls = SharedCalls(self.link, book)
        self.sessions = ClusterSessions(self.link, per_agent=settings.ws_per_agent)
        self.inbox = SharedInbox(self.link, self.journal, self.sessions, settings.default_region)
        self.choices = SharedChoices(self.link)
        self.lookups = SharedLookups.for_settings(self.link, settings)
        self.takeover = Takeover(self.link, self.calls, due_s=settings.crm_deadline_ms / 1000 + 1.0)
        self._in_hand: dict[str, asyncio.Future] = {}  # event id -> outcome, while this hub acts on it
        self._call_locks: dict[str, asyncio.Lock] = {}  # one call's events here, in the order they came
        self._loops: list[asyncio.Task] = []
        self.subscribed = False

    async def start(self) -> None:
        self.journal.open()
        await self.link.start()
        with contextlib.suppress(RedisDown):  # before the first socket: its welcome replays these
            await self.calls.load_live()
            await self.inbox.load_shared()
            await self.choices.load()
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self.sessions.publish()), loop.create_task(self.sessions.presence()),
                       loop.create_task(self.inbox.publish()), loop.create_task(self._listen()),
                       loop.create_task(self.takeover.run()), loop.create_task(liveness.heartbeat(self.link))]

    async def stop(self) -> None:
        await self.journal.aclose()
        await self.inbox.stop()
        await self.choices.stop()
        for t in self._loops:  # first: the heartbeat must not say alive again after the goodbye
            t.cancel()
        await self.sessions.leave()
        await liveness.leave(self.link)
        await self.link.stop()

    # --- events in
    async def ingest(self, hub: "Hub", event: CallEvent, provider: str, wait: bool) -> str:
        event_id = event.event_id()
        first = self._in_hand.get(event_id)
        if first is not None:  # a copy of an event this hub is acting on
            hub.events_duplicate += 1
            if wait:
                await asyncio.wait_for(asyncio.shield(first), 5.0)
            return "duplicate"
        if refused := self.journal.accepting():
            raise StoreUnavailable(refused)
        done = asyncio.get_running_loop().create_future()
        self._in_hand[event_id] = done
        lock = self._call_locks.setdefault(event.call_id, asyncio.Lock())
        task = asyncio.get_running_loop().create_task(self._ingest(hub, event, event_id, provider, lock))
        task.add_done_callback(lambda t: self._settled(hub, event_id, event.call_id, lock, done, t))
        if not wait:
            return "accepted"
        outcome = await asyncio.shield(done)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _settled(self, hub: "Hub", event_id: str, call_id: str, lock: asyncio.Lock, done: asyncio.Future,
                 task: asyncio.Task) -> None:
        self._in_hand.pop(event_id, None)
        if not lock.locked() and self._call_locks.get(call_id) is lock:
            del self._call_locks[call_id]
        if task.cancelled():
            outcome: Any = StoreUnavailable("cancelled")
        else:
            outcome = task.exception() or task.result()
        if isinstance(outcome, (RedisDown, TimeoutError, RedisError)):  # e.g. OOM at maxmemory: no promise
            outcome = StoreUnavailable(str(outcome) or "redis: no answer in time")
        if outcome == "accepted":
            hub.events_accepted += 1
        elif outcome == "duplicate":
            hub.events_duplicate += 1
        elif isinstance(outcome, BaseException) and not isinstance(outcome, StoreUnavailable):
            log.error("event %s could not be recorded: %r", event_id, outcome)
        done.set_result(outcome)

    async def _ingest(self, hub: "Hub", event: CallEvent, event_id: str, provider: str, lock: asyncio.Lock) -> str:
        async with lock:  # before any await: this hub's events of a call keep their order
            token = await self.calls.take(event_id, event.call_id, wait_s=5.0)
            if token is None:
                return "duplicate"
            outcome: Any = None
            try:
                now = utcnow()
                with self.journal.event_unit({"event_id": event_id}) as unit:
                    hub.act(event, event_id, provider, now)
                    call = hub.book.get(event.call_id)
                    if call is not None:
                        self.calls.moved_by[call.call_id] = self.link.name
                        state = callstate.dumps_state(call)
                        unit.event.update(
                            call_id=call.call_id, state=state, live=callstate.is_live(call),
                            ttl_s=callstate.ttl_s(call), score=int(time.time() * 1000),
                            message=json.dumps({"hub": self.link.name, "state": state}))
                unit.event.update(call_key=callstate.key(event.call_id), live_key=callstate.LIVE,
                                  lock_key=callstate.lock_key(event.call_id), token=token)
                outcome = await asyncio.wait_for(asyncio.shield(unit.done), 5.0)
            finally:
                if not isinstance(outcome, str):  # the journal's script did not run: the lock is still held
                    await self.calls.let_go(event.call_id, token)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

    # --- what other hubs say
    async def _listen(self) -> None:
        """Call changes, agent messages, inbox changes and contact choices from the other hubs;
        after a break, subscribe again and reload the live calls, the inbox and the choices
        (messages published meanwhile are lost: pub/sub is at most once)."""
        while True:
            pubsub = self.link.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CALLS, DELIVER, INBOX, CHOICES)
                await self.calls.load_live()
                await self.inbox.load_shared()
                await self.choices.load()
                self.subscribed = True
                async for message in pubsub.listen():
                    self._heard(message)
            except (RedisError, OSError, RedisDown) as e:
                if self.subscribed:
                    log.warning("cluster: subscription lost (%s); subscribing again", e)
                self.subscribed = False
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _heard(self, message: dict) -> None:
        try:
            if message["channel"] == DELIVER.encode():
                self.sessions.delivered(message["data"])
                return
            if message["channel"] == INBOX.encode():
                self.inbox.heard(message["data"])
                return
            if message["channel"] == CHOICES.encode():
                self.choices.heard(message["data"])
                return
            change = json.loads(message["data"])
            if change["hub"] != self.link.name:  # this hub's own change is in its book already
                self.calls.changed(change["hub"], change["state"])
        except Exception:  # noqa: BLE001 - one bad message must not end the subscription
            log.exception("cluster: a message could not be handled")

    def status(self) -> dict[str, Any]:
        return {**self.link.status(), "subscribed": self.subscribed,
                "journal_queued": self.journal.pending(), "hubs_agents_remote": len(self.sessions.remote),
                "pops_taken_over": self.takeover.taken}
