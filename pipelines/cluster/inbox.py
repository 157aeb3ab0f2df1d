"""The missed-call inbox shared by the hubs of a cluster: an entry a call made through one hub,
or an agent handled through another, is what every hub shows.

Each hub keeps the inbox's book in memory as one hub does (``pipelines/inbox.py``); every
change it makes goes, in order, to Redis (the open entries, and the pops that reached no
browser yet) and to the other hubs on ``callpop:inbox``, which apply it to their books without
writing rows or messages again (the hub that made the change did both). A hub loads the book
from Redis when it subscribes, so one that missed changes while its subscription was broken
catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Iterable

from ..calls import Call
from ..inbox import Entry, Inbox, InboxBook
from redis.exceptions import RedisError

from .link import PREFIX, Link, Outbox, RedisDown

log = logging.getLogger("callpop.cluster")

INBOX = PREFIX + "inbox"  # pub/sub: an inbox change; and the hash of open entries ("agent call" -> entry)
UNREACHED = PREFIX + "inbox:unreached:"  # + call id: the agents whose browsers the call's pop did not reach
UNREACHED_TTL_S = 86_400  # a call's pops are long settled by then
SEP = "\x1f"


def dumps_entry(e: Entry) -> dict:
    return {"call_id": e.call_id, "agent_id": e.agent_id, "kind": e.kind, "caller": e.caller, "e164": e.e164,
            "phone": e.phone, "name": e.name, "missed_at": e.missed_at.isoformat()}


def loads_entry(d: dict) -> Entry:
    return Entry(d["call_id"], d["agent_id"], d["kind"], d["caller"], d["e164"], d["phone"], d["name"],
                 datetime.fromisoformat(d["missed_at"]))


class SharedInbox(Inbox):
    def __init__(self, link: Link, *args):
        super().__init__(*args)
        self.link = link
        self._out = Outbox()  # changes to write and publish, in order

    # --- this hub's changes (the hub's own book and rows first, as one hub does)
    def _added(self, entries: list[Entry]) -> None:
        super()._added(entries)
        self._queue([{"op": "add", "entry": dumps_entry(e)} for e in entries])

    def _handled(self, entries: list[Entry]) -> None:
        super()._handled(entries)
        self._queue([{"op": "handle", "agent_id": e.agent_id, "call_id": e.call_id, "how": e.handled_how,
                      "at": e.handled_at.isoformat(), "dial_id": e.callback_dial_id} for e in entries])

    def pop_sent(self, call: Call, agent_ids: Iterable[str]) -> None:
        agent_ids = list(agent_ids)
        new = [(call.call_id, a) for a in agent_ids if (call.call_id, a) not in self.book.unreached]
        super().pop_sent(call, agent_ids)
        self._queue([{"op": "unreached", "call_id": c, "agent_id": a} for c, a in new if (c, a) in self.book.unreached])

    def reached(self, agent_id: str, call_ids: Iterable[str]) -> None:
        was = [c for c in call_ids if (c, agent_id) in self.book.unreached]  # a replay of a pop seen is no change
        super().reached(agent_id, was)
        self._queue([{"op": "reached", "call_id": c, "agent_id": agent_id} for c in was])

    def call_moved(self, call: Call, at: datetime) -> None:
        super().call_moved(call, at)
        if call.status in ("missed", "ended"):
            self._queue([{"op": "ended", "call_id": call.call_id}])

    def _queue(self, changes: list[dict]) -> None:
        self._out.add(*changes)

    async def publish(self) -> None:
        """Write and publish what ``_queue`` gathered, in order, many changes per round trip."""
        await self._out.run(self._send)

    async def _send(self, batch: list[dict]) -> None:
        pipe = self.link.redis.pipeline(transaction=False)
        for change in batch:
            self._write(pipe, change)
            pipe.publish(INBOX, json.dumps({"hub": self.link.name, **change}, separators=(",", ":")))
        try:
            await self.link.call(pipe.execute())
        except RedisDown:  # kept for when Redis is back: the book must not lose an entry
            self._out.keep(batch)
            await asyncio.sleep(0.5)
        except RedisError:  # a refused command: the rest of the inbox goes on
            log.exception("cluster: inbox changes not written")

    @staticmethod
    def _write(pipe, change: dict) -> None:
        op = change["op"]
        if op == "add":
            e = change["entry"]
            pipe.hsetnx(INBOX, e["agent_id"] + SEP + e["call_id"], json.dumps(e))
        elif op == "handle":
            pipe.hdel(INBOX, change["agent_id"] + SEP + change["call_id"])
        elif op == "unreached":
            pipe.sadd(UNREACHED + change["call_id"], change["agent_id"])
            pipe.expire(UNREACHED + change["call_id"], UNREACHED_TTL_S)
        elif op == "reached":
            pipe.srem(UNREACHED + change["call_id"], change["agent_id"])
        elif op == "ended":
            pipe.delete(UNREACHED + change["call_id"])

    # --- the other hubs' changes
    def heard(self, payload: bytes) -> None:
        change = json.loads(payload)
        if change["hub"] == self.link.name:
            return
        op, book = change["op"], self.book
        if op == "add":
            book.add(loads_entry(change["entry"]))
        elif op == "handle":
            if (entry := book.get(change["agent_id"], change["call_id"])) is not None:
                book.handle(entry, change["how"], datetime.fromisoformat(change["at"]), change["dial_id"])
        elif op == "unreached":
            book.unreached.add((change["call_id"], change["agent_id"]))
        elif op == "reached":
            book.unreached.discard((change["call_id"], change["agent_id"]))
        elif op == "ended":
            book.unreached = {k for k in book.unreached if k[0] != change["call_id"]}

    async def load_shared(self) -> int:
        """The book from Redis (at start, and after a broken subscription): open entries and
        unreached pops, with this hub's changes not yet written laid over them."""
        book = InboxBook()
        for value in (await self.link.call(self.link.redis.hgetall(INBOX))).values():
            book.add(loads_entry(json.loads(value)))
        keys = [k async for k in self.link.redis.scan_iter(match=UNREACHED + "*", count=500)]
        for key in keys:
            call_id = key.decode()[len(UNREACHED):]
            for agent in await self.link.call(self.link.redis.smembers(key)):
                book.unreached.add((call_id, agent.decode()))
        pending, self.book = list(self._out.items), book
        for change in pending:
            self.heard(json.dumps({**change, "hub": ""}).encode())
        return sum(len(mine) for mine in book.open.values())

    async def stop(self) -> None:
        """What is still queued, written (shortly) before the hub goes."""
        with contextlib.suppress(RedisDown, TimeoutError):
            async with asyncio.timeout(2):
                while self._out.items:
                    await asyncio.sleep(0.02)
