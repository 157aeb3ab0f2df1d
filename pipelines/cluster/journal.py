"""The store of a hub in cluster mode: the writes go to a Redis Stream, the recorder commits them.

It has ``Store``'s write side (``insert``, ``update``, ``together``) so the parts of the hub
write as they always do; what ``together()`` (or one lone write) makes is one *unit*, one entry
of the stream ``callpop:journal``, which the recorder (``recorder.py``) commits to DuckDB as one
transaction, exactly once. A write's future resolves once its entry is in Redis: for an event
that is the hub's 202, so Redis must keep what it acknowledged (AOF, docs/CLUSTER.md).

An event's unit goes in through one Lua script, so these happen together or not at all: the
entry, the event id marked done (``callpop:seen:<id>``, idempotency across hubs, with a TTL),
the call's shared state and its place in ``callpop:live``, and the ``callpop:calls`` message
that keeps every hub's copy of the call current.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..store import StoreUnavailable
from ..store_rows import Op, check_row
from .link import CALLS, EVENTS, PREFIX, Link, RedisDown

log = logging.getLogger("callpop.cluster")
BATCH = 500  # units per round trip at most
CLAIM_MS = 10_000  # an event being acted on by a hub: others wait this long before taking it over

# KEYS: seen, journal, call, live, the call's lock. ARGV: hub, unit, seen ttl s, call state ('' = none),
# live (1/0), call ttl s, call id, score, the callpop:calls message, the lock's token.
_EVENT = f"""
if redis.call('GET', KEYS[5]) == ARGV[10] then redis.call('DEL', KEYS[5]) end
local seen = redis.call('GET', KEYS[1])
if seen == 'done' then return 0 end
if seen and seen ~= ARGV[1] then return -1 end
local id = redis.call('XADD', KEYS[2], '*', 'u', ARGV[2])
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], 'state', ARGV[4], 'hub', ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  if ARGV[5] == '1' then redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7]) else redis.call('ZREM', KEYS[4], ARGV[7]) end
  redis.call('PUBLISH', '{CALLS}', ARGV[9])
end
return id
"""


class DuplicateEvent(Exception):
    """Another hub recorded this event first."""


@dataclasses.dataclass
class Unit:
    ops: list[Op]
    event: dict[str, Any] | None = None  # for an event's unit: its id and the call's shared state
    done: asyncio.Future | None = None  # 'accepted' | 'duplicate', or the exception


def encode(ops: list[Op]) -> bytes:
    return json.dumps([[op.kind, op.table, op.row, op.key] for op in ops], default=tag,
                      separators=(",", ":")).encode()


def decode(payload: bytes | str) -> list[Op]:
    return [Op(kind, table, row, key) for kind, table, row, key in json.loads(payload, object_hook=untag)]


def tag(value: Any) -> Any:
    """JSON for what rows hold besides JSON's own types (``json.dumps(default=tag)``)."""
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    raise TypeError(f"cannot journal a {type(value).__name__}")


def untag(obj: dict) -> Any:
    """Back from ``tag`` (``json.loads(object_hook=untag)``)."""
    if len(obj) == 1:
        if "$t" in obj:
            return datetime.fromisoformat(obj["$t"])
        if "$d" in obj:
            return date.fromisoformat(obj["$d"])
    return obj


def seen_key(event_id: str) -> str:
    return f"{PREFIX}seen:{event_id}"


class Journal:
    def __init__(self, link: Link, columns: Mapping[str, list[str]], *, seen_ttl_s: int, queue_max: int,
                 reads: Any = None):
        self.link, self.reads = link, reads
        self._columns = dict(columns)
        self.seen_ttl_s = seen_ttl_s
        self.queue_max = queue_max
        self.path = Path("redis")  # what the hub's start line names
        self._together: list[Op] | None = None
        self._units: list[Unit] = []  # waiting for the writer (it takes them in order)
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # round trips that wrote
        self.rows_written = 0
        self.last_error = ""

    # --- life cycle (on the hub's loop)
    def open(self) -> "Journal":
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._writer = self._loop.create_task(self._write())
        return self

    async def aclose(self, grace_s: float = 5.0) -> None:
        end = self._loop.time() + grace_s
        while self._units and self._loop.time() < end and self.link.up:
            await asyncio.sleep(0.02)
        if self._units:
            log.error("the hub stops with %d writes Redis did not take (%s)", len(self._units), self.problem)
        if self._writer is not None:
            self._writer.cancel()

    # --- writing (Store's interface)
    def insert(self, table: str, row: Mapping[str, Any]) -> concurrent.futures.Future:
        return self._put(Op("insert", table, dict(row)))

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> concurrent.futures.Future:
        return self._put(Op("update", table, dict(values), dict(key)))

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        if self._together is not None:
            yield
            return
        self._together = ops = []
        try:
            yield
        finally:
            self._together = None
            if ops:
                self._queue(Unit(ops))

    @contextlib.contextmanager
    def event_unit(self, event: dict[str, Any]) -> Iterator[Unit]:
        """The writes made inside are the event's unit; ``event`` (id, call state) goes with it.
        Await ``unit.done`` for the outcome."""
        self._together = ops = []
        unit = Unit(ops, event, self._loop.create_future())
        try:
            yield unit
        finally:
            self._together = None
            self._queue(unit)

    def _put(self, op: Op) -> concurrent.futures.Future:
        check_row(self._columns, op.table, op.row)
        if self._together is not None:
            self._together.append(op)
        else:
            self._queue(Unit([op]))
        return op.future

    def _queue(self, unit: Unit) -> None:
        if self._loop is None:
            raise RuntimeError("journal is not open")
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._units.append(unit)
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._queue, unit)

    # --- what the hub asks of a store
    def accepting(self) -> str:
        if not self.link.up:
            return self.problem
        if len(self._units) >= self.queue_max:
            return f"{len(self._units)} writes waiting for Redis"
        return ""

    @property
    def problem(self) -> str:
        return f"redis: down ({self.link.problem})" if self.link.problem else ""

    @property
    def state(self) -> str:
        return "degraded" if self.link.problem else "ok"

    @property
    def columns(self) -> dict[str, list[str]]:
        return self._columns

    def pending(self) -> int:
        return sum(len(u.ops) for u in self._units)

    # --- the writer
    async def _write(self) -> None:
        """Whatever queued while the last round trip ran goes in the next one (one pipeline)."""
        while True:
            if not self._units:
                self._wake.clear()
                await self._wake.wait()
            batch = self._units[:BATCH]
            try:
                results = await self.link.call(self._send(batch))
            except RedisDown:
                self._failed(batch)
                await asyncio.sleep(0.05)
                continue
            del self._units[:len(batch)]
            self.commits += 1
            for unit, result in zip(batch, results):
                self._settle(unit, result)

    def _send(self, batch: list[Unit]):
        pipe = self.link.redis.pipeline(transaction=False)
        for unit in batch:
            payload = encode(unit.ops)
            if unit.event is None:
                pipe.xadd(EVENTS, {"u": payload})
                continue
            e = unit.event
            pipe.eval(_EVENT, 5, seen_key(e["event_id"]), EVENTS, e["call_key"], e["live_key"], e["lock_key"],
                      self.link.name, payload, self.seen_ttl_s, e.get("state", ""), int(e.get("live", False)),
                      e.get("ttl_s", 60), e.get("call_id", ""), e.get("score", 0), e.get("message", ""),
                      e["token"])
        return pipe.execute(raise_on_error=False)

    def _failed(self, batch: list[Unit]) -> None:
        """Redis did not answer: an event's unit fails (its 503 makes the PBX retry, and the retry
        learns from the idempotency key whether this attempt got in after all); other writes wait
        for Redis to come back."""
        keep = []
        for unit in batch:
            if unit.event is None:
                keep.append(unit)
                continue
            error = StoreUnavailable(self.problem or "redis: down")
            for op in unit.ops:
                op.future.set_exception(error)
            if not unit.done.done():
                unit.done.set_result(error)
        self._units[:len(batch)] = keep

    def _settle(self, unit: Unit, result: Any) -> None:
        if isinstance(result, Exception):
            self.last_error = f"{type(result).__name__}: {result}"[:300]
            log.error("Redis refused a journal entry: %s", self.last_error)
            outcome: Any = StoreUnavailable(self.last_error)
        elif unit.event is not None and result in (0, -1):
            outcome = "duplicate" if result == 0 else StoreUnavailable("another hub is recording this event")
        else:
            outcome = "accepted"
            self.rows_written += len(unit.ops)
        for op in unit.ops:
            if isinstance(outcome, Exception):
                op.future.set_exception(outcome)
            elif outcome == "duplicate":
                op.future.set_exception(DuplicateEvent(unit.event["event_id"]))
            else:
                op.future.set_result(None)
        if unit.done is not None and not unit.done.done():
            unit.done.set_result(outcome)

    # --- reads: this hub holds no database; the recorder answers (reads.py)
    def query(self, sql: str, params: Any = None):
        return self.reads.query(sql, params)

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from ..analytics.payload import answer
        if fn is answer:
            named, params = args
            return self.reads.analytics(named.name, dict(params), kwargs.get("agent_id"))
        raise StoreUnavailable("this read needs the database, which the recorder holds in cluster mode")
