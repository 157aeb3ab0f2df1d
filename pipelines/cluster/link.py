"""The hub's connection to Redis: one ``redis.asyncio`` client with a deadline on every command,
and whether Redis answers now.

``Link.up`` is what the hub goes by before it promises anything (an event's 202): a lost
connection marks Redis down at once, a command late past its deadline when a ping is late too
(a busy hub reads answers late without Redis being down), and a watcher pings it every half
second until it answers again, so hubs recover by themselves when Redis comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from typing import Any, Awaitable, Callable, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError, TimeoutError as RedisTimeout

from ..settings import Settings

log = logging.getLogger("callpop.cluster")
T = TypeVar("T")

PREFIX = "callpop:"
EVENTS = PREFIX + "journal"  # the stream of write units (events and the rows made from them)
GROUP = "recorder"  # the recorder's consumer group on it
CALLS = PREFIX + "calls"  # pub/sub: a call's state changed
DELIVER = PREFIX + "deliver"  # pub/sub: a message for an agent's sockets
PING_EVERY_S = 0.5
MAX_CONNECTIONS = 100  # to Redis, per process


def behind(tasks: set[asyncio.Task], coro: Awaitable[Any]) -> None:
    """Run ``coro`` behind the caller, its task held in ``tasks`` until it ends (the event loop
    keeps only a weak reference to a task)."""
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class Outbox:
    """What synchronous code queues for Redis (messages, changes), sent in order by one loop,
    as many per round trip as have gathered meanwhile."""

    def __init__(self):
        self.items: list[Any] = []
        self._wake = asyncio.Event()

    def add(self, *items: Any) -> None:
        if items:
            self.items.extend(items)
            self._wake.set()

    async def run(self, send: Callable[[list[Any]], Awaitable[None]]) -> None:
        """Forever: wait for items, then ``send`` them (a batch ``send`` wants kept goes back with
        ``keep``)."""
        while True:
            if not self.items:
                self._wake.clear()
                await self._wake.wait()
            batch, self.items = self.items, []
            await send(batch)

    def keep(self, batch: list[Any]) -> None:
        """A batch not sent, first in line again."""
        self.items[:0] = batch


class RedisDown(Exception):
    """Redis did not answer (in time): the hub cannot keep a promise that needs it."""


def hub_name(settings: Settings) -> str:
    return settings.hub_name or f"{socket.gethostname()}:{settings.port or os.getpid()}"


def client_name(hub: str) -> str:
    """The name a hub's connections carry in Redis (CLIENT LIST; no spaces allowed there)."""
    return "callpop-" + re.sub(r"\s", "_", hub)[:52]


class Link:
    def __init__(self, settings: Settings, name: str = ""):
        self.name = name or hub_name(settings)
        self.timeout_s = settings.redis_timeout_ms / 1000
        url = settings.redis_url.get_secret_value()
        # Every command has the deadline; a dropped connection is retried by the next command. A
        # burst waits for a free connection (within the deadline) instead of failing as if Redis
        # were down, which the default pool does past its cap.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=self.timeout_s, socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s, health_check_interval=5, decode_responses=False,
            client_name=client_name(self.name))
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closes the pool with the client
        self.problem = ""  # why Redis counts as down; "" while it answers
        self._watcher: asyncio.Task | None = None
        self._suspect = asyncio.Event()  # a command was late: the watcher pings now

    @property
    def up(self) -> bool:
        return not self.problem

    @property
    def state(self) -> str:
        return "down" if self.problem else "ok"

    async def start(self) -> None:
        with contextlib.suppress(RedisDown):
            await self.call(self.redis.ping())
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def call(self, command: Awaitable[T]) -> T:
        """Await one command under the deadline; RedisDown if Redis cannot be reached or is late
        (an error Redis answers, such as BUSYGROUP, is raised as it is)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await command
        except (RedisTimeout, TimeoutError):
            # Late: Redis may be stuck, or this process too busy to read the answer in time. The
            # promise fails either way; Redis counts as down only if a ping is late as well.
            self._suspect.set()
            raise RedisDown(f"redis: no answer within {self.timeout_s * 1000:.0f} ms") from None
        except (RedisConnectionError, OSError) as e:
            self.down(e)
            raise RedisDown(self.problem) from None
        return result

    def down(self, e: BaseException | str) -> None:
        why = e if isinstance(e, str) else (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        if not self.problem:
            log.error("redis: down (%s); events are refused with 503 until it answers", _safe(why))
        self.problem = _safe(why)[:200]

    async def _watch(self) -> None:
        """Every half second while Redis is down, and at once when a command was late: ping."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_EVERY_S):
                    await self._suspect.wait()
            suspect = self._suspect.is_set()
            self._suspect.clear()
            if not self.problem and not suspect:
                continue
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.redis.ping()
            except (RedisError, OSError, TimeoutError) as e:
                self.down(e if str(e) else f"no answer to a ping within {self.timeout_s * 1000:.0f} ms")
                continue
            if self.problem:
                log.warning("redis: answers again (after: %s)", self.problem)
                self.problem = ""

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "problem": self.problem, "hub": self.name}


def _safe(text: str) -> str:
    """Redis errors may quote the URL; a password in it must not reach a log or /healthz."""
    return re.sub(r"(rediss?://)[^@/\s]*@", r"\1***@", str(text))
