"""The contacts agents chose for numbers with several CRM matches, shared by the hubs: a choice
made through one hub pops that contact on the number's next calls through any hub.

A choice goes to the hash ``callpop:choices`` (number -> the choice) and, as a message on the
channel of the same name, to the other hubs' ``Popper.choices``; a hub loads the hash when it
subscribes. Choices are rare (an agent's click), so each is written as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

from .link import PREFIX, Link, RedisDown, behind

log = logging.getLogger("callpop.cluster")
CHOICES = PREFIX + "choices"


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps({**row, "chosen_at": row["chosen_at"].isoformat()}, separators=(",", ":"))


def _loads(text: str | bytes) -> dict[str, Any]:
    row = json.loads(text)
    row["chosen_at"] = datetime.fromisoformat(row["chosen_at"])
    return row


class SharedChoices:
    def __init__(self, link: Link):
        self.link = link
        self.choices: dict[str, dict[str, Any]] = {}  # the Popper's (the hub sets it)
        self._writes: set[asyncio.Task] = set()

    def chosen(self, row: dict[str, Any]) -> None:
        """This hub's agent chose (``Popper.on_choice``): to Redis and the other hubs."""
        behind(self._writes, self._write(row))

    async def _write(self, row: dict[str, Any]) -> None:
        text = _dumps(row)
        pipe = self.link.redis.pipeline(transaction=False)
        pipe.hset(CHOICES, row["e164"], text)
        pipe.publish(CHOICES, json.dumps({"hub": self.link.name, "row": text}))
        with contextlib.suppress(RedisDown):  # the choice stays in this hub and in the database
            await self.link.call(pipe.execute())

    def heard(self, payload: bytes) -> None:
        message = json.loads(payload)
        if message["hub"] != self.link.name:
            row = _loads(message["row"])
            self.choices[row["e164"]] = row

    async def load(self) -> None:
        for number, text in (await self.link.call(self.link.redis.hgetall(CHOICES))).items():
            self.choices[number.decode()] = _loads(text)

    async def stop(self) -> None:
        await asyncio.gather(*self._writes, return_exceptions=True)
