"""The recorder (``callpop record``): the one writer of the DuckDB file in cluster mode.

It holds a lease in Redis (``callpop:recorder``, renewed every few seconds; a second recorder
waits for it), reads the journal stream with the consumer group ``recorder`` and commits each
entry as one DuckDB transaction, then acknowledges it (``XACK``) and trims what is done.

Exactly once: an event's unit is refused whole by the unique key on ``event_id`` if it is
there already; every unit also moves ``journal_marks.last_id`` in its own transaction, so an
entry committed just before a crash (not yet acknowledged) is known and skipped when the next
recorder claims the dead one's pending entries (``XAUTOCLAIM``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

from redis.exceptions import ResponseError

from ..calllog import CallLog
from ..events import utcnow
from ..store import Store, is_duplicate
from .journal import decode
from .link import EVENTS, GROUP, PREFIX, Link, RedisDown

log = logging.getLogger("callpop.recorder")
LEASE = PREFIX + "recorder"
BATCH = 1000
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


def stream_id(text: str | bytes) -> tuple[int, int]:
    ms, _, seq = (text.decode() if isinstance(text, bytes) else text).partition("-")
    return int(ms), int(seq or 0)


class LeaseLost(Exception):
    pass


class Recorder:
    """``calllog``: the outbox's delivery (``pipelines/calllog.py``), run while the lease is held,
    fed the revisions the hubs journal once they are committed here."""

    def __init__(self, link: Link, store: Store, name: str = "", calllog: CallLog | None = None,
                 lease_s: float = 10.0):
        self.link, self.store, self.calllog = link, store, calllog
        self.lease_ms = round(lease_s * 1000)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.mark: tuple[int, int] = (0, 0)
        self.recorded = 0  # entries committed by this recorder
        self.skipped = 0  # entries found committed already (a predecessor's, or duplicates)
        self.holding = False
        self.last_commit_at: datetime | None = None

    async def run(self) -> None:
        """Wait for the lease, then record until stopped; a lost lease ends the run."""
        await self._take_lease()
        loop = asyncio.get_running_loop()
        renew, delivering = loop.create_task(self._renew()), None
        try:
            await self._prepare()
            if self.calllog is not None:  # what is pending in the file, then what the journal brings
                await self.calllog.start()
                delivering = loop.create_task(self.calllog.run())
            claimed = await self._claim_pending()
            if claimed:
                log.info("recorder: %d entries a previous recorder left pending", claimed)
            while True:
                if renew.done():
                    renew.result()  # raises LeaseLost
                try:
                    entries = await self.link.call(self.link.redis.xreadgroup(
                        GROUP, self.name, {EVENTS: ">"}, count=BATCH, block=200))
                except RedisDown:
                    await asyncio.sleep(0.5)
                    continue
                for _, batch in entries or ():
                    await self._record(batch)
        finally:
            renew.cancel()
            if delivering is not None:
                delivering.cancel()

    async def _take_lease(self) -> None:
        waiting = False
        while True:
            with contextlib.suppress(RedisDown):
                if await self.link.call(self.link.redis.set(LEASE, self.name, nx=True, px=self.lease_ms)):
                    self.holding = True
                    log.info("recorder %s holds the lease", self.name)
                    return
                if not waiting:
                    holder = await self.link.call(self.link.redis.get(LEASE))
                    log.info("recorder: %s holds the lease; waiting", (holder or b"?").decode())
                    waiting = True
            await asyncio.sleep(min(1.0, self.lease_ms / 4000))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                kept = await self.link.call(self.link.redis.eval(_RENEW, 1, LEASE, self.name, self.lease_ms))
            except RedisDown:
                continue  # nobody else can take it while Redis is down
            if not kept:
                self.holding = False
                raise LeaseLost("another recorder holds the lease")

    async def _prepare(self) -> None:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: made before
            await self.link.call(self.link.redis.xgroup_create(EVENTS, GROUP, id="0", mkstream=True))
        rows = await asyncio.to_thread(self.store.query, "SELECT last_id FROM journal_marks WHERE consumer = ?",
                                       [GROUP])
        if rows.empty:
            await asyncio.wrap_future(self.store.insert("journal_marks", {
                "consumer": GROUP, "last_id": "0-0", "recorded_at": utcnow()}))
        else:
            self.mark = stream_id(rows.last_id[0])

    async def _claim_pending(self) -> int:
        """Every entry delivered to a recorder that did not acknowledge it (it died), recorded now."""
        claimed, start = 0, "0-0"
        while True:
            start, batch, *_ = await self.link.call(self.link.redis.xautoclaim(
                EVENTS, GROUP, self.name, min_idle_time=0, start_id=start, count=BATCH))
            batch = [e for e in batch if e and e[1]]  # entries trimmed meanwhile come back empty
            if batch:
                await self._record(sorted(batch, key=lambda e: stream_id(e[0])))
                claimed += len(batch)
            if start in (b"0-0", "0-0"):
                return claimed

    async def _record(self, batch: list[tuple[bytes, dict]]) -> None:
        ids, units = [], []
        for entry_id, fields in batch:
            ids.append(entry_id)
            if stream_id(entry_id) <= self.mark:
                self.skipped += 1  # committed before the last crash, not acknowledged
                continue
            mark = entry_id.decode()
            ops = decode(fields[b"u"])
            with self.store.together():
                written = [self.store.insert(op.table, op.row) if op.kind == "insert"
                           else self.store.update(op.table, op.key, op.row) for op in ops]
                written.append(self.store.update("journal_marks", {"consumer": GROUP},
                                                 {"last_id": mark, "recorded_at": utcnow()}))
            units.append((entry_id, written[-1], ops))
        for entry_id, future, ops in units:
            try:
                await asyncio.wrap_future(future)
                self.recorded += 1
                self.mark = max(self.mark, stream_id(entry_id))
                if self.calllog is not None:
                    for op in ops:
                        if op.kind == "insert" and op.table == "call_logs":
                            self.calllog.queue(op.row)
            except Exception as e:  # noqa: BLE001 - a unit refused for its data is logged by the store
                self.skipped += 1
                if not is_duplicate(e):
                    log.error("recorder: entry %s not recorded: %s", entry_id.decode(), e)
        if units:
            self.last_commit_at = datetime.now(timezone.utc).replace(tzinfo=None)
        while True:  # acknowledged only after the commit; done entries leave the stream
            try:
                pipe = self.link.redis.pipeline(transaction=False)
                pipe.xack(EVENTS, GROUP, *ids)
                pipe.xtrim(EVENTS, minid=ids[-1], approximate=False)
                await self.link.call(pipe.execute())
                return
            except RedisDown:
                await asyncio.sleep(0.5)

    async def status(self) -> dict[str, Any]:
        lag = None
        with contextlib.suppress(RedisDown, ResponseError):
            groups = await self.link.call(self.link.redis.xinfo_groups(EVENTS))
            lag = next((g.get("lag") for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        return {"recorder": self.name, "holding_lease": self.holding, "recorded": self.recorded,
                "skipped": self.skipped, "lag": lag, "redis": self.link.state, "store": self.store.state,
                "last_commit_at": self.last_commit_at.isoformat() + "Z" if self.last_commit_at else None,
                "call_log": self.calllog.status() if self.calllog is not None else None,
                "at": time.time()}
