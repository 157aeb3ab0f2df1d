"""The pop of a call whose hub died before sending it.

A hub sends a call's pop when the CRM answers or the deadline passes, after the event's 202; if
it is killed in between, the call rings with no pop anywhere. Every hub knows each ringing
call, which hub moved it last (``callstate.py``) and whether that hub still runs
(``liveness.py``). A ringing call still without its pop a second past the
CRM deadline, whose hub is gone, is taken over by the first hub to claim
``callpop:takeover:<call>``: it looks the number up and pops the agents, as the dead hub would
have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from typing import Callable

from ..calls import Call
from ..events import utcnow
from . import liveness
from .callstate import SharedCalls, key
from .link import PREFIX, Link, RedisDown

log = logging.getLogger("callpop.cluster")
EVERY_S = 0.5
CLAIM_MS = 60_000
# KEYS: the call, the takeover claim. ARGV: this hub, claim ms.
# The pop Redis has (the copy here missed it), or 1: this hub sends it, or 0: another hub does.
_TAKE = """
local pop = redis.call('HGET', KEYS[1], 'pop')
if pop then return pop end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


class Takeover:
    def __init__(self, link: Link, calls: SharedCalls, *, due_s: float):
        self.link, self.calls = link, calls
        self.due = timedelta(seconds=due_s)  # after the call's last event: the pop should be out
        self.pop: Callable[[Call], None] | None = None  # the hub's: send the call's pops (Hub._pop_orphan)
        self.taken = 0  # pops sent for a dead hub (/api/status)
        self._take = link.redis.register_script(_TAKE)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(EVERY_S)
            with contextlib.suppress(RedisDown):
                await self.sweep()

    def orphans(self) -> list[Call]:
        """Ringing calls moved last by another hub, still without a pop past the due time."""
        now, me, book = utcnow(), self.link.name, self.calls.book
        for call_id in [c for c in self.calls.moved_by if c not in book.calls]:
            del self.calls.moved_by[call_id]
        return [c for c in book.calls.values()
                if c.status == "ringing" and c.pop is None and c.popped and c.seen_at is not None
                and now - c.seen_at > self.due and self.calls.moved_by.get(c.call_id, me) != me]

    async def sweep(self) -> None:
        orphans = self.orphans()
        gone = await liveness.gone(self.link, {self.calls.moved_by[c.call_id] for c in orphans})
        for call in orphans:
            hub = self.calls.moved_by[call.call_id]
            if hub not in gone:
                continue  # late, not lost: its hub will send it
            got = await self.link.call(self._take(keys=[key(call.call_id), f"{PREFIX}takeover:{call.call_id}"],
                                                  args=[self.link.name, CLAIM_MS]))
            if isinstance(got, bytes):
                call.pop = json.loads(got)
            elif got == 1 and self.pop is not None:
                log.warning("call %s: its hub %s is gone before its pop; sent from here", call.call_id, hub)
                self.calls.moved_by[call.call_id] = self.link.name  # once
                self.taken += 1
                self.pop(call)
