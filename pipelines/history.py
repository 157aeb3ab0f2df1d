"""A realistic, repeatable history for the hub's database: ``python -m pipelines seed``.

The notebooks, the console's demo, the tests and the benchmarks need months of calls that look
like a real team's: this module makes them, row for row in the shape ``data/schema.sql`` and
the hub write (the same outcomes, error texts, pop statuses and dial reason codes).

What the history holds, and why it looks the way it does:
- Calls follow working hours in Israel (the demo's home, ``Asia/Jerusalem``): Sunday to
  Thursday full days with a morning and an afternoon peak and a lunch dip, a short Friday,
  an almost empty Saturday; each day's volume varies a little.
- Callers are the demo contacts (``data/contacts.csv``, some far more often than others),
  numbers the CRM does not know (a pool in which a few numbers call again and again), and
  withheld numbers; the share of unknown callers depends on the DID that was called.
- The CRM slows down at peak (median latency grows with load, the slow tail grows too), so
  timeouts cluster in busy hours; a timeout's late answer is recorded as the hub records it.
  A few outages (connection refused / HTTP 503 for tens of minutes) and two broken contact
  records (the CRM answers without STATUS) give the error analyses something to find.
- A fifth of the calls ring a ring group (two or three extensions); agents are signed in most
  of the time, and each clicks pops more or less (some hardly ever).
- Click-to-calls fail for real reasons: ``leg_a_no_answer`` (more often on mobiles),
  ``leg_a_busy``, ``leg_b_busy``, ``leg_b_no_answer`` (more at lunch and in the evening),
  ``ended_before_bridge``, ``provider_error``; a few are refused (``not_a_number``,
  ``rate_limited``, ``blocked_prefix``, ``own_number``).

Everything is drawn with numpy from ``seed`` (the same arguments give the same rows) and written
as Arrow batches joined to small dimension tables inside DuckDB, so strings are built by the
database rather than by Python: about 10 M lookups a minute or two on two cores.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import zoneinfo
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa

from . import phone as phones
from .agents import Agents
from .contacts import Contacts
from .resources import data_file

SCHEMA = data_file("schema.sql")
LOCAL_TZ = "Asia/Jerusalem"
BASE_URL = "http://127.0.0.1:8765"  # the demo hub, whose sample CRM the recorded URLs point to
DEADLINE_MS = 1500                    # crm_deadline_ms in force (the default)
LATE_TIMEOUT_MS = 10000               # crm_late_timeout_ms
US = 1_000_000                        # microseconds per second

# Inbound calls by local hour (Sunday-Thursday, Friday) and by ISO weekday (1 = Monday).
HOURS = np.array([.002, .001, .001, .001, .002, .01, .05, .2, .6, 1.0, 1.25, 1.3,
                  1.1, .85, 1.1, 1.2, 1.0, .65, .35, .15, .08, .04, .02, .01])
HOURS_FRIDAY = np.array([.002, .001, .001, .001, .002, .01, .05, .25, .7, 1.0, 1.05, .9,
                         .6, .3, .1, .04, .02, .01, .01, .01, .01, .005, .003, .002])
WEEKDAYS = {1: 1.0, 2: 1.0, 3: .97, 4: .95, 5: .35, 6: .06, 7: 1.05}
# Click-to-calls by local hour: agents call back late morning and mid-afternoon.
DIAL_HOURS = np.array([0, 0, 0, 0, 0, .005, .02, .1, .5, .9, 1.2, 1.0,
                       .7, .6, 1.0, 1.25, 1.1, .7, .3, .1, .03, .01, 0, 0])
DIALS_PER_CALL = 0.35

DIDS = ("0722776773", "0737771111", "+12125550100")  # the simulated PBX's DIDs
DID_WEIGHTS = np.array([.6, .3, .1])
UNKNOWN_BY_DID = np.array([.2, .35, .5])   # share of callers the CRM does not know, per DID
WITHHELD = .04
RING_GROUP = .2
CACHE_HIT, CACHE_COALESCED = .04, .01
# Per agent, in the order of agents.csv (a longer list repeats): how often their extension
# rings, how often they are signed in, how keen they are on clicking pops, how often they
# start a click-to-call, how many of those from the console, and how often they have their
# mobile rung first (a mobile answers later, and less often, than a desk extension).
AGENT_TRAITS = ((.3, .96, .62, 1.0, .2, .1), (.28, .9, .35, 1.2, .1, .15), (.2, .93, .78, .8, .45, .25),
                (.17, .8, .1, .9, .05, .6), (.05, .97, .45, .3, .6, .05))

OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
POP_STATUS = ("found", "multiple", "not_found", "error", "error", "error")  # by final outcome
ERRORS = (  # code -> (recorded error, http status or -1)
    ("cannot connect to the CRM (ConnectError: [Errno 111] Connection refused)", -1),
    ("CRM answered HTTP 503", 503),
    ("CRM answered HTTP 500", 500),
    ("CRM answered HTTP 502", 502),
    ("STATUS is missing", 200),
    ("answer is not JSON (starts '<!DOCTYPE html><html><head><title>Sign in')", 200),
    (f"no answer within the {DEADLINE_MS} ms deadline", -1),
)
E_CONNECT, E_503, E_500, E_502, E_STATUS, E_HTML, E_DEADLINE = range(len(ERRORS))
DIAL_SOURCES = ("extension", "console", "api")
LEG_A_KINDS = ("extension", "mobile", "home", "number")
DIAL_ERRORS = ("leg_a_no_answer", "leg_a_busy", "leg_b_busy", "leg_b_no_answer", "ended_before_bridge",
               "provider_error", "not_a_number", "rate_limited", "blocked_prefix", "own_number")
REFUSALS = np.array([6, 7, 8, 9])
REFUSAL_WEIGHTS = np.array([.4, .3, .2, .1])
NOT_NUMBERS = ("2024-11-25", "ext. 12", "12345", "#1234", "Tel: --")
BLOCKED = ("+1 900 555 0199", "+44 871 234 5678", "1-900-123-4567", "+972 1900 123 456")


@dataclasses.dataclass
class World:
    """Who calls and who answers: the small dimension tables the generated rows point into."""
    numbers: pa.Table          # idx, raw, e164, outcome (0 found / 1 multiple / 2 not_found), name, company, url, total
    known: int                 # numbers[:known] are contacts, the rest unknown callers
    contact_weights: np.ndarray
    unknown_weights: np.ndarray
    broken: np.ndarray         # bool per number: the CRM's record for it breaks the answer
    agents: pa.Table           # idx, id, extension, leg_mobile, leg_home
    ring_weights: np.ndarray
    online: np.ndarray
    click: np.ndarray
    dial_weights: np.ndarray
    console_share: np.ndarray
    mobile_share: np.ndarray
    leg_b_weights: np.ndarray  # dial targets: contacts and unknown numbers


def build_world(agents: Agents, contacts: Contacts, region: str, rng: np.random.Generator) -> World:
    people = contacts.all()
    if not people:
        raise ValueError("no contacts to build a history from")
    raw, e164, outcome, name, company, url, total = [], [], [], [], [], [], []
    for c in people:
        p = phones.normalise(c.phone, region)
        matches = contacts.by_phone(c.phone)
        # As the network delivers it: national digits at home, E.164 from abroad.
        raw.append(p.national.replace("-", "").replace(" ", "") if p.region == region else (p.e164 or p.digits))
        e164.append(p.e164)
        if len(matches) > 1:
            outcome.append(1)
            name.append(" / ".join(m.name for m in matches[:3]))
            companies = sorted({m.company for m in matches if m.company})
            company.append(companies[0] if len(companies) == 1 else None)
            url.append(f"{BASE_URL}/crm/search?phone={raw[-1]}")
        else:
            outcome.append(0)
            name.append(c.name)
            company.append(c.company or None)
            url.append(f"{BASE_URL}/crm/contacts/{c.id}")
        total.append(len(matches))
    known = len(people)
    # Unknown callers: a pool where a few numbers call again and again (Zipf-like).
    pool = max(200, 20 * known)
    prefixes = rng.choice(np.array([50, 52, 54, 58, 3, 9]), pool, p=[.3, .25, .2, .1, .1, .05])
    subscriber = rng.integers(0, 10 ** 7, pool)
    for pre, sub in zip(prefixes.tolist(), subscriber.tolist()):
        national = f"0{pre}{sub:07d}"
        raw.append(national)
        e164.append("+972" + national[1:])
        outcome.append(2)
        name.append(None)
        company.append(None)
        url.append(f"{BASE_URL}/crm/new?phone={national}")
        total.append(0)
    rank = rng.permutation(known) + 1
    contact_weights = rank ** -0.5
    contact_weights /= contact_weights.sum()
    unknown_weights = (np.arange(pool) + 1.0) ** -0.7
    unknown_weights /= unknown_weights.sum()
    broken = np.zeros(known + pool, dtype=bool)
    broken[rng.choice(known, min(2, known), replace=False)] = True
    numbers = pa.table({"idx": np.arange(known + pool, dtype=np.int32), "raw": raw, "e164": e164,
                        "outcome": np.array(outcome, dtype=np.int8), "name": name, "company": company,
                        "url": url, "total": np.array(total, dtype=np.int32)})

    staff = [a for a in agents if a.extension]
    if not staff:
        raise ValueError("no agent has an extension")
    traits = np.array([AGENT_TRAITS[i % len(AGENT_TRAITS)] for i in range(len(staff))])

    def e164_or_none(text: str) -> str | None:
        return phones.normalise(text, region).e164 if text else None

    agent_table = pa.table({"idx": np.arange(len(staff), dtype=np.int32), "id": [a.id for a in staff],
                            "extension": [a.extension for a in staff],
                            "leg_mobile": [e164_or_none(a.mobile) for a in staff],
                            "leg_home": [e164_or_none(a.home) for a in staff]})
    leg_b = np.concatenate([contact_weights * .75, unknown_weights * .25])
    return World(numbers, known, contact_weights, unknown_weights, broken, agent_table,
                 traits[:, 0] / traits[:, 0].sum(), traits[:, 1], traits[:, 2],
                 traits[:, 3] / traits[:, 3].sum(), traits[:, 4], traits[:, 5], leg_b / leg_b.sum())


# --- time ---------------------------------------------------------------------------------------

def _days(end: dt.date, days: int) -> list[dt.date]:
    return [end - dt.timedelta(days=days - i) for i in range(days)]


def _midnight_utc_us(day: dt.date) -> int:
    """Local midnight of ``day`` as UTC microseconds since the epoch, with the day's noon
    offset (Israel changes clocks at 02:00, when nobody calls)."""
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=zoneinfo.ZoneInfo(LOCAL_TZ))
    offset = noon.utcoffset() or dt.timedelta(0)
    naive = dt.datetime(day.year, day.month, day.day)
    return int(((naive - offset) - dt.datetime(1970, 1, 1)).total_seconds()) * US


def _times(rng: np.random.Generator, days: list[dt.date], counts: np.ndarray, profile_of) -> tuple[np.ndarray, ...]:
    """Start times (UTC µs, sorted), local hour and a load factor (0..~1) for ``counts[i]``
    events on ``days[i]``, spread over the day's hour profile."""
    parts, hours, loads = [], [], []
    peak = HOURS.max()
    for day, n in zip(days, counts.tolist()):
        if n == 0:
            continue
        profile = profile_of(day)
        h = rng.choice(24, n, p=profile / profile.sum())
        within = rng.integers(0, 3600 * US, n)
        t = _midnight_utc_us(day) + h.astype(np.int64) * 3600 * US + within
        order = np.argsort(t, kind="stable")
        parts.append(t[order])
        hours.append(h[order])
        loads.append(np.full(n, WEEKDAYS[day.isoweekday()]) * HOURS[h[order]] / peak
                     if day.isoweekday() != 5 else HOURS_FRIDAY[h[order]] / peak * .6)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(parts), np.concatenate(hours), np.concatenate(loads)


def _call_profile(day: dt.date) -> np.ndarray:
    return HOURS_FRIDAY if day.isoweekday() == 5 else HOURS


def _dial_profile(day: dt.date) -> np.ndarray:
    return DIAL_HOURS * (HOURS_FRIDAY > .2) if day.isoweekday() == 5 else DIAL_HOURS


def _seconds(values: np.ndarray) -> np.ndarray:
    return (values * US).astype(np.int64)


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"))


def _ts_or_null(us: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"), mask=~valid)


# --- inbound calls ------------------------------------------------------------------------------

def _incidents(rng: np.random.Generator, days: list[dt.date]) -> np.ndarray:
    """CRM outages as [start, end) UTC µs rows: about one every ten working days, 10-45 min."""
    out = []
    for day in days:
        if day.isoweekday() in (5, 6) or rng.random() > .1:
            continue
        start = _midnight_utc_us(day) + int(rng.uniform(8.5, 17.5) * 3600 * US)
        out.append((start, start + int(rng.uniform(10, 45) * 60 * US)))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _in(t: np.ndarray, windows: np.ndarray) -> np.ndarray:
    if len(windows) == 0:
        return np.zeros(len(t), dtype=bool)
    i = np.searchsorted(windows[:, 0], t, side="right") - 1
    return (i >= 0) & (t < windows[np.maximum(i, 0), 1])


def calls_batch(rng: np.random.Generator, world: World, t: np.ndarray, load: np.ndarray, first_no: int,
                incidents: np.ndarray) -> dict[str, pa.Table]:
    """Calls starting at ``t`` (UTC µs, sorted) with their events, lookups and pops, as Arrow
    tables of codes that ``_INSERT`` turns into rows."""
    n = len(t)
    n_ext = world.agents.num_rows
    call_no = np.arange(first_no, first_no + n, dtype=np.int64)
    did = rng.choice(len(DIDS), n, p=DID_WEIGHTS)
    withheld = rng.random(n) < WITHHELD
    unknown = rng.random(n) < UNKNOWN_BY_DID[did]
    number = np.where(unknown, world.known + rng.choice(len(world.unknown_weights), n, p=world.unknown_weights),
                      rng.choice(world.known, n, p=world.contact_weights))
    number = np.where(withheld, -1, number)

    # Who rings: one extension, or a ring group of two or three.
    primary = rng.choice(n_ext, n, p=world.ring_weights)
    size = np.where(rng.random(n) < RING_GROUP, 2 + (rng.random(n) < .4), 1) if n_ext > 1 else np.ones(n, int)
    size = np.minimum(size, n_ext)
    r1 = rng.integers(1, max(n_ext, 2), n)
    r2 = rng.integers(1, max(n_ext - 1, 2), n)
    r2 = r2 + (r2 >= r1)
    slots = np.stack([primary, (primary + r1) % n_ext, (primary + r2) % n_ext], axis=1)

    # How the call goes: answered (by one of the rung extensions) or missed.
    answered = rng.random(n) < .8 - .12 * load
    slot = np.where(size > 1, np.minimum((rng.random(n) > .6) * (1 + (rng.random(n) > .6)), size - 1), 0)
    answered_ext = slots[np.arange(n), slot]
    answered_at = t + (rng.uniform(3, 14, n) * US).astype(np.int64)
    ended_at = np.where(answered, answered_at + (rng.lognormal(np.log(90), .8, n) * US).astype(np.int64),
                        t + (rng.uniform(6, 25, n) * US).astype(np.int64))
    ring_end = np.where(answered, answered_at, ended_at)

    calls = pa.table({
        "call_no": call_no, "number": number.astype(np.int32), "did": did.astype(np.int8),
        "started_at": _ts(t), "answered": answered, "answered_at": _ts_or_null(answered_at, answered),
        "ended_at": _ts(ended_at), "ext": primary.astype(np.int32),
        "agent": np.where(answered, answered_ext, primary).astype(np.int32),
        "answered_ext": pa.array(answered_ext.astype(np.int32), mask=~answered)})

    # Events: a ringing per rung extension, an answer, a hangup.
    ring_call = np.repeat(np.arange(n), size)
    ring_slot = np.arange(len(ring_call)) - np.repeat(np.cumsum(size) - size, size)
    ring_ext = slots[ring_call, ring_slot]
    ring_at = t[ring_call] + ring_slot * 40_000
    ev_call = np.concatenate([ring_call, np.flatnonzero(answered), np.arange(n)])
    ev_type = np.concatenate([np.zeros(len(ring_call), np.int8), np.ones(int(answered.sum()), np.int8),
                              np.full(n, 2, np.int8)])
    ev_ext = np.concatenate([ring_ext, answered_ext[answered], np.full(n, -1)])
    ev_at = np.concatenate([ring_at, answered_at[answered], ended_at])
    order = np.argsort(ev_at, kind="stable")
    events = pa.table({"call_no": call_no[ev_call][order], "number": number[ev_call][order].astype(np.int32),
                       "did": did[ev_call][order].astype(np.int8), "type": ev_type[order],
                       "ext": ev_ext[order].astype(np.int32), "occurred_at": _ts(ev_at[order]),
                       "received_at": _ts(ev_at[order] + rng.integers(2_000, 20_000, len(order)))})

    # Lookups: one per call with a number. The CRM slows down with load.
    has = number >= 0
    lk_start = t + rng.integers(3_000, 30_000, n)
    cache_roll = rng.random(n)
    hit = cache_roll < CACHE_HIT
    coalesced = (cache_roll >= CACHE_HIT) & (cache_roll < CACHE_HIT + CACHE_COALESCED)
    base = world.numbers.column("outcome").to_numpy()[np.maximum(number, 0)].astype(np.int8)
    latency = 150 * (1 + 2.2 * load ** 2) * rng.lognormal(0, .5, n)
    slow = rng.random(n) < .012 + .035 * load
    latency = np.where(slow, latency * rng.uniform(3, 12, n), latency)
    outage = _in(t, incidents)
    latency = np.where(outage, latency * 3, latency)
    answer = base.copy()   # what the CRM answered (whenever it did)
    error = np.full(n, -1, np.int8)
    roll = rng.random(n)
    connect = ~hit & outage & (roll < .3)
    down = ~hit & outage & (roll >= .3) & (roll < .6)
    blip = ~hit & ~outage & (roll < .004)
    broken = ~hit & world.broken[np.maximum(number, 0)] & (rng.random(n) < .9) & ~(connect | down | blip)
    html = ~hit & ~outage & (roll >= .004) & (roll < .006) & ~broken
    answer[connect | down | blip] = 4
    answer[broken | html] = 5
    error[connect] = E_CONNECT
    error[down] = E_503
    error[blip] = np.where(rng.random(int(blip.sum())) < .6, E_500, E_502)
    error[broken] = E_STATUS
    error[html] = E_HTML
    latency = np.where(connect, rng.uniform(1, 5, n), latency)
    latency = np.where(hit, rng.uniform(.05, .6, n), latency)
    late = ~hit & (latency > DEADLINE_MS)
    never = late & (latency > LATE_TIMEOUT_MS)
    outcome = np.where(late, 3, answer).astype(np.int8)
    late_outcome = np.where(never, 3, answer).astype(np.int8)
    # A timeout's row says why it timed out; its late answer fills the CRM's fields afterwards.
    row_error = np.where(late, E_DEADLINE, error).astype(np.int8)
    http = np.array([e[1] for e in ERRORS])[np.maximum(error, 0)]
    http = np.where(error >= 0, http, 200)
    http = np.where(never | connect, -1, http)
    contact = (answer <= 2) & ~never  # the answer carried the CRM's fields
    lookups = pa.table({
        "call_no": call_no[has], "number": number[has].astype(np.int32), "did": did[has].astype(np.int8),
        "ext": primary[has].astype(np.int32), "started_at": _ts(lk_start[has]),
        "latency_ms": np.where(late, DEADLINE_MS, latency)[has], "outcome": outcome[has],
        "error": pa.array(row_error[has], mask=(row_error < 0)[has]),
        "http_status": pa.array(http[has].astype(np.int32), mask=(http < 0)[has]),
        "contact": contact[has],
        "cache": np.where(hit, 1, np.where(coalesced, 2, 0))[has].astype(np.int8),
        "late_outcome": pa.array(late_outcome[has], mask=~late[has]),
        "late_latency_ms": pa.array(np.minimum(latency, LATE_TIMEOUT_MS)[has], mask=~late[has])})

    # Pops: one per rung extension's agent, sent when the answer came or at the deadline.
    wait = np.where(has, np.minimum(latency, DEADLINE_MS) * 1000, 0).astype(np.int64)
    m = len(ring_call)
    c = ring_call
    sent_at = lk_start[c] + wait[c] + 500 + ring_slot * 300
    final = np.where(has, answer, 2)[c]  # withheld numbers pop as unknown callers
    late_at = lk_start + (np.minimum(latency, LATE_TIMEOUT_MS) * 1000).astype(np.int64)
    updated = (late & (late_at < ring_end))[c]
    still_pending = late[c] & ~updated
    status = np.where(never[c] & updated, 3, final)
    status = np.where(still_pending, 6, status)  # 6 = pending
    online = rng.random(m) < world.online[ring_ext]
    sessions = online * (1 + (rng.random(m) < .15))
    shown = online & (rng.random(m) < .97)
    shown_at = sent_at + rng.integers(30_000, 400_000, m)
    by_status = np.array([1.0, .8, .25, .05, .05, .05, .3])[status]
    mine = np.where(answered[c], np.where(answered_ext[c] == ring_ext, 1.0, .35), .6)
    clicked = shown & (rng.random(m) < world.click[ring_ext] * by_status * mine)
    clicked_at = shown_at + (rng.lognormal(np.log(4), .7, m) * US).astype(np.int64)
    closed = shown & ~clicked & (rng.random(m) < .35)
    closed_at = shown_at + (rng.uniform(2, 25, m) * US).astype(np.int64)
    pops = pa.table({
        "call_no": call_no[c], "agent": ring_ext.astype(np.int32), "sent_at": _ts(sent_at),
        "status": status.astype(np.int8), "sessions": sessions.astype(np.int32),
        "updated_at": _ts_or_null(late_at[c], updated), "shown_at": _ts_or_null(shown_at, shown),
        "clicked_at": _ts_or_null(clicked_at, clicked), "closed_at": _ts_or_null(closed_at, closed)})
    return {"calls": calls, "events": events, "lookups": lookups, "pops": pops}


# --- click-to-call ------------------------------------------------------------------------------

def dials_batch(rng: np.random.Generator, world: World, t: np.ndarray, hour: np.ndarray, first_no: int,
                incidents: np.ndarray) -> pa.Table:
    n = len(t)
    agent = rng.choice(world.agents.num_rows, n, p=world.dial_weights)
    source = np.where(rng.random(n) < world.console_share[agent], 1, 0)
    source = np.where(rng.random(n) < .05, 2, source)
    kind = rng.choice(np.array([0, 2, 3]), n, p=[.92, .04, .04])
    kind = np.where(rng.random(n) < world.mobile_share[agent], 1, kind)
    has_home = np.array([h is not None for h in world.agents.column("leg_home").to_pylist()])
    kind = np.where((kind == 2) & ~has_home[agent], 1, kind)
    target = rng.choice(len(world.leg_b_weights), n, p=world.leg_b_weights)
    refused = rng.random(n) < .025
    refusal = rng.choice(REFUSALS, n, p=REFUSAL_WEIGHTS)

    ring_a = np.where(kind == 0, rng.uniform(1.5, 4, n), rng.uniform(3, 9, n))
    a_no_answer = rng.random(n) < np.array([.04, .11, .15, .12])[kind]
    a_busy = ~a_no_answer & (rng.random(n) < .015)
    provider_error = rng.random(n) < np.where(_in(t, incidents), .05, .004)
    a_fail = a_no_answer | a_busy | provider_error
    early_hangup = ~a_fail & (rng.random(n) < .025)
    roll = rng.random(n)
    evening = (hour >= 17) | (hour == 13)
    b_busy = ~a_fail & ~early_hangup & (roll < .09)
    b_no_answer = ~a_fail & ~early_hangup & ~b_busy & (roll < .21 + .08 * evening)
    bridged = ~refused & ~a_fail & ~early_hangup & ~b_busy & ~b_no_answer
    error = np.full(n, -1)
    for mask, code in ((a_no_answer, 0), (a_busy, 1), (b_busy, 2), (b_no_answer, 3), (early_hangup, 4),
                       (provider_error, 5)):
        error = np.where(mask & (error < 0), code, error)
    error = np.where(refused, refusal, np.where(bridged, -1, error))

    a_answered = t + (ring_a * US).astype(np.int64)
    ring_b = rng.uniform(2, 8, n)
    bridged_at = a_answered + (ring_b * US).astype(np.int64)
    ended = np.select(
        [provider_error, a_no_answer, a_busy, early_hangup, b_busy, b_no_answer],
        [t + _seconds(rng.uniform(.2, 1, n)), t + 30 * US, t + _seconds(rng.uniform(1, 2, n)),
         a_answered + _seconds(rng.uniform(3, 15, n)), a_answered + _seconds(rng.uniform(2, 5, n)),
         a_answered + 30 * US],
        bridged_at + _seconds(rng.lognormal(np.log(120), .9, n)))
    a_ok = ~refused & ~a_fail
    outcome = np.where(refused, 2, np.where(bridged, 0, 1))
    return pa.table({
        "dial_no": np.arange(first_no, first_no + n, dtype=np.int64), "agent": agent.astype(np.int32),
        "source": source.astype(np.int8), "kind": kind.astype(np.int8), "target": target.astype(np.int32),
        "refusal": pa.array(error.astype(np.int8), mask=~refused), "requested_at": _ts(t),
        "leg_a_answered_at": _ts_or_null(a_answered, a_ok), "bridged_at": _ts_or_null(bridged_at, bridged),
        "ended_at": _ts_or_null(ended, ~refused), "outcome": outcome.astype(np.int8),
        "error": pa.array(error.astype(np.int8), mask=error < 0)})


# --- writing ------------------------------------------------------------------------------------

def _codes(name: str, values: tuple[str, ...], column: str = "name") -> str:
    """A temporary table mapping the codes the batches carry (0, 1, ...) to the text rows hold."""
    rows = ", ".join("({}, '{}')".format(i, v.replace("'", "''")) for i, v in enumerate(values))
    return f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM (VALUES {rows}) v(code, {column});\n"


_DIMENSIONS = (_codes("h_outcomes", OUTCOMES) + _codes("h_pop_status", POP_STATUS + ("pending",))
               + _codes("h_errors", tuple(e for e, _ in ERRORS), "text") + _codes("h_dids", DIDS, "did")
               + _codes("h_event_types", ("ringing", "answered", "hangup"))
               + _codes("h_dial_errors", DIAL_ERRORS))

_INSERT = {
    "calls": """
INSERT INTO calls BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, 'inbound' AS direction,
       coalesce(n.raw, '') AS caller, n.e164 AS caller_e164, d.did AS callee, a.extension AS extension,
       g.id AS agent_id, b.started_at, b.answered_at, b.ended_at,
       CASE WHEN b.answered THEN 'ended' ELSE 'missed' END AS status, 'sim' AS provider,
       x.extension AS answered_by, CASE WHEN b.answered THEN 'normal clearing' ELSE 'caller hung up' END AS hangup_cause
FROM batch b JOIN h_dids d ON d.code = b.did JOIN h_agents a ON a.idx = b.ext JOIN h_agents g ON g.idx = b.agent
LEFT JOIN h_numbers n ON n.idx = b.number LEFT JOIN h_agents x ON x.idx = b.answered_ext""",
    "events": """
INSERT INTO events BY NAME
SELECT 'h:' || md5(printf('hist-%09d|%s|%s', b.call_no, y.name, coalesce(a.extension, ''))) AS event_id,
       printf('hist-%09d', b.call_no) AS call_id, y.name AS type, 'inbound' AS direction,
       coalesce(n.raw, '') AS caller, d.did AS callee, coalesce(a.extension, '') AS extension,
       b.occurred_at, b.received_at, 'sim' AS provider
FROM batch b JOIN h_event_types y ON y.code = b.type JOIN h_dids d ON d.code = b.did
LEFT JOIN h_agents a ON a.idx = b.ext LEFT JOIN h_numbers n ON n.idx = b.number""",
    "lookups": f"""
INSERT INTO lookups BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, n.raw AS phone, n.e164 AS phone_e164, b.started_at,
       b.latency_ms, o.name AS outcome, b.http_status,
       CASE WHEN b.contact THEN n.total END AS total,
       CASE WHEN b.contact THEN n.name END AS client_name, CASE WHEN b.contact THEN n.company END AS company,
       CASE WHEN b.contact THEN n.url END AS url, e.text AS error,
       CASE b.cache WHEN 1 THEN 'hit' WHEN 2 THEN 'coalesced' ELSE 'miss' END AS cache,
       {DEADLINE_MS} AS deadline_ms, l.name AS late_outcome, b.late_latency_ms,
       a.extension AS extension, d.did AS did
FROM batch b JOIN h_numbers n ON n.idx = b.number JOIN h_outcomes o ON o.code = b.outcome
JOIN h_dids d ON d.code = b.did JOIN h_agents a ON a.idx = b.ext
LEFT JOIN h_errors e ON e.code = b.error LEFT JOIN h_outcomes l ON l.code = b.late_outcome""",
    "pops": """
INSERT INTO pops BY NAME
SELECT printf('hist-%09d', b.call_no) AS call_id, a.id AS agent_id, a.extension AS extension, b.sent_at,
       s.name AS status, b.sessions, b.updated_at, b.shown_at, b.clicked_at, b.closed_at
FROM batch b JOIN h_agents a ON a.idx = b.agent JOIN h_pop_status s ON s.code = b.status""",
    "dials": """
INSERT INTO dials BY NAME
SELECT printf('dhist%011d', b.dial_no) AS dial_id, a.id AS agent_id,
       ['extension', 'console', 'api'][b.source + 1] AS source,
       CASE WHEN b.outcome = 2 THEN NULL WHEN b.kind = 0 THEN a.extension WHEN b.kind = 1 THEN a.leg_mobile
            WHEN b.kind = 2 THEN a.leg_home
            ELSE '+9725' || lpad(CAST(b.target % 100000000 AS VARCHAR), 8, '0') END AS leg_a,
       ['extension', 'mobile', 'home', 'number'][b.kind + 1] AS leg_a_kind,
       CASE e.name WHEN 'not_a_number' THEN $not_numbers[1 + b.target % len($not_numbers)]
                   WHEN 'blocked_prefix' THEN $blocked[1 + b.target % len($blocked)]
                   WHEN 'own_number' THEN a.leg_mobile
                   ELSE n.raw END AS leg_b,
       CASE WHEN b.outcome = 2 THEN NULL ELSE n.e164 END AS leg_b_e164,
       b.requested_at, b.leg_a_answered_at, b.bridged_at, b.ended_at,
       ['bridged', 'failed', 'refused'][b.outcome + 1] AS outcome, e.name AS error, 'sim' AS provider
FROM batch b JOIN h_agents a ON a.idx = b.agent JOIN h_numbers n ON n.idx = b.target
LEFT JOIN h_dial_errors e ON e.code = b.error""",
}


@dataclasses.dataclass
class Summary:
    rows: dict[str, int]
    seconds: float
    first: dt.datetime | None
    last: dt.datetime | None

    def __str__(self) -> str:
        counts = ", ".join(f"{v:,} {k}" for k, v in self.rows.items())
        span = f" ({self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC)" if self.first else ""
        return f"{counts} in {self.seconds:.1f} s{span}"


def fill(con: duckdb.DuckDBPyConnection, *, days: int = 30, calls_per_day: float = 2000, seed: int = 1,
         end: dt.date | None = None, agents: Agents, contacts: Contacts, region: str = "IL",
         events: bool = True, progress: Callable[[str], None] | None = None) -> Summary:
    """Write ``days`` days of history ending at local midnight of ``end`` (default: today) into
    ``con`` (whose tables follow data/schema.sql). ``calls_per_day`` is the average over all
    days, so about ``days * calls_per_day`` inbound calls are made."""
    started = time.perf_counter()
    end = end or dt.datetime.now(zoneinfo.ZoneInfo(LOCAL_TZ)).date()
    con.execute(SCHEMA.read_text(encoding="utf-8"))
    rng = np.random.default_rng([seed, 0])
    world = build_world(agents, contacts, region, rng)
    con.register("h_numbers_arrow", world.numbers)
    con.register("h_agents_arrow", world.agents)
    con.execute("CREATE OR REPLACE TEMP TABLE h_numbers AS SELECT * FROM h_numbers_arrow; "
                "CREATE OR REPLACE TEMP TABLE h_agents AS SELECT * FROM h_agents_arrow;" + _DIMENSIONS)
    con.unregister("h_numbers_arrow")
    con.unregister("h_agents_arrow")

    day_list = _days(end, days)
    weights = np.array([WEEKDAYS[d.isoweekday()] for d in day_list])
    per_day = calls_per_day * len(day_list) / weights.sum() * weights * rng.gamma(50, 1 / 50, len(day_list))
    calls_per = rng.poisson(per_day)
    dials_per = rng.poisson(per_day * DIALS_PER_CALL)
    incidents = _incidents(rng, day_list)
    rows = dict.fromkeys(("calls", "events", "lookups", "pops", "dials", "rejects"), 0)
    chunk_days = max(1, int(600_000 // max(calls_per_day, 1)))
    call_no = dial_no = 1
    tables = ("calls", "events", "lookups", "pops") if events else ("calls", "lookups", "pops")
    for k, i in enumerate(range(0, len(day_list), chunk_days)):
        crng = np.random.default_rng([seed, 1, k])
        span = slice(i, i + chunk_days)
        t, _, load = _times(crng, day_list[span], calls_per[span], _call_profile)
        batches = calls_batch(crng, world, t, load, call_no, incidents)
        call_no += len(t)
        td, hd, _ = _times(crng, day_list[span], dials_per[span], _dial_profile)
        batches["dials"] = dials_batch(crng, world, td, hd, dial_no, incidents)
        dial_no += len(td)
        con.execute("BEGIN")
        for table in (*tables, "dials"):
            con.register("batch", batches[table])
            params = {"not_numbers": list(NOT_NUMBERS), "blocked": list(BLOCKED)} if table == "dials" else None
            con.execute(_INSERT[table], params)
            con.unregister("batch")
            rows[table] += batches[table].num_rows
        con.execute("COMMIT")
        if progress:
            progress(f"{day_list[span][-1]}: {call_no - 1:,} calls, {dial_no - 1:,} dials")
    rows["rejects"] = _rejects(con, np.random.default_rng([seed, 2]), day_list)
    span_t = con.execute("SELECT min(started_at), max(started_at) FROM calls").fetchone()
    return Summary(rows, time.perf_counter() - started, span_t[0], span_t[1])


def _rejects(con: duckdb.DuckDBPyConnection, rng: np.random.Generator, days: list[dt.date]) -> int:
    """A few refused inputs a day, as the hub records them."""
    kinds = (("/api/events", "unknown_extension", "call ext-test ringing at 299"),
             ("/ws", "unauthorized", "unknown token"),
             ("/api/events", "invalid_request", "type: Input should be 'ringing', 'answered' or 'hangup'"),
             ("/api/dial", "unauthorized", "missing token"))
    rows = []
    for day in days:
        for _ in range(rng.poisson(2)):
            source, reason, detail = kinds[rng.integers(len(kinds))]
            at = _midnight_utc_us(day) + int(rng.uniform(7, 19) * 3600 * US)
            rows.append((np.datetime64(at, "us").astype(dt.datetime), source, reason, detail))
    if rows:
        con.executemany("INSERT INTO rejects (logged_at, source, reason, detail) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def generate(db_path: str | Path, *, replace: bool = False, agents_csv: str | Path = data_file("agents.csv"),
             contacts_csv: str | Path = data_file("contacts.csv"), region: str = "IL", **options) -> Summary:
    """Create ``db_path`` filled with history (see ``fill`` for the options). Refuses a file that
    already holds calls unless ``replace``; a file the hub holds open cannot be written at all."""
    path = Path(db_path)
    if path.exists() and replace:
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as e:
        raise RuntimeError(f"cannot open {path} for writing (is the hub running on it? stop it first): {e}") from None
    try:
        con.execute(SCHEMA.read_text(encoding="utf-8"))
        if con.execute("SELECT count(*) FROM calls").fetchone()[0]:
            raise RuntimeError(f"{path} already holds calls; use --replace to start it afresh")
        summary = fill(con, agents=Agents.from_csv(agents_csv), contacts=Contacts.from_csv(contacts_csv, region),
                       region=region, **options)
        con.execute("CHECKPOINT")
        return summary
    finally:
        con.close()
