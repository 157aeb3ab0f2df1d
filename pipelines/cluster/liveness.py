"""Which hubs are running, for the work a dead hub leaves behind: its pops (``takeover.py``) and
its CRM requests (``lookups.py``).

Two signals. Redis' own list of connections: every connection of a hub carries its name
(``Link``), and a killed process's connections close at once, so a hub with none is gone. And
``callpop:alive:<hub>``, renewed every second with a 15 s TTL: a machine that died leaves its
connections half-open for minutes, but stops renewing it. A busy hub keeps both, however late its
answers are.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterable

from redis.exceptions import RedisError

from .link import PREFIX, Link, RedisDown, client_name

ALIVE_MS = 15_000
RENEW_S = 1.0


def alive_key(hub: str) -> str:
    return f"{PREFIX}alive:{hub}"


async def heartbeat(link: Link) -> None:
    """This hub's alive key, renewed until the hub stops."""
    while True:
        with contextlib.suppress(RedisDown):
            await link.call(link.redis.set(alive_key(link.name), 1, px=ALIVE_MS))
        await asyncio.sleep(RENEW_S)


async def leave(link: Link) -> None:
    with contextlib.suppress(RedisDown):
        await link.call(link.redis.delete(alive_key(link.name)))


async def gone(link: Link, hubs: Iterable[str]) -> set[str]:
    """Those of ``hubs`` that are no longer running (RedisDown if Redis cannot say)."""
    hubs = list(hubs)
    if not hubs:
        return set()
    pipe = link.redis.pipeline(transaction=False)
    for h in hubs:
        pipe.exists(alive_key(h))
    alive = await link.call(pipe.execute())
    try:
        connected = {c.get("name") for c in await link.call(link.redis.client_list(_type="normal"))}
    except RedisError:  # an ACL user without CLIENT LIST: the alive keys alone say
        connected = None
    return {h for h, a in zip(hubs, alive)
            if not a or (connected is not None and client_name(h) not in connected)}
