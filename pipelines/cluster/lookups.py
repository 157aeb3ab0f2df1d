"""The CRM lookup cache and its coalescing shared by the hubs of a cluster: one CRM request per
number across all hubs, the others wait for its answer, and stale-while-revalidate as on one hub.

``CrmClient`` (``pipelines/crm.py``) keeps its own cache in front of this one; on a miss it asks
``SharedLookups.lookup``, which serves the answer another hub stored, or takes the number's short
lock and makes the request, or waits for the hub that holds the lock. Redis keys name a digest of
the CRM URL, number and context, never the number itself. A Redis that is down or slow never
stops a pop: the hub then asks the CRM itself, as a single hub does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from typing import Awaitable, Callable

from redis.exceptions import RedisError

from ..crm_contract import Candidate, LookupResult
from ..settings import Settings
from . import liveness
from .link import PREFIX, Link, RedisDown, behind

log = logging.getLogger("callpop.cluster")

CACHED = PREFIX + "crm:"  # + digest: the answer and when it was stored, expiring with the cache's TTL
LOCK = PREFIX + "crm:lock:"  # + digest: the hub asking the CRM now
FAILED = PREFIX + "crm:failed:"  # + digest: a failed answer, for the hubs that waited for it only
FAILED_KEEP_MS = 2000
NOT_FOUND_TTL_S = 15.0  # as the hub's own cache: a contact added meanwhile is found soon
REDIS_BUDGET_S = 0.15  # past it a Redis read is not worth the wait: ask the CRM
POLL_S = (0.005, 0.01, 0.02)  # waiting for the lock's holder: quick at first, then every 20 ms
ALIVE_EVERY = 25  # polls (about half a second) between checks that the holder's hub is alive, the first ~55 ms in

RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# One round trip before the CRM is asked: the stored answer, else the lock (1) or not (0).
GET_OR_LOCK = """
local stored = redis.call('GET', KEYS[1])
if stored then return stored end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

Fetch = Callable[[], Awaitable[LookupResult]]


def digest(url: str, key: tuple) -> str:
    return hashlib.sha256(json.dumps([url, key]).encode()).hexdigest()[:32]


def encode(result: LookupResult, stored: float) -> bytes:
    fields = dataclasses.asdict(result)
    fields.pop("cache")
    return json.dumps({"stored": stored, "result": fields}).encode()


def decode(raw: bytes, cache: str) -> tuple[LookupResult, float]:
    doc = json.loads(raw)
    fields = doc["result"]
    fields["faults"] = tuple(fields["faults"])
    fields["contacts"] = tuple(Candidate(**c) for c in fields["contacts"])
    return LookupResult(**fields, cache=cache), float(doc["stored"])


class SharedLookups:
    def __init__(self, link: Link, *, ttl_s: float, refresh_s: float, hard_timeout_s: float,
                 clock: Callable[[], float] = time.time):
        self.link, self.redis = link, link.redis
        self.ttl_s, self.refresh_s, self.hard_timeout_s = ttl_s, refresh_s, hard_timeout_s
        self.clock = clock  # wall clock: the answer's age is read by other hubs
        self.me = f"{link.name} {uuid.uuid4().hex}"  # the lock's value: which hub holds it
        self._release = self.redis.register_script(RELEASE)
        self._get_or_lock = self.redis.register_script(GET_OR_LOCK)
        self._refreshes: set[asyncio.Task] = set()  # refreshes behind pops, answers being stored

    @classmethod
    def for_settings(cls, link: Link, s: Settings) -> SharedLookups:
        return cls(link, ttl_s=s.crm_cache_ttl_s, refresh_s=s.crm_cache_refresh_s,
                   hard_timeout_s=s.crm_late_timeout_ms / 1000)

    async def stop(self) -> None:
        for task in list(self._refreshes):
            task.cancel()
        await asyncio.gather(*self._refreshes, return_exceptions=True)

    async def lookup(self, url: str, key: tuple, fetch: Fetch) -> LookupResult:
        """The answer for ``key``: another hub's (cache "hit"), the one this hub waited for
        ("coalesced"), or this hub's own request ("miss"). Never raises for Redis."""
        if self.ttl_s <= 0 or not self.link.up:
            return await fetch()
        d = digest(url, key)
        try:
            lease_ms = round((self.hard_timeout_s + 1) * 1000)
            got = await self._read(self._get_or_lock(keys=[CACHED + d, LOCK + d], args=[self.me, lease_ms]))
            if isinstance(got, bytes):
                result, at = decode(got, "hit")
                if self.clock() - at >= self.refresh_s:
                    self._refresh(d, fetch)
                return result
            if got == 1:
                return await self._ask(d, fetch)
        except (RedisDown, RedisError, TimeoutError, ValueError, KeyError, TypeError) as e:
            log.debug("shared lookup cache not used (%s)", type(e).__name__)
            return await fetch()
        return await self._wait(d, fetch)

    async def _ask(self, d: str, fetch: Fetch) -> LookupResult:
        """Holding the lock: ask the CRM; the pop has the answer at once, and behind it the
        answer is left for every hub and the lock let go."""
        try:
            result = await fetch()
        except BaseException:
            behind(self._refreshes, self._let_go(d))
            raise
        behind(self._refreshes, self._let_go(d, result))
        return result

    async def _let_go(self, d: str, result: LookupResult | None = None) -> None:
        if result is not None:
            await self._store(d, result)
        with contextlib.suppress(RedisDown, RedisError, TimeoutError):
            await self._read(self._release(keys=[LOCK + d], args=[self.me]))

    async def _store(self, d: str, result: LookupResult) -> None:
        with contextlib.suppress(RedisDown, RedisError, TimeoutError):
            raw = encode(result, self.clock())
            if not result.cacheable:
                await self._read(self.redis.set(FAILED + d, raw, px=FAILED_KEEP_MS))
                return
            ttl = self.ttl_s if result.outcome != "not_found" else min(self.ttl_s, NOT_FOUND_TTL_S)
            await self._read(self.redis.set(CACHED + d, raw, px=max(1, round(ttl * 1000))))

    async def _wait(self, d: str, fetch: Fetch) -> LookupResult:
        """Another hub asks the CRM: wait for its answer (at most the hard timeout). If it goes
        (its lock ends with no answer, or the hub holding it is no longer alive), ask the CRM."""
        until, tick = time.monotonic() + self.hard_timeout_s, 0
        while time.monotonic() < until:
            await asyncio.sleep(POLL_S[min(tick, len(POLL_S) - 1)])
            try:
                stored, failed, held = await self._read(self.redis.mget(CACHED + d, FAILED + d, LOCK + d))
                if stored is not None or failed is not None:
                    return decode(stored if stored is not None else failed, "coalesced")[0]
                if held is None:
                    break
                if tick % ALIVE_EVERY == 3:  # past a quick CRM's answer; a killed hub's lock would hold the number until it expires
                    holder = held.decode().rsplit(" ", 1)[0]
                    async with asyncio.timeout(REDIS_BUDGET_S):
                        if await liveness.gone(self.link, [holder]):
                            break
            except (RedisDown, RedisError, TimeoutError, ValueError, KeyError, TypeError):
                break
            tick += 1
        return await fetch()

    def _refresh(self, d: str, fetch: Fetch) -> None:
        """An answer older than the refresh age: served, and asked again behind the pop by the
        one hub that takes the lock."""
        async def refresh() -> None:
            lease_ms = round((self.hard_timeout_s + 1) * 1000)
            with contextlib.suppress(RedisDown, RedisError, TimeoutError):
                if await self._read(self.redis.set(LOCK + d, self.me, nx=True, px=lease_ms)):
                    await self._ask(d, fetch)
        behind(self._refreshes, refresh())

    async def _read(self, command):
        async with asyncio.timeout(REDIS_BUDGET_S):
            return await self.link.call(command)
