"""The simulated PBX: the embedded default, so callpop shows real pops without a phone system.

Inbound calls arrive at random (a Poisson process at ``sim_calls_per_minute``): known contacts,
unknown numbers, numbers shared by several contacts, withheld numbers; most ring one extension,
some a ring group; they are answered, missed, or answered elsewhere, then hung up. Two-leg dials
ring leg A, then leg B, with realistic delays and failures.

Test numbers (documented in README): a leg whose number ends in 9999 never answers, one ending
in 8888 is busy, and a dial to a number ending in 7777 always connects; dials involving a test
number have no random failures.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

from ..agents import Agents
from ..contacts import Contacts
from ..dialplan import DialPlan
from ..events import CallEvent
from .base import Provider, ProviderHost

log = logging.getLogger("callpop.sim")

# Share of inbound calls by who calls (must sum to 1).
CALLER_MIX = (("known", 0.62), ("unknown", 0.25), ("shared", 0.08), ("withheld", 0.05))
RING_GROUP_SHARE = 0.2
ANSWER_SHARE = 0.72
DIDS = ("0722776773", "0737771111", "+12125550100")
TEST_ENDINGS = ("7777", "8888", "9999")


class SimProvider(Provider):
    name = "sim"

    def __init__(self, agents: Agents, contacts: Contacts, *, calls_per_minute: float = 4.0,
                 seed: str = "", speed: float = 1.0):
        self.agents, self.contacts = agents, contacts
        self.calls_per_minute = calls_per_minute
        self.speed = max(speed, 0.01)
        self.rnd = random.Random(seed or None)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._dials: dict[str, asyncio.Task] = {}  # dial id -> the task playing it (hangup cancels it)
        self.placed = 0

    async def start(self, host) -> None:
        await super().start(host)
        if self.calls_per_minute > 0:
            self._spawn(self._generate())

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict:
        return {"name": self.name, "state": "connected",
                "detail": f"simulated PBX, {self.calls_per_minute:g} calls/min, {self.placed} placed"}

    # --- inbound
    async def _generate(self) -> None:
        while True:
            await asyncio.sleep(self.rnd.expovariate(self.calls_per_minute / 60) / self.speed)
            self._spawn(self.call())

    def pick_caller(self) -> str:
        kind = self.rnd.choices([k for k, _ in CALLER_MIX], [w for _, w in CALLER_MIX])[0]
        people = self.contacts.all()
        if kind == "known" and people:
            return self.rnd.choice(people).phone
        if kind == "shared":
            shared = [c for c in people if len(self.contacts.by_phone(c.phone)) > 1]
            if shared:
                return self.rnd.choice(shared).phone
        if kind == "withheld":
            return ""
        return "05%d%07d" % (self.rnd.choice((0, 2, 4, 8)), self.rnd.randrange(10 ** 7))

    async def call(self, caller: str | None = None, extensions: list[str] | None = None,
                   answer: bool | None = None) -> str:
        """Play one inbound call to its end; returns its call id."""
        call_id = f"sim-{next(self._ids)}-{self.rnd.randrange(16 ** 6):06x}"
        self.placed += 1
        exts = sorted({a.extension for a in self.agents if a.extension})
        if not exts:
            return call_id
        if extensions is None:
            size = self.rnd.choice((2, 3)) if self.rnd.random() < RING_GROUP_SHARE and len(exts) > 1 else 1
            extensions = self.rnd.sample(exts, min(size, len(exts)))
        caller = self.pick_caller() if caller is None else caller
        did = self.rnd.choice(DIDS)

        async def send(kind: str, ext: str = "", cause: str = "") -> None:
            await self.host.ingest(CallEvent(call_id=call_id, type=kind, caller=caller, callee=did,
                                             extension=ext, cause=cause), self.name, wait=False)

        for ext in extensions:
            await send("ringing", ext)
        answered = self.rnd.random() < ANSWER_SHARE if answer is None else answer
        if answered:
            await self._sleep(3, 14)
            await send("answered", self.rnd.choice(extensions))
            await self._sleep(20, 150)
            await send("hangup", cause="normal clearing")
        else:
            await self._sleep(6, 25)
            await send("hangup", cause="caller hung up")
        return call_id

    # --- outbound (click-to-call)
    async def originate(self, plan: DialPlan) -> None:
        task = self._dials[plan.dial_id] = self._spawn(self._dial(plan))
        task.add_done_callback(lambda _: self._dials.pop(plan.dial_id, None))

    async def hangup(self, plan: DialPlan) -> None:
        """Both simulated phones hang up at once: the dial's script stops where it is."""
        task = self._dials.pop(plan.dial_id, None)
        if task is not None:
            task.cancel()

    async def _dial(self, plan: DialPlan) -> None:
        report = self.host.dial_progress
        scripted = plan.leg_a.endswith(TEST_ENDINGS) or plan.leg_b.endswith(TEST_ENDINGS)
        await self._sleep(0.2, 0.6)
        await report(plan.dial_id, "leg_a_ringing")
        await self._sleep(1.5, 4)
        if plan.leg_a.endswith("9999") or (not scripted and self.rnd.random() < 0.06):
            await report(plan.dial_id, "failed", "leg_a_no_answer", "your phone was not answered")
            return
        if plan.leg_a.endswith("8888"):
            await report(plan.dial_id, "failed", "leg_a_busy", "your phone is busy")
            return
        await report(plan.dial_id, "leg_a_answered")
        await report(plan.dial_id, "leg_b_ringing")
        await self._sleep(2, 8)
        roll = 1.0 if scripted else self.rnd.random()
        if plan.leg_b.endswith("8888") or roll < 0.1:
            await report(plan.dial_id, "failed", "leg_b_busy", f"{plan.leg_b_display} is busy")
            return
        if plan.leg_b.endswith("9999") or roll < 0.22:
            await report(plan.dial_id, "failed", "leg_b_no_answer", f"{plan.leg_b_display} did not answer")
            return
        await report(plan.dial_id, "bridged")
        await self._sleep(10, 60)
        await report(plan.dial_id, "ended")

    # --- helpers
    async def _sleep(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rnd.uniform(low, high) / self.speed)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated call failed: %r", task.exception())


def create(settings, host: ProviderHost) -> SimProvider:
    """The entry point (``providers.registry``)."""
    return SimProvider(host.agents, host.contacts, calls_per_minute=settings.sim_calls_per_minute,
                       seed=settings.sim_seed, speed=settings.sim_speed)
