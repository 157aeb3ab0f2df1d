"""WebSocket sessions: one per signed-in browser, each with its own send queue.

A message for an agent is serialised once and queued on each of the agent's sockets; every
socket has its own sender task, so a browser that stops reading only fills its own queue, and
when that queue is full (or one send hangs past its limit) that socket alone is dropped. The
sender also keeps the socket from going quiet: after ``heartbeat_s`` with nothing to send it
sends a ``heartbeat`` (a Manifest V3 service worker is stopped after ~30 s without an
extension event, and an application message counts as one; a protocol ping does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Awaitable, Callable

from .agents import Agent
from .events import utcnow

log = logging.getLogger("callpop.sessions")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_REPLACED = 4409  # the agent opened more sockets than ws_per_agent: the oldest goes
CLOSE_GOING_AWAY = 1001

Sender = Callable[[str], Awaitable[None]]
Closer = Callable[[int, str], Awaitable[None]]


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)


class Session:
    _next = 0

    def __init__(self, agent: Agent, send: Sender, close: Closer, *, queue_size: int, send_timeout_s: float,
                 heartbeat_s: float = 15.0, client: str = ""):
        Session._next += 1
        self.id = Session._next
        self.agent = agent
        self.client = client  # "extension", "console", ... as the hello said
        self.token_digest = b""  # agents.token_digest of the token it signed in with: a replaced token ends it
        self._send, self._close = send, close
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._send_timeout_s = send_timeout_s
        self._heartbeat_s = heartbeat_s
        self._sender: asyncio.Task | None = None
        self._drained = asyncio.Event()
        self.on_drop: Callable[[], None] | None = None  # set by Sessions.add: forget a dropped socket at once
        self._closing: asyncio.Task | None = None
        self.closed = False
        self.close_code: int | None = None
        self.sent = 0

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._run_sender())

    def offer(self, text: str) -> bool:
        """Queue a frame; a full queue means the browser is not reading: drop it."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            self.drop(CLOSE_TOO_SLOW, "too slow: send queue full")
            return False

    def offer_message(self, message: dict[str, Any]) -> bool:
        return self.offer(dumps(message))

    def drop(self, code: int, reason: str, level: int = logging.WARNING) -> None:
        """Close now, whatever is queued (a slow or misbehaving client)."""
        if self.closed:
            return
        log.log(level, "dropping socket %s of agent %s: %s", self.id, self.agent.id, reason)
        self.closed, self.close_code = True, code
        if self._sender is not None:
            self._sender.cancel()
        if self.on_drop is not None:
            self.on_drop()
        # No time limit here: a browser that stopped reading cannot take the close frame until it
        # reads again, and then it must get it (and reconnect) rather than sit on a socket that
        # will never carry another pop. The wait ends when the frame is written or the TCP
        # connection goes away, so it lives no longer than the connection itself.
        self._closing = asyncio.get_running_loop().create_task(self._close_quietly(code, reason, timeout=None))

    def detach(self) -> None:
        """The client went away: stop sending."""
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()

    async def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "hub shutting down") -> None:
        """Send what is queued, then a close frame (at shutdown)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout=2)
        self.close_code = code
        await self._close_quietly(code, reason)

    async def _close_quietly(self, code: int, reason: str, timeout: float | None = 2) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close(code, reason), timeout=timeout)

    async def _run_sender(self) -> None:
        try:
            while (text := await self._next_frame()) is not None:
                async with asyncio.timeout(self._send_timeout_s):
                    await self._send(text)
                self.sent += 1
        except TimeoutError:
            self.drop(CLOSE_TOO_SLOW, f"too slow: one send took over {self._send_timeout_s:g} s")
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - the socket went away under us
            self.closed = True
        finally:
            self._drained.set()

    async def _next_frame(self) -> str | None:
        """The next frame to send: a queued one, or a heartbeat after ``heartbeat_s`` of quiet."""
        try:
            async with asyncio.timeout(self._heartbeat_s):
                return await self._queue.get()
        except TimeoutError:
            return dumps({"type": "heartbeat", "at": utcnow().isoformat() + "Z"})


class Sessions:
    """Every signed-in socket, by agent (in the order they signed in)."""

    def __init__(self, per_agent: int | None = None):
        # A dict as an ordered set: the first of an agent's sockets is the oldest.
        self._by_agent: dict[str, dict[Session, None]] = {}
        self.per_agent = per_agent

    def add(self, session: Session) -> None:
        """Keep ``session``; past ``per_agent`` sockets for its agent, close the oldest (a leaked
        tab or a client reconnecting in a loop must not hold sockets without end)."""
        peers = self._by_agent.setdefault(session.agent.id, {})
        while self.per_agent is not None and len(peers) >= self.per_agent:
            oldest = next(iter(peers))
            peers.pop(oldest)
            oldest.on_drop = None  # forgotten already (and an empty set must not be deleted under us)
            oldest.drop(CLOSE_REPLACED, "replaced by a newer connection", level=logging.INFO)
        peers[session] = None
        session.on_drop = lambda: self.remove(session)

    def remove(self, session: Session) -> None:
        peers = self._by_agent.get(session.agent.id)
        if peers is not None:
            peers.pop(session, None)
            if not peers:
                del self._by_agent[session.agent.id]

    def of(self, agent_id: str) -> list[Session]:
        return list(self._by_agent.get(agent_id, ()))

    def count(self, agent_id: str) -> int:
        """The agent's sockets open now."""
        return len(self._by_agent.get(agent_id, ()))

    def send(self, agent_id: str, message: dict[str, Any] | str) -> int:
        """Queue a message on each of the agent's sockets; returns how many took it."""
        peers = self._by_agent.get(agent_id)
        if not peers:
            return 0
        text = message if isinstance(message, str) else dumps(message)
        return sum(1 for s in list(peers) if s.offer(text))

    def online(self) -> dict[str, int]:
        """Agent id -> sockets open."""
        return {agent_id: len(peers) for agent_id, peers in self._by_agent.items()}

    def all(self) -> list[Session]:
        return [s for peers in self._by_agent.values() for s in peers]

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_agent.values())
