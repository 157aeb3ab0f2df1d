"""The load generator: agent sockets that record when each pop arrives, and a PBX that posts
ringing events at a fixed rate. It runs in its own process (never the server's), on one asyncio
loop, against the hub or anything that speaks the same protocol (docs/PROTOCOL.md).

Latency of one pop = time the ``pop`` frame for the call was received by the agent's socket
minus the time the event's HTTP request was written. Both are this process's ``perf_counter``,
so there is no clock skew between sender and receiver. The HTTP side is a raw keep-alive client
(a pool that grows as needed) rather than httpx, so the generator spends as little CPU as
possible: on a small machine it competes with the server it measures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import random
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from .barecrm import expected_name
from .stats import percentile
from .wire import read_message

_COUNTER = itertools.count(1)  # numbers never repeat within a process, so no lookup is a cache hit


# The extension's reconnect backoff (extension/background/connection.js, reconnectDelay): before
# attempt n it waits between half and all of min(30 s, 0.5 s * 2 ** n), "equal jitter".
RECONNECT_BASE_S = 0.5
RECONNECT_MAX_S = 30.0
WELCOME_TIMEOUT_S = 10.0  # the extension gives up on a socket with no welcome after this


def reconnect_delay(attempt: int) -> float:
    ceiling = min(RECONNECT_MAX_S, RECONNECT_BASE_S * 2 ** min(attempt, 16))
    return ceiling / 2 + random.random() * ceiling / 2


@dataclasses.dataclass
class Pop:
    at: float
    status: str
    name: str


class AgentSockets:
    """One signed-in WebSocket per agent; each records the pops it receives. Given several hub
    URLs, agent i signs in at URL i mod n. With ``reconnect``, a socket the server drops comes
    back as the extension's does: after its jittered backoff, at the next URL in turn that takes
    the connection (a round-robin balancer that passes over a hub refusing connections); how long
    each agent was without a socket is kept in ``gaps`` (and in ``down_since`` while it still is)."""

    def __init__(self, ws_url: str | list[str], agents: list[dict[str, str]], reconnect: bool = False):
        self.urls = [ws_url] if isinstance(ws_url, str) else list(ws_url)
        self.agents = agents
        self.reconnect = reconnect
        self.conns: list[ClientConnection] = []
        self.at: list[int] = []  # per agent: the index of the URL its socket is on
        self.pops: dict[str, list[Pop]] = {}
        self.frames = 0
        self.closed: list[int | None] = []
        self.gaps: list[float] = []  # seconds from a socket's drop to the welcome on its next one
        self.down_since: dict[int, float] = {}  # agent index -> when its socket dropped, while it has none
        self._turn = itertools.count()  # the balancer's round-robin
        self._closing = False
        self._tasks: list[asyncio.Task] = []

    async def _sign_in(self, agent: dict[str, str], url: str, timeout: float) -> ClientConnection:
        ws = await connect(url, max_size=2 ** 20, open_timeout=timeout, ping_interval=None, compression=None)
        try:
            await ws.send(json.dumps({"type": "hello", "token": agent["token"], "client": "bench"}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"no welcome for {agent['id']}: {welcome}")
        except BaseException:
            await ws.close()
            raise
        return ws

    async def connect(self, concurrency: int = 50) -> None:
        """Sign every agent in (hello, then wait for the welcome)."""
        sem = asyncio.Semaphore(concurrency)

        async def one(i, agent):
            async with sem:
                return await self._sign_in(agent, self.urls[i % len(self.urls)], 60)

        self.conns = list(await asyncio.gather(*(one(i, a) for i, a in enumerate(self.agents))))
        self.at = [i % len(self.urls) for i in range(len(self.agents))]
        self._tasks = [asyncio.get_running_loop().create_task(self._keep(i)) for i in range(len(self.conns))]

    async def _keep(self, i: int) -> None:
        """Read agent i's socket; with ``reconnect``, sign in again each time it drops."""
        while True:
            await self._read(self.conns[i])
            if self._closing or not self.reconnect:
                return
            dropped = self.down_since[i] = time.perf_counter()
            attempt, ws = 0, None
            while ws is None:
                await asyncio.sleep(reconnect_delay(attempt))
                attempt += 1
                ws = await self._come_back(i)
            if self._closing:
                await ws.close()
                return
            self.conns[i] = ws
            self.gaps.append(time.perf_counter() - dropped)
            del self.down_since[i]

    async def _come_back(self, i: int) -> ClientConnection | None:
        """One reconnect attempt: each hub in turn until one takes the connection (as a balancer
        does). None when none did, or the one that did sent no welcome in time."""
        for _ in self.urls:
            k = next(self._turn) % len(self.urls)
            try:
                ws = await self._sign_in(self.agents[i], self.urls[k], WELCOME_TIMEOUT_S)
            except OSError:
                continue  # refused: the balancer passes the connection on to the next hub
            except Exception:  # noqa: BLE001 - no welcome, or dropped while signing in: back off
                return None
            self.at[i] = k
            return ws
        return None

    async def _read(self, ws: ClientConnection) -> None:
        pops = self.pops
        try:
            async for text in ws:
                now = time.perf_counter()
                self.frames += 1
                if '"pop"' in text:
                    m = json.loads(text)
                    if m.get("type") == "pop":
                        pops.setdefault(m["call_id"], []).append(Pop(now, m["status"], m["name"]))
        except Exception:  # noqa: BLE001 - closed sockets end their reader
            pass
        self.closed.append(ws.close_code)

    async def close(self) -> None:
        self._closing = True
        await asyncio.gather(*(ws.close() for ws in self.conns), return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Poster:
    """POSTs JSON over a pool of raw keep-alive HTTP/1.1 connections."""

    def __init__(self, url: str, token: str = "", max_conns: int = 256):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_conns)  # requests in flight = connections open, at most
        self.errors: dict[str, int] = {}

    async def post(self, body: bytes, sent: list | None = None) -> int:
        """Returns the HTTP status (0 when the connection failed); puts the write time in ``sent``.
        A kept-alive connection the server closed meanwhile is retried once on a new one (the
        events carry ids, so a retry is never recorded twice)."""
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle) and attempt == 0  # a retry always gets a fresh connection
                if reused:
                    reader, writer = self._idle.pop()
                else:
                    try:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                    except OSError:  # refused: the server is gone
                        self.errors["refused"] = self.errors.get("refused", 0) + 1
                        return 0
                try:
                    head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.auth}"
                            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                    if sent is not None:
                        sent[:] = [time.perf_counter()]
                    writer.write(head + body)
                    head, _ = await read_message(reader)
                    status = int(head.split(b" ", 2)[1])
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
                    writer.close()
                    if reused and attempt == 0 and isinstance(e, (asyncio.IncompleteReadError, ConnectionError)):
                        continue  # the server had closed this idle connection
                    self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
                    return 0
                self._idle.append((reader, writer))
                return status
        return 0

    async def close(self) -> None:
        """Close the idle connections (the next post opens a new one)."""
        for _, w in self._idle:
            w.close()
        self._idle.clear()


class Spread:
    """Posts each event to one of several hubs, picked at random (a balancer's random policy: with
    three hubs about two thirds of the events land on a hub the agent is not on). With
    ``retry_for_s`` an event not answered 202 is sent again as a PBX retries through its balancer:
    to the next hub, at once when the connection was refused (until every hub refused it), after
    ``retry_pause_s`` otherwise; ``sent`` gets the time of the first request written."""

    def __init__(self, urls: list[str], token: str = "", retry_for_s: float = 0.0, retry_pause_s: float = 1.0,
                 seed: int = 0):
        self.posters = [Poster(url, token) for url in urls]
        self.retry_for_s, self.retry_pause_s = retry_for_s, retry_pause_s
        self._rng = random.Random(seed)
        self.answered_by: dict[str, int] = {}  # call id -> index of the hub that answered its 202
        self.retries = 0  # requests sent again
        self.answers: dict[int, int] = {}  # status -> how many answers (0: the connection failed)

    async def post(self, body: bytes, sent: list | None = None) -> int:
        k = self._rng.randrange(len(self.posters))
        give_up = time.perf_counter() + self.retry_for_s
        refused = 0
        while True:
            stamp: list[float] = []
            status = await self.posters[k].post(body, stamp)
            self.answers[status] = self.answers.get(status, 0) + 1
            if sent is not None and stamp and not sent:
                sent[:] = stamp
            if status == 202:
                self.answered_by[json.loads(body)["call_id"]] = k
                return status
            if time.perf_counter() >= give_up:
                return status
            self.retries += 1
            k = (k + 1) % len(self.posters)
            refused = refused + 1 if status == 0 else 0
            if status != 0 or refused % len(self.posters) == 0:  # a refusal goes straight on to the next hub
                await asyncio.sleep(self.retry_pause_s)

    async def close(self) -> None:
        for p in self.posters:
            await p.close()


def caller_number(n: int) -> str:
    """A valid Israeli mobile number, different for every n below 10 million."""
    return f"054{n % 10_000_000:07d}"


@dataclasses.dataclass
class LoadResult:
    rate: float
    duration: float
    sent: int = 0
    accepted: int = 0            # 202 answers
    failed: int = 0              # anything else (0 = connection failed)
    popped: int = 0              # accepted calls whose pop arrived
    lost: int = 0                # accepted calls with no pop
    wrong: int = 0               # pops whose name was not the CRM's answer for that number
    latencies_ms: list[float] = dataclasses.field(default_factory=list)  # first pop of each call
    latency_of: dict[str, float] = dataclasses.field(default_factory=dict)  # the same, by call id
    ack_ms: list[float] = dataclasses.field(default_factory=list)  # POST -> 202
    post_s: float = 0.0          # first scheduled post -> last request written
    achieved_rate: float = 0.0   # requests written per second, over post_s
    max_lag_ms: float = 0.0      # how far the generator fell behind its schedule
    call_ids: list[str] = dataclasses.field(default_factory=list)
    accepted_ids: list[str] = dataclasses.field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def add(self, other: "LoadResult") -> None:
        """Fold in another run at the same rate (one slice of an interleaved measurement)."""
        for f in ("duration", "sent", "accepted", "failed", "popped", "lost", "wrong", "post_s"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for f in ("latencies_ms", "ack_ms", "call_ids", "accepted_ids"):
            getattr(self, f).extend(getattr(other, f))
        self.latency_of.update(other.latency_of)
        self.achieved_rate = self.sent / self.post_s if self.post_s else 0.0
        self.max_lag_ms = max(self.max_lag_ms, other.max_lag_ms)

    def summary(self) -> dict[str, Any]:
        return {"rate": self.rate, "achieved_rate": round(self.achieved_rate, 1), "sent": self.sent,
                "accepted": self.accepted, "failed": self.failed, "popped": self.popped, "lost": self.lost,
                "wrong": self.wrong, "p50_ms": round(self.p(50), 2), "p95_ms": round(self.p(95), 2),
                "p99_ms": round(self.p(99), 2), "max_ms": round(max(self.latencies_ms, default=math.nan), 2),
                "ack_p99_ms": round(percentile(self.ack_ms, 99), 2), "post_s": round(self.post_s, 3),
                "max_lag_ms": round(self.max_lag_ms, 1)}


async def run_load(poster: Poster | Spread, sockets: AgentSockets, rate: float, duration: float, *,
                   tag: str = "b", drain_s: float = 5.0, final_status: tuple[str, ...] = ("found",),
                   hangup_after_s: float | None = None) -> LoadResult:
    """Post ``rate`` ringing events per second for ``duration`` seconds, each for a new call from
    a new number at the next agent's extension, and wait up to ``drain_s`` for the last pops."""
    res = LoadResult(rate, duration)
    n = max(1, int(rate * duration))
    agents = sockets.agents
    tasks: list[asyncio.Task] = []
    sent_at: dict[str, float] = {}
    expected: dict[str, str] = {}

    async def one(call_id: str, body: bytes) -> None:
        stamp: list[float] = []
        status = await poster.post(body, stamp)
        if stamp:
            sent_at[call_id] = stamp[0]
        if status == 202:
            res.accepted += 1
            res.accepted_ids.append(call_id)
            res.ack_ms.append((time.perf_counter() - stamp[0]) * 1000)
        else:
            res.failed += 1
        if hangup_after_s is not None and status == 202:
            await asyncio.sleep(hangup_after_s)
            await poster.post(json.dumps({"call_id": call_id, "type": "hangup", "id": call_id + "-h"}).encode())

    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        else:
            res.max_lag_ms = max(res.max_lag_ms, -delay * 1000)
        seq = next(_COUNTER)
        call_id = f"{tag}-{seq}"
        caller = caller_number(seq)
        agent = agents[i % len(agents)]
        expected[call_id] = expected_name(caller)  # the CRM gets the number raw
        body = json.dumps({"call_id": call_id, "id": call_id + "-r", "type": "ringing", "caller": caller,
                           "callee": "0722776773", "extension": agent["extension"]}).encode()
        res.call_ids.append(call_id)
        tasks.append(asyncio.get_running_loop().create_task(one(call_id, body)))
    await asyncio.gather(*tasks)
    res.sent = n
    # The rate the generator kept: requests written over the time it took to write them (a
    # server that answers slowly shows in the 202s' times, one that accepts slowly shows here).
    last_write = max(sent_at.values(), default=start)
    res.post_s = last_write - start + 1 / rate
    res.achieved_rate = n / res.post_s

    def final(call_id):
        return any(p.status in final_status for p in sockets.pops.get(call_id, ()))

    deadline = time.perf_counter() + drain_s
    waiting = list(res.accepted_ids)
    while waiting and time.perf_counter() < deadline:
        waiting = [c for c in waiting if not final(c)]
        if waiting:
            await asyncio.sleep(0.05)
    for call_id in res.accepted_ids:
        pops = sockets.pops.get(call_id)
        if not pops:
            res.lost += 1
            continue
        res.popped += 1
        done = next((p for p in pops if p.status in final_status), pops[0])
        res.latencies_ms.append((pops[0].at - sent_at[call_id]) * 1000)
        res.latency_of[call_id] = res.latencies_ms[-1]
        if done.status in final_status and done.name != expected[call_id]:
            res.wrong += 1
    return res
