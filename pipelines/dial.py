"""Click-to-call: where a dial starts.

``plan_dial`` (pure) decides the two legs or refuses with a reason: leg A is the agent's own
phone (extension, mobile, home, or a number typed in), leg B the number asked for. ``Dialer``
records the request, hands both legs to the provider, and turns the provider's progress reports
into ``dials`` rows and ``dial`` messages on the agent's sockets.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import PhoneNumberType

from .agents import Agent
from .events import DIAL_STATES, DialRequest, msg_dial, utcnow
from .phone import NotAPhoneNumber, parse_diallable
from .sessions import Sessions
from .store import Store

if TYPE_CHECKING:
    from .providers.base import Provider

log = logging.getLogger("callpop.dial")
OWN_PHONES = ("extension", "mobile", "home")
FINAL_STATES = ("ended", "failed")


class DialRefused(Exception):
    """A dial that must not be placed; ``code`` is stable, ``reason`` is for people."""

    def __init__(self, code: str, reason: str, status: int = 422):
        super().__init__(reason)
        self.code, self.reason, self.status = code, reason, status


@dataclasses.dataclass(frozen=True)
class DialPlan:
    dial_id: str
    agent_id: str
    source: str
    leg_a: str        # what the provider dials first: an extension as is, else E.164
    leg_a_kind: str   # extension | mobile | home | number
    leg_b: str        # E.164
    leg_b_display: str
    extension: str    # the agent's extension (providers that originate from a device need it)


@dataclasses.dataclass(frozen=True)
class DialRules:
    region: str
    blocked_prefixes: tuple[str, ...] = ()
    allowed_countries: tuple[str, ...] = ()


def plan_dial(agent: Agent, request: DialRequest, rules: DialRules, dial_id: str = "") -> DialPlan:
    """The two legs of a click-to-call, or DialRefused with the reason."""
    try:
        b = parse_diallable(request.to, rules.region)
    except NotAPhoneNumber as e:
        raise DialRefused("not_a_number", str(e)) from None
    kind = request.leg_a if request.leg_a in OWN_PHONES else "number"
    if kind == "extension":
        if not agent.extension:
            raise DialRefused("no_leg_a", "you have no extension on file; choose mobile, home or a number")
        leg_a = agent.extension
    else:
        text = getattr(agent, kind) if kind != "number" else request.leg_a
        if not text:
            raise DialRefused("no_leg_a", f"you have no {kind} number on file; choose another phone to ring first")
        try:
            leg_a = parse_diallable(text, rules.region).e164
        except NotAPhoneNumber as e:
            raise DialRefused("bad_leg_a", f"your phone to ring first is not diallable: {e}") from None
    own = {leg_a}
    for phone in (agent.mobile, agent.home):
        try:
            own.add(parse_diallable(phone, rules.region).e164)
        except NotAPhoneNumber:
            pass
    if b.e164 in own:
        raise DialRefused("own_number", f"{b.display} is your own phone; pick the number of the person to call")
    blocked = next((p for p in rules.blocked_prefixes if b.e164.startswith(p.replace(" ", ""))), None)
    if blocked:
        raise DialRefused("blocked_prefix", f"numbers starting {blocked} are blocked (premium rate / toll fraud)")
    # Against toll fraud wherever the prefix list has a gap: premium-rate numbers of any country,
    # and satellite / international networks (no country, "001"), which cost dollars a minute.
    number_type = phonenumbers.number_type(phonenumbers.parse(b.e164))
    if number_type == PhoneNumberType.PREMIUM_RATE:
        raise DialRefused("premium_rate", f"{b.display} is a premium-rate number: blocked against toll fraud")
    if b.region == "001" and number_type != PhoneNumberType.TOLL_FREE:
        raise DialRefused("high_cost_network",
                          f"{b.display} is on a satellite or international network: blocked against toll fraud")
    if rules.allowed_countries and b.region not in rules.allowed_countries:
        raise DialRefused("country_not_allowed",
                          f"calls to {b.region} are not allowed; allowed: {', '.join(rules.allowed_countries)}")
    return DialPlan(dial_id or new_dial_id(), agent.id, request.source, leg_a, kind, b.e164, b.display,
                    agent.extension)


def new_dial_id() -> str:
    return "d" + uuid.uuid4().hex[:15]


@dataclasses.dataclass
class _Dial:
    plan: DialPlan
    requested_at: datetime
    state: str = "requested"
    outcome: str | None = None  # bridged | failed, as the dials row says
    error: str | None = None
    ended_at: datetime | None = None

    def answer(self) -> dict:
        """What ``GET /api/dials/{id}`` says about this dial."""
        return {"dial_id": self.plan.dial_id, "state": self.state, "outcome": self.outcome, "error": self.error,
                "to": self.plan.leg_b_display, "ended_at": iso_utc(self.ended_at)}


def iso_utc(at: datetime | None) -> str | None:
    """A naive UTC time (as the store holds it) as ISO 8601 with its Z."""
    return None if at is None else at.isoformat(timespec="milliseconds") + "Z"


class RateLimiter:
    """At most ``per_minute`` events per key in any sliding minute."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._seen: dict[str, collections.deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        q = self._seen.setdefault(key, collections.deque())
        while q and now - q[0] >= 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        return True


class Dialer:
    def __init__(self, provider: "Provider", store: Store, sessions: Sessions, rules: DialRules,
                 rate_per_minute: int):
        self.provider, self.store, self.sessions, self.rules = provider, store, sessions, rules
        self.limiter = RateLimiter(rate_per_minute)
        # Dials in progress, and finished ones until their last row is committed: until then
        # ``get`` answers from here, after that the dials table does.
        self.active: dict[str, _Dial] = {}
        self.tasks: set[asyncio.Task] = set()

    async def dial(self, agent: Agent, request: DialRequest) -> DialPlan:
        """Record and start a dial; DialRefused (recorded too) when it must not be placed."""
        now = utcnow()
        try:
            if not self.limiter.allow(agent.id):
                raise DialRefused("rate_limited",
                                  f"more than {self.limiter.per_minute} calls in a minute; wait a moment", 429)
            plan = plan_dial(agent, request, self.rules)
        except DialRefused as refused:
            self.store.insert("dials", {"dial_id": new_dial_id(), "agent_id": agent.id, "source": request.source,
                                        "leg_a_kind": request.leg_a if request.leg_a in OWN_PHONES else "number",
                                        "leg_b": request.to[:64], "requested_at": now, "outcome": "refused",
                                        "error": refused.code, "provider": self.provider.name})
            log.info("dial refused for agent %s: %s", agent.id, refused.code)
            raise
        self.active[plan.dial_id] = _Dial(plan, now)
        self.store.insert("dials", {"dial_id": plan.dial_id, "agent_id": agent.id, "source": plan.source,
                                    "leg_a": plan.leg_a, "leg_a_kind": plan.leg_a_kind, "leg_b": request.to[:64],
                                    "leg_b_e164": plan.leg_b, "requested_at": now, "provider": self.provider.name})
        self.sessions.send(agent.id, msg_dial(plan.dial_id, "requested", to=plan.leg_b_display,
                                              leg_a=plan.leg_a, leg_a_kind=plan.leg_a_kind))
        task = asyncio.get_running_loop().create_task(self._originate(plan))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return plan

    async def _originate(self, plan: DialPlan) -> None:
        try:
            await self.provider.originate(plan)
        except DialRefused as e:
            await self.progress(plan.dial_id, "failed", e.code, e.reason)
        except Exception as e:  # noqa: BLE001 - a provider fault fails this dial, nothing else
            log.exception("provider %s failed to originate %s", self.provider.name, plan.dial_id)
            await self.progress(plan.dial_id, "failed", "provider_error", f"{type(e).__name__}: {e}"[:200])

    async def progress(self, dial_id: str, state: str, error: str = "", reason: str = "") -> bool:
        """A provider's report on a dial; False when the dial is unknown or already over."""
        dial = self.active.get(dial_id)
        if dial is None or state not in DIAL_STATES or dial.state in FINAL_STATES:
            return False
        bridged = dial.state == "bridged"
        now = utcnow()
        values: dict = {}
        if state == "leg_a_answered":
            values["leg_a_answered_at"] = now
        elif state == "bridged":
            values |= {"bridged_at": now, "outcome": "bridged"}
        elif state == "ended":
            values["ended_at"] = now
            if not bridged:  # hung up before the two legs met
                state, error = "failed", error or "ended_before_bridge"
                values |= {"outcome": "failed", "error": error}
        elif state == "failed":
            values |= {"ended_at": now, "outcome": "failed", "error": error or "failed"}
        dial.state = state
        dial.outcome, dial.error = values.get("outcome", dial.outcome), values.get("error", dial.error)
        dial.ended_at = values.get("ended_at", dial.ended_at)
        if values:
            written = self.store.update("dials", {"dial_id": dial_id, "requested_at": dial.requested_at}, values)
            if state in FINAL_STATES:
                loop = asyncio.get_running_loop()
                written.add_done_callback(lambda _: loop.call_soon_threadsafe(self.active.pop, dial_id, None))
        extra = {"to": dial.plan.leg_b_display}
        if state == "failed":
            extra |= {"error": error or "failed", "reason": reason or error or "the call could not be placed"}
        self.sessions.send(dial.plan.agent_id, msg_dial(dial_id, state, **extra))
        return True

    async def hangup(self, dial_id: str) -> bool:
        """Ask the provider to end a dial in progress, then record it ended (failed with
        ``hung_up`` if the two legs never met); False when it is unknown or already over.
        ``HangupUnsupported`` from the provider goes to the caller."""
        dial = self.active.get(dial_id)
        if dial is None or dial.state in FINAL_STATES:
            return False
        await self.provider.hangup(dial.plan)
        log.info("dial %s hung up by its agent", dial_id)
        return await self.progress(dial_id, "ended", "hung_up", "you hung up")

    def get(self, dial_id: str) -> _Dial | None:
        """A dial in progress, or finished and not yet committed; None: ask the dials table."""
        return self.active.get(dial_id)
