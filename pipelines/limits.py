"""Refused input, counted rather than written one by one.

A hub on the open internet is refused things all day, and an attacker can make it refuse things
as fast as it can send them: one ``rejects`` row and one WARNING line per refusal let anyone fill
the disk. So each kind of refusal (source, reason, detail) gets one row when it first comes in a
window, and one more row at the window's end carrying how many more came; the WARNING line comes
at most once per (source, reason) per window, then once more with the number not logged.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .events import utcnow

log = logging.getLogger("callpop.hub")

# Distinct kinds one window keeps apart: sources are request paths and details may quote what the
# client sent, so an attacker could make every refusal a new kind; past this, they share one.
MAX_KINDS = 200
OVERFLOW_SOURCE = "(many)"


async def settled(value: Any) -> Any:
    """``value``, awaited first if it is awaitable: the in-memory limits answer at once, the
    ones the hubs of a cluster share (cluster/counters.py) ask Redis."""
    return await value if inspect.isawaitable(value) else value


class Throttle:
    """At most one ``allow`` per key per ``window_s``; the ones refused meanwhile are counted,
    and the next allowed one learns how many there were."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic, max_keys: int = 1000):
        self.window_s, self.clock, self.max_keys = window_s, clock, max_keys
        self._seen: dict[Any, list] = {}  # key -> [window start, suppressed]

    def allow(self, key: Any) -> tuple[bool, int]:
        """(whether to go ahead now, how many were held back since the last time it did)."""
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False, 0
        if seen is None and len(self._seen) >= self.max_keys:
            self._forget(now)
        held = seen[1] if seen is not None else 0
        self._seen[key] = [now, 0]
        return True, held

    def _forget(self, now: float) -> None:
        for key in [k for k, (start, _) in self._seen.items() if now - start >= self.window_s]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:  # all recent: forget the oldest
            del self._seen[next(iter(self._seen))]


@dataclass
class _Kind:
    started: float
    first_at: Any
    more: int = 0
    last_at: Any = None


@dataclass
class _Topic:  # one (source, reason): what its log line says
    started: float
    kinds: set = field(default_factory=set)
    unlogged: int = 0


class Rejects:
    """What ``Hub.reject`` does: rows for ``rejects`` through ``write(row)``, WARNING lines."""

    def __init__(self, write: Callable[[dict], Any], window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.write, self.window_s, self.clock = write, window_s, clock
        self._kinds: dict[tuple[str, str, str], _Kind] = {}
        self._topics: dict[tuple[str, str], _Topic] = {}

    def add(self, source: str, reason: str, detail: str = "") -> None:
        now, at = self.clock(), utcnow()
        detail = detail[:500]
        key = (source, reason, detail)
        if key not in self._kinds and len(self._kinds) >= MAX_KINDS:
            source, detail = OVERFLOW_SOURCE, "(details not kept: too many kinds of refusal at once)"
            key = (source, reason, detail)
        kind = self._kinds.get(key)
        if kind is None:
            self._kinds[key] = _Kind(now, at)
            self.write(self._row(at, key, 1))
        else:
            kind.more += 1
            kind.last_at = at
        topic = self._topics.get((source, reason))
        if topic is None:
            self._topics[(source, reason)] = _Topic(now, {detail})
            log.warning("rejected %s: %s %s", source, reason, detail[:200])
        else:
            topic.kinds.add(detail)
            topic.unlogged += 1

    def flush(self, everything: bool = False) -> None:
        """Write the counts of windows that are over (all of them: at stop) and log their tallies."""
        now = self.clock()
        for key, kind in list(self._kinds.items()):
            if everything or now - kind.started >= self.window_s:
                del self._kinds[key]
                if kind.more:
                    self.write(self._row(kind.last_at, key, kind.more))
        for (source, reason), topic in list(self._topics.items()):
            if everything or now - topic.started >= self.window_s:
                del self._topics[(source, reason)]
                if topic.unlogged:
                    log.warning("rejected %s: %s, %d more in %.0f s (not logged one by one; %d kinds, counted in "
                                "rejects)", source, reason, topic.unlogged, now - topic.started, len(topic.kinds))

    @staticmethod
    def _row(at: Any, key: tuple[str, str, str], count: int) -> dict:
        source, reason, detail = key
        return {"logged_at": at, "source": source, "reason": reason, "detail": detail or None, "count": count}
