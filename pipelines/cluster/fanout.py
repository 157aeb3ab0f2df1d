"""Messages for an agent, to every hub that holds one of the agent's sockets.

A hub that sends an agent a message (a pop, a call update, dial progress) queues it on its own
sockets of that agent, as one hub does, and publishes it once on ``callpop:deliver``; every other
hub queues it on the sockets it holds. Each browser is connected to one hub, and each hub skips
what it published itself, so each socket gets each message once.

One channel for all hubs, not one per agent: a hub receives every agent message of the cluster
(a few hundred a second at 100 events/s, well within one subscriber), and signing in costs no
SUBSCRIBE, so thousands of agents reconnecting after a failover add no subscription churn.

Presence (``callpop:presence:<hub>``: agent -> sockets, refreshed with a TTL) lets a hub count
the sockets of an agent across the cluster, for the pop's ``sessions`` and ``/api/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Callable

from ..sessions import Sessions, dumps
from .link import DELIVER, PREFIX, Link, Outbox, RedisDown

log = logging.getLogger("callpop.cluster")
PRESENCE_EVERY_S = 2.0
PRESENCE_TTL_S = 10


def presence_key(hub: str) -> str:
    return f"{PREFIX}presence:{hub}"


class ClusterSessions(Sessions):
    def __init__(self, link: Link, per_agent: int | None = None):
        super().__init__(per_agent)
        self.link = link
        self.remote: dict[str, int] = {}  # agent id -> sockets on other hubs (from presence)
        self._out = Outbox()  # JSON envelopes to publish
        self.on_remote_pop: Callable[[str, str, dict], None] | None = None  # (agent, call id, pop) from elsewhere

    def send(self, agent_id: str, message: dict[str, Any] | str) -> int:
        text = message if isinstance(message, str) else dumps(message)
        here = super().send(agent_id, text)
        self._out.add(json.dumps({"hub": self.link.name, "agent": agent_id, "text": text}, separators=(",", ":")))
        return here + self.remote.get(agent_id, 0)

    def count(self, agent_id: str) -> int:
        """The agent's sockets open on any hub."""
        return super().count(agent_id) + self.remote.get(agent_id, 0)

    def online(self) -> dict[str, int]:
        """Agent id -> sockets open on any hub."""
        here = super().online()
        return {a: here.get(a, 0) + self.remote.get(a, 0) for a in here.keys() | self.remote.keys()}

    def local(self) -> dict[str, int]:
        return super().online()

    # --- the hub's loops
    async def publish(self) -> None:
        """Publish what ``send`` queued, in order, many messages per round trip."""
        async def send(batch: list[str]) -> None:
            pipe = self.link.redis.pipeline(transaction=False)
            for payload in batch:
                pipe.publish(DELIVER, payload)
            with contextlib.suppress(RedisDown):  # pub/sub is at most once: Redis down loses them
                await self.link.call(pipe.execute())
        await self._out.run(send)

    def delivered(self, payload: bytes) -> None:
        """A message another hub published: onto this hub's sockets of the agent."""
        envelope = json.loads(payload)
        if envelope["hub"] == self.link.name:
            return
        agent_id, text = envelope["agent"], envelope["text"]
        peers = list(self._by_agent.get(agent_id, ()))
        if '"type":"pop"' in text:  # the call's copy here replays it to a socket that signs in
            message = json.loads(text)
            if self.on_remote_pop is not None:
                self.on_remote_pop(agent_id, message["call_id"], message)
        for s in peers:
            s.offer(text)

    async def presence(self) -> None:
        """Say which agents have sockets here; learn how many they have elsewhere."""
        me = presence_key(self.link.name)
        while True:
            with contextlib.suppress(RedisDown):
                here = self.local()
                pipe = self.link.redis.pipeline(transaction=True)
                pipe.delete(me)
                if here:
                    pipe.hset(me, mapping=here)
                pipe.expire(me, PRESENCE_TTL_S)
                await self.link.call(pipe.execute())
                keys = await self.link.call(self._hubs())
                remote: dict[str, int] = {}
                for k in keys:
                    if k.decode() == me:
                        continue
                    for agent, n in (await self.link.call(self.link.redis.hgetall(k))).items():
                        remote[agent.decode()] = remote.get(agent.decode(), 0) + int(n)
                self.remote = remote
            await asyncio.sleep(PRESENCE_EVERY_S)

    async def _hubs(self) -> list[bytes]:
        return [k async for k in self.link.redis.scan_iter(match=presence_key("*"), count=100)]

    async def leave(self) -> None:
        with contextlib.suppress(RedisDown):
            await self.link.call(self.link.redis.delete(presence_key(self.link.name)))

