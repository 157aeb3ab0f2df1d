"""The calls every hub needs, shared through Redis.

A call's state (``calls.Call`` without its phone, which is derived, and its last pop) is a hash
``callpop:call:<id>`` with fields ``state``, ``pop`` and ``hub`` (that of its last event), kept
while the call lives (TTLs as the call book keeps calls in memory); the ids of ringing and
answered calls are the sorted set ``callpop:live``. Events of one call are processed one at a
time across hubs (``take``: a short lock that expires by itself if its hub dies), on the state
loaded from Redis, and the new state is written in the same script as the event's journal entry
(``journal.py``), so a 202 means the state the next event sees is there too.

Each hub keeps a copy of the live calls in its own ``CallBook`` (the welcome replay and
/api/calls read it without a round trip): loaded at start and whenever the subscription to
``callpop:calls`` is made again, then kept current by what that channel says.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
from datetime import datetime
from typing import Any

from ..calls import KEEP_ENDED, KEEP_RINGING, Call, CallBook
from ..phone import normalise
from ..store import StoreUnavailable
from .journal import CLAIM_MS, seen_key
from .link import PREFIX, Link, RedisDown, behind

LIVE = PREFIX + "live"
LOCK_MS = 3000  # a dead hub's lock frees itself after this
_TIMES = ("started_at", "answered_at", "ended_at", "seen_at")
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# KEYS: the event's claim, the call's lock, the call. ARGV: hub, claim ms, lock token, lock ms.
# 0: the event is recorded; -1: another hub has it in hand; -2: another hub holds the call;
# else the call's state, pop and hub (nil if Redis has no such call), claim and lock held.
_TAKE = """
local seen = redis.call('GET', KEYS[1])
if seen == 'done' then return 0 end
if seen and seen ~= ARGV[1] then return -1 end
if not seen then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return -2 end
return redis.call('HMGET', KEYS[3], 'state', 'pop', 'hub')
"""
# Only onto a call Redis still keeps (a hash made here would have no TTL).
_SET_POP = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'pop', ARGV[1]) end return 0"


def key(call_id: str) -> str:
    return f"{PREFIX}call:{call_id}"


def lock_key(call_id: str) -> str:
    return f"{PREFIX}lock:{call_id}"


def dumps_state(call: Call) -> str:
    """The call as JSON, without its pop (a field of its own) and its phone (derived)."""
    row = {f.name: getattr(call, f.name) for f in dataclasses.fields(call) if f.name not in ("phone", "pop")}
    for name in _TIMES:
        if row[name] is not None:
            row[name] = row[name].isoformat()
    return json.dumps(row, separators=(",", ":"))


def loads_state(text: str | bytes, region: str, pop: str | bytes | None = None, book: CallBook | None = None) -> Call:
    """The call from its JSON; the phone of the copy in ``book``, if any, is reused (parsing a
    number costs more than all the rest)."""
    row: dict[str, Any] = json.loads(text)
    for name in _TIMES:
        if row.get(name):
            row[name] = datetime.fromisoformat(row[name])
    known = book.get(row["call_id"]) if book is not None else None
    same = known is not None and known.caller == row["caller"]
    call = Call(**row, phone=known.phone if same else normalise(row["caller"], region))
    if pop:
        call.pop = json.loads(pop)
    return call


def ttl_s(call: Call) -> int:
    """How long Redis keeps the call: as long as the book would."""
    return int((KEEP_ENDED if call.status in ("ended", "missed") else KEEP_RINGING).total_seconds())


def is_live(call: Call) -> bool:
    return call.status in ("ringing", "answered")


class SharedCalls:
    def __init__(self, link: Link, book: CallBook):
        self.link, self.book = link, book
        self.moved_by: dict[str, str] = {}  # call id -> the hub of its last event (takeover.py)
        self._saving: set[asyncio.Task] = set()
        self._take = link.redis.register_script(_TAKE)
        self._unlock = link.redis.register_script(_UNLOCK)
        self._set_pop = link.redis.register_script(_SET_POP)

    async def take(self, event_id: str, call_id: str, wait_s: float) -> str | None:
        """Claim the event across hubs, take its call's lock and load the call from Redis, in one
        round trip (``_TAKE``). Returns the lock's token: this hub acts on the event (the event's
        journal script lets the lock go); None: the event is recorded already. StoreUnavailable:
        another hub has the event in hand past ``wait_s`` (the PBX retries; the claim expires if
        that hub died); TimeoutError: another hub holds the call past ``wait_s``."""
        token, loop = secrets.token_hex(8), asyncio.get_running_loop()
        end, pause = loop.time() + wait_s, 0.001
        while True:
            got = await self.link.call(self._take(keys=[seen_key(event_id), lock_key(call_id), key(call_id)],
                                                  args=[self.link.name, CLAIM_MS, token, LOCK_MS]))
            if got == 0:
                return None
            if isinstance(got, list):
                self._loaded(call_id, *got)
                return token
            if loop.time() > end:
                if got == -1:
                    raise StoreUnavailable("another hub has this event in hand")
                raise TimeoutError(f"call {call_id} is held by another hub")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    async def let_go(self, call_id: str, token: str) -> None:
        """The call's lock, when the event's journal script did not get to let it go."""
        with contextlib.suppress(RedisDown):
            await self.link.call(self._unlock(keys=[lock_key(call_id)], args=[token]))

    def _loaded(self, call_id: str, state: bytes | None, pop: bytes | None, hub: bytes | None) -> None:
        """The book's copy of the call made the one in Redis (under its lock: nobody changes it
        meanwhile). A pop this hub holds and Redis lacks yet is kept."""
        mine = self.book.get(call_id)
        if state is None:
            if mine is not None:  # gone from Redis: ended long ago, or Redis lost it
                self.book.calls.pop(call_id, None)
            return
        call = loads_state(state, self.book.region, pop, self.book)
        if call.pop is None and mine is not None:
            call.pop = mine.pop
        self._keep(call, hub)

    def changed(self, hub: str, text: bytes | str) -> None:
        """Another hub moved a call (``callpop:calls``): the copy here follows."""
        call = loads_state(text, self.book.region, book=self.book)
        mine = self.book.get(call.call_id)
        if mine is not None:
            call.pop = mine.pop
        self._keep(call, hub)

    def _keep(self, call: Call, hub: str | bytes | None) -> None:
        self.book.calls[call.call_id] = call
        if hub:
            self.moved_by[call.call_id] = hub.decode() if isinstance(hub, bytes) else hub

    def popped(self, call_id: str, message: dict) -> None:
        """Another hub sent the call's pop: a socket that signs in here gets it replayed."""
        call = self.book.get(call_id)
        if call is not None:
            call.pop = message

    def pop_sent(self, call: Call) -> None:
        """This hub sent the call's pop (``Popper.on_pop``): Redis keeps it, behind the pop."""
        behind(self._saving, self.save_pop(call))

    async def save_pop(self, call: Call) -> None:
        """The call's latest pop, for a hub that starts (or reconnects) while it rings."""
        with contextlib.suppress(RedisDown):
            await self.link.call(self._set_pop(keys=[key(call.call_id)], args=[json.dumps(call.pop, default=str)]))

    async def load_live(self) -> int:
        """Every live call from Redis into the book (at start, and after the subscription broke)."""
        ids = await self.link.call(self.link.redis.zrange(LIVE, 0, -1))
        if not ids:
            return 0
        pipe = self.link.redis.pipeline(transaction=False)
        for call_id in ids:
            pipe.hmget(key(call_id.decode()), "state", "pop", "hub")
        loaded = 0
        for state, pop, hub in await self.link.call(pipe.execute()):
            if state is not None:
                self._keep(loads_state(state, self.book.region, pop, self.book), hub)
                loaded += 1
        return loaded
