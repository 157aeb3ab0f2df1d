"""What the hubs of a cluster count together in Redis, so that a second hub is not a second
allowance: the dial limits (one agent's dials a minute, the dial budget of the hour) and the
one-time sign-in codes with their one-try-per-second-per-address throttle.

Each check reads and writes in one Lua script run by Redis on its own clock (``TIME``): the
hubs' clocks do not matter, and two hubs cannot both take the last place. When Redis does not
answer, what it guards is refused with a 503 rather than let through uncounted.

The hub builds them with ``dial_limits`` (for ``Dialer``) and ``signin_limits`` (for
``AgentFile``); without ``CALLPOP_REDIS_URL`` this module is not imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from ..dialplan import DialRefused
from ..errors import ApiError
from ..settings import Settings
from ..signin_codes import Code, digest, new_code, well_formed
from .link import PREFIX, Link, RedisDown

log = logging.getLogger("callpop.cluster")

RATE = PREFIX + "rate:"  # a sorted set per limit and key: one member per event still in the window
CODE = PREFIX + "signin:code:"  # + a code's digest: a hash (agent_id, made_by, expires, used)
AGENT_CODE = PREFIX + "signin:agent:"  # + agent id: the digest of the agent's live code
TRY = PREFIX + "signin:try:"  # + client address: there while that address must wait
MAKE_TRIES = 5  # a code made for the same agent by another hub at the same moment: read again

# A sliding window, not a fixed one: a fixed window lets twice the limit through around its edge
# (all of it at 0:59, all again at 1:00), and the hourly budget is what bounds toll fraud. It
# means exactly what dial.RateLimiter means, for the price of one member per event in the window
# (at most the limit). Refused tries are not added, as there. Times are in microseconds.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if ARGV[3] == '' or used >= limit then return {0, used} end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {1, used + 1}
"""

# KEYS: the new code, the agent's last code (its digest), that last code; ARGV: agent, made by,
# ttl ms, new digest, the last digest this hub read ('' for none). Compare-and-set on the
# agent's key, so one live code per agent holds with two hubs making codes for it at once.
MAKE = """
local last = redis.call('GET', KEYS[2]) or ''
if last ~= ARGV[5] then return 0 end
if last ~= '' then redis.call('DEL', KEYS[3]) end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'agent_id', ARGV[1], 'made_by', ARGV[2], 'expires', now + ttl, 'used', '0')
-- kept one more lifetime past its end, to say "expired" (and "used") rather than "unknown"
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('SET', KEYS[2], ARGV[4], 'PX', 2 * ttl)
return 1
"""

# KEYS: the code. The first live try marks it used; the answer is why not, or '' with whose it is.
TAKE = """
local c = redis.call('HMGET', KEYS[1], 'agent_id', 'made_by', 'expires', 'used')
if not c[1] then return {'unknown'} end
local t = redis.call('TIME')
local left = tonumber(c[3]) - (t[1] * 1000 + math.floor(t[2] / 1000))
if left <= 0 then redis.call('DEL', KEYS[1]) return {'expired'} end
if c[4] == '1' then return {'used'} end
redis.call('HSET', KEYS[1], 'used', '1')
return {'', c[1], c[2], left}
"""


class SharedRateLimiter:
    """``dial.RateLimiter`` for every hub at once: at most ``limit`` events per key in any
    sliding window of ``window_s`` seconds, counted in Redis. ``allow`` and ``used`` are
    awaited and raise ``RedisDown``; ``known`` answers at once with the last count read."""

    def __init__(self, link: Link, name: str, limit: int, window_s: float):
        self.link, self.name, self.limit, self.window_s = link, name, limit, window_s
        self._script = link.redis.register_script(SLIDING_WINDOW)  # EVALSHA, loaded again after a restart
        self._known: dict[str, int] = {}
        self._reading: asyncio.Task | None = None

    async def _count(self, key: str, member: str) -> bool:
        took, used = await self.link.call(self._script(
            keys=[f"{RATE}{self.name}:{key}"], args=[round(self.window_s * 1_000_000), self.limit, member]))
        self._known[key] = int(used)
        return bool(took)

    async def allow(self, key: str) -> bool:
        return await self._count(key, uuid.uuid4().hex)  # a member of its own: same-microsecond events count twice

    async def used(self, key: str) -> int:
        await self._count(key, "")
        return self._known[key]

    def known(self, key: str) -> int:
        """The count Redis gave this hub last (0 before any); for answers that cannot wait
        (``/api/status``). Each call also reads it again in the background, for the next one."""
        if self._reading is None or self._reading.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the last count will do
                self._reading = asyncio.get_running_loop().create_task(self._read(key))
        return self._known.get(key, 0)

    async def _read(self, key: str) -> None:
        with contextlib.suppress(RedisDown):  # the link logs it and says so on /healthz
            await self._count(key, "")


class DialLimit(SharedRateLimiter):
    """A shared limit as ``Dialer`` uses it: Redis down refuses the dial (503), for a dial
    placed uncounted is what the limits are there to prevent."""

    async def allow(self, key: str) -> bool:
        try:
            return await super().allow(key)
        except RedisDown:
            raise DialRefused("limits_unavailable", "the hub cannot check its dial limits now (its shared store does "
                                                    "not answer); try again in a moment", 503) from None


def dial_limits(link: Link, settings: Settings) -> tuple[DialLimit, DialLimit]:
    """``Dialer(..., limiter=, budget=)`` for a hub of the cluster: the per-agent minute and the
    hourly budget (key "all"), the same for every hub."""
    return (DialLimit(link, "dial_rate", settings.dial_rate_per_minute, 60),
            DialLimit(link, "dial_budget", settings.dial_budget_per_hour, 3600))


def _unavailable() -> ApiError:
    return ApiError(503, "signin_unavailable", "sign-in codes cannot be checked now (the hubs' shared store does "
                                               "not answer); try again in a moment")


class SharedCodes:
    """``signin_codes.Codes`` kept in Redis, so a code made on one hub works once on any: the
    same rules (one live code per agent, once, until it expires), digests only, each method
    awaited. Redis down: ``ApiError`` 503 ``signin_unavailable``."""

    def __init__(self, link: Link, ttl_s: float):
        self.link, self.ttl_s = link, ttl_s
        self._make = link.redis.register_script(MAKE)
        self._take = link.redis.register_script(TAKE)

    async def make(self, agent_id: str, made_by: str) -> str:
        code = new_code()
        key, mine = CODE + digest(code), AGENT_CODE + agent_id
        try:
            for _ in range(MAKE_TRIES):
                last = (await self.link.call(self.link.redis.get(mine)) or b"").decode()
                if await self.link.call(self._make(keys=[key, mine, CODE + (last or digest(code))], args=[
                        agent_id, made_by, round(self.ttl_s * 1000), digest(code), last])):
                    return code
        except RedisDown:
            raise _unavailable() from None
        raise ApiError(409, "busy", f"codes for {agent_id} are being made elsewhere at this moment; try again")

    async def take(self, text: str) -> tuple[Code | None, str]:
        if not well_formed(text):
            return None, "malformed"
        try:
            answer = await self.link.call(self._take(keys=[CODE + digest(text)]))
        except RedisDown:
            raise _unavailable() from None
        why = answer[0].decode()
        if why:
            return None, why
        agent_id, made_by, left_ms = answer[1].decode(), answer[2].decode(), int(answer[3])
        return Code(agent_id, made_by, time.monotonic() + left_ms / 1000, used=True), ""

    async def forget(self, agent_id: str) -> None:
        """Best effort: a disabled agent's code is refused at sign-in anyway (the route checks)."""
        try:
            last = await self.link.call(self.link.redis.get(AGENT_CODE + agent_id))
            if last:
                await self.link.call(self.link.redis.delete(CODE + last.decode(), AGENT_CODE + agent_id))
        except RedisDown:
            log.warning("sign-in code of %s not forgotten (Redis down): refused at sign-in while disabled", agent_id)


class SharedTries:
    """``limits.Throttle`` for the sign-in tries, shared: one try per client address per
    ``window_s`` on any hub (``SET NX PX``). ``allow`` answers (allowed, 0): the count of held-back
    tries is not kept."""

    def __init__(self, link: Link, window_s: float):
        self.link, self.window_ms = link, max(1, round(window_s * 1000))

    async def allow(self, key: str) -> tuple[bool, int]:
        try:
            took = await self.link.call(self.link.redis.set(TRY + key, b"1", nx=True, px=self.window_ms))
        except RedisDown:
            raise _unavailable() from None
        return bool(took), 0


def signin_limits(link: Link, settings: Settings) -> tuple[SharedCodes, SharedTries]:
    """``AgentFile.codes`` and ``AgentFile.tries`` for a hub of the cluster."""
    return SharedCodes(link, settings.signin_code_ttl_s), SharedTries(link, settings.signin_try_every_s)
