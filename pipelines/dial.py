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
from typing import TYPE_CHECKING, Callable

import phonenumbers
from phonenumbers import PhoneNumberType

from .agents import Agent
from .dialplan import DialPlan, DialRefused
from .events import DIAL_STATES, DialRequest, iso_utc, msg_dial, utcnow
from .limits import settled
from .phone import NotAPhoneNumber, Phone, parse_diallable
from .sessions import Sessions
from .store import Store

if TYPE_CHECKING:
    from .providers.base import Provider

log = logging.getLogger("callpop.dial")
OWN_PHONES = ("extension", "mobile", "home")
FINAL_STATES = ("ended", "failed")


# Number types refused unless the rules opt in (CALLPOP_DIAL_ALLOWED_TYPES): they cost the caller
# more than a call, or forward to wherever their owner likes (personal numbers, UAN).
OPT_IN_TYPES = {PhoneNumberType.PREMIUM_RATE: "PREMIUM_RATE", PhoneNumberType.SHARED_COST: "SHARED_COST",
                PhoneNumberType.PERSONAL_NUMBER: "PERSONAL_NUMBER", PhoneNumberType.UAN: "UAN"}
TYPE_WORDS = {"PREMIUM_RATE": "a premium-rate", "SHARED_COST": "a shared-cost", "PERSONAL_NUMBER": "a personal",
              "UAN": "a universal access (UAN)"}
NON_GEOGRAPHIC = "NON_GEOGRAPHIC"  # region "001": satellite and international networks


@dataclasses.dataclass(frozen=True)
class DialRules:
    """What may be rung, on either leg. Empty ``allowed_countries`` = the home region only; '*'
    (in it or in ``leg_a_allowed``) = any."""
    region: str
    blocked_prefixes: tuple[str, ...] = ()
    allowed_countries: tuple[str, ...] = ()
    allowed_types: tuple[str, ...] = ()     # names of OPT_IN_TYPES, or NON_GEOGRAPHIC
    leg_a_allowed: tuple[str, ...] = ()     # E.164 numbers or prefixes an agent may type as leg A

    @property
    def countries(self) -> tuple[str, ...]:
        return self.allowed_countries or (self.region,)


def check_number(phone: Phone, rules: DialRules, whose: str = "") -> None:
    """DialRefused if ``phone`` must not be rung; the same rules for leg A and leg B.

    ``whose`` names leg A in the reason ("your mobile "); empty for leg B."""
    shown = f"{whose}{phone.display}"
    blocked = next((p for p in rules.blocked_prefixes if phone.e164.startswith(p.replace(" ", ""))), None)
    if blocked:
        raise DialRefused("blocked_prefix", f"{shown}: numbers starting {blocked} are blocked (premium rate / "
                                            "toll fraud)")
    # Against toll fraud wherever the prefix list has a gap: the number's type, from libphonenumber.
    number_type = phonenumbers.number_type(phonenumbers.parse(phone.e164))
    type_name = OPT_IN_TYPES.get(number_type)
    if type_name and type_name not in rules.allowed_types:
        code = "premium_rate" if type_name == "PREMIUM_RATE" else "number_type_not_allowed"
        raise DialRefused(code, f"{shown} is {TYPE_WORDS[type_name]} number: blocked against toll fraud")
    # Satellite and international networks (no country, "001") cost dollars a minute; their
    # international freephone numbers (+800) are fine.
    if phone.region == "001":
        if number_type != PhoneNumberType.TOLL_FREE and NON_GEOGRAPHIC not in rules.allowed_types:
            raise DialRefused("high_cost_network",
                              f"{shown} is on a satellite or international network: blocked against toll fraud")
        return
    # Each Caribbean +1 country is its own region (DO, JM...): this rule also catches those.
    if "*" not in rules.countries and phone.region not in rules.countries:
        raise DialRefused("country_not_allowed", f"{shown} is in {phone.region}: calls there are not allowed; "
                                                 f"allowed: {', '.join(rules.countries)}")


def _own_numbers(agent: Agent, region: str) -> set[str]:
    own = set()
    for phone in (agent.mobile, agent.home):
        try:
            own.add(parse_diallable(phone, region).e164)
        except NotAPhoneNumber:
            pass
    return own


def plan_dial(agent: Agent, request: DialRequest, rules: DialRules, dial_id: str = "") -> DialPlan:
    """The two legs of a click-to-call, or DialRefused with the reason.

    Both legs pass ``check_number``: a PBX rings leg A first, so a premium number there costs the
    same as one on leg B, and so does one in the agents' CSV. A number typed as leg A must also be
    the agent's own or on the admin's list, or a token would be a free call anywhere."""
    try:
        b = parse_diallable(request.to, rules.region)
    except NotAPhoneNumber as e:
        raise DialRefused("not_a_number", str(e)) from None
    kind = request.leg_a if request.leg_a in OWN_PHONES else "number"
    own = _own_numbers(agent, rules.region)
    a: Phone | None = None
    if kind == "extension":  # a desk phone on the PBX: dialled as is, never out of the building
        if not agent.extension:
            raise DialRefused("no_leg_a", "you have no extension on file; choose mobile, home or a number")
        leg_a = agent.extension
    else:
        text = getattr(agent, kind) if kind != "number" else request.leg_a
        if not text:
            raise DialRefused("no_leg_a", f"you have no {kind} number on file; choose another phone to ring first")
        try:
            a = parse_diallable(text, rules.region)
        except NotAPhoneNumber as e:
            raise DialRefused("bad_leg_a", f"your phone to ring first is not diallable: {e}") from None
        leg_a = a.e164
    if b.e164 in own | {leg_a}:
        raise DialRefused("own_number", f"{b.display} is your own phone; pick the number of the person to call")
    if a is not None:
        check_number(a, rules, f"your {'phone to ring first' if kind == 'number' else kind} ")
        if kind == "number" and a.e164 not in own and not any(
                p == "*" or a.e164.startswith(p) for p in rules.leg_a_allowed):
            raise DialRefused("leg_a_not_allowed", f"{a.display} is not one of your phones: ring your extension, "
                                                   "mobile or home first (an admin can allow other numbers)")
    check_number(b, rules)
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
    bridged_at: datetime | None = None

    def answer(self) -> dict:
        """What ``GET /api/dials/{id}`` says about this dial."""
        return {"dial_id": self.plan.dial_id, "state": self.state, "outcome": self.outcome, "error": self.error,
                "to": self.plan.leg_b_display, "ended_at": iso_utc(self.ended_at)}


class RateLimiter:
    """At most ``limit`` events per key in any sliding window of ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float = 60, clock=time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._seen: dict[str, collections.deque[float]] = {}

    def used(self, key: str) -> int:
        q = self._seen.setdefault(key, collections.deque())
        now = self.clock()
        while q and now - q[0] >= self.window_s:
            q.popleft()
        return len(q)

    def allow(self, key: str) -> bool:
        if self.used(key) >= self.limit:
            return False
        self._seen[key].append(self.clock())
        return True

    def known(self, key: str) -> int:
        """``used``, for answers that cannot wait (``/api/status``): here it costs nothing."""
        return self.used(key)


class Dialer:
    def __init__(self, provider: "Provider", store: Store, sessions: Sessions, rules: DialRules,
                 rate_per_minute: int, budget_per_hour: int = 600, clock=time.monotonic,
                 on_over: Callable[..., None] | None = None, limiter=None, budget=None):
        self.provider, self.store, self.sessions, self.rules = provider, store, sessions, rules
        # Told of each dial that is over: on_over(plan, requested_at=, bridged_at=, ended_at=,
        # outcome=, error=) (the hub logs it to the CRM).
        self.on_over = on_over
        # ``limiter`` and ``budget`` given: the cluster's, shared by every hub through Redis
        # (cluster/counters.py); their allow() is awaited, and raises DialRefused (503) when
        # Redis does not answer, so a dial is never placed unlimited.
        self.limiter = limiter or RateLimiter(rate_per_minute, 60, clock)
        # Every agent's dials together: what a stolen token (or many) can cost in an hour. Only
        # dials placed count, so refused probes cannot use it up for everyone.
        self.budget = budget or RateLimiter(budget_per_hour, 3600, clock)
        self._budget_warned = False
        # Dials in progress, and finished ones until their last row is committed: until then
        # ``get`` answers from here, after that the dials table does.
        self.active: dict[str, _Dial] = {}
        self.tasks: set[asyncio.Task] = set()

    async def dial(self, agent: Agent, request: DialRequest) -> DialPlan:
        """Record and start a dial; DialRefused (recorded too) when it must not be placed."""
        now = utcnow()
        try:
            if not await settled(self.limiter.allow(agent.id)):
                raise DialRefused("rate_limited",
                                  f"more than {self.limiter.limit} calls in a minute; wait a moment", 429)
            plan = plan_dial(agent, request, self.rules)
            await self._take_budget()
        except DialRefused as refused:
            self.store.insert("dials", {"dial_id": new_dial_id(), "agent_id": agent.id, "source": request.source,
                                        "leg_a_kind": request.leg_a if request.leg_a in OWN_PHONES else "number",
                                        "leg_b": request.to[:64], "requested_at": now, "outcome": "refused",
                                        "error": refused.code, "provider": self.provider.name,
                                        "callback_for": request.callback_for})
            log.info("dial refused for agent %s: %s", agent.id, refused.code)
            raise
        self.active[plan.dial_id] = _Dial(plan, now)
        self.store.insert("dials", {"dial_id": plan.dial_id, "agent_id": agent.id, "source": plan.source,
                                    "leg_a": plan.leg_a, "leg_a_kind": plan.leg_a_kind, "leg_b": request.to[:64],
                                    "leg_b_e164": plan.leg_b, "requested_at": now, "provider": self.provider.name,
                                    "callback_for": request.callback_for})
        self.sessions.send(agent.id, msg_dial(plan.dial_id, "requested", to=plan.leg_b_display,
                                              leg_a=plan.leg_a, leg_a_kind=plan.leg_a_kind))
        task = asyncio.get_running_loop().create_task(self._originate(plan))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return plan

    async def _take_budget(self) -> None:
        if await settled(self.budget.allow("all")):
            self._budget_warned = False  # the next exhaustion is news again
            return
        if not self._budget_warned:  # one line when it is hit, not one per refused dial
            self._budget_warned = True
            log.warning("dial budget exhausted: %d click-to-calls in the last hour (CALLPOP_DIAL_BUDGET_PER_HOUR); "
                        "dials are refused until the oldest age out", self.budget.limit)
        raise DialRefused("dial_budget_exhausted", f"the hub has placed its {self.budget.limit} calls for this hour; "
                                                   "try again later or ask an admin", 429)

    def status(self) -> dict:
        """The ``dial`` section of ``/api/status``. A shared budget says what Redis said last
        (at the last dial or status of this hub), as it cannot wait for Redis here."""
        used = self.budget.known("all")
        return {"budget_per_hour": self.budget.limit, "used_last_hour": used, "exhausted": used >= self.budget.limit}

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
        dial.bridged_at = values.get("bridged_at", dial.bridged_at)
        if state in FINAL_STATES and self.on_over is not None:
            self.on_over(dial.plan, requested_at=dial.requested_at, bridged_at=dial.bridged_at,
                         ended_at=dial.ended_at or now, outcome=dial.outcome, error=dial.error)
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
