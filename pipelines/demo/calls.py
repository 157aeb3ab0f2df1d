"""Inbound calls of the generated history: each call with its events, its CRM lookup (slower at
peak, failing in outages) and the pops its agents got, as Arrow tables of codes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..providers.sim import DIDS  # the simulated PBX's numbers: the history rings the same
from .timeline import during, ts, ts_or_null
from .world import (CACHE_COALESCED, CACHE_HIT, DEADLINE_MS, DID_WEIGHTS, E_500, E_502, E_503, E_CONNECT,
                    E_DEADLINE, E_HTML, E_STATUS, ERRORS, LATE_TIMEOUT_MS, RING_GROUP, UNKNOWN_BY_DID, US, WITHHELD,
                    World)


def calls_batch(rng: np.random.Generator, world: World, t: np.ndarray, load: np.ndarray, first_no: int,
                incidents: np.ndarray) -> dict[str, pa.Table]:
    """Calls starting at ``t`` (UTC µs, sorted) with their events, lookups and pops, as Arrow
    tables of codes that ``history._INSERT`` turns into rows."""
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
        "started_at": ts(t), "answered": answered, "answered_at": ts_or_null(answered_at, answered),
        "ended_at": ts(ended_at), "ext": primary.astype(np.int32),
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
                       "ext": ev_ext[order].astype(np.int32), "occurred_at": ts(ev_at[order]),
                       "received_at": ts(ev_at[order] + rng.integers(2_000, 20_000, len(order)))})

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
    outage = during(t, incidents)
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
        "ext": primary[has].astype(np.int32), "started_at": ts(lk_start[has]),
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
        "call_no": call_no[c], "agent": ring_ext.astype(np.int32), "sent_at": ts(sent_at),
        "status": status.astype(np.int8), "sessions": sessions.astype(np.int32),
        "updated_at": ts_or_null(late_at[c], updated), "shown_at": ts_or_null(shown_at, shown),
        "clicked_at": ts_or_null(clicked_at, clicked), "closed_at": ts_or_null(closed_at, closed)})
    return {"calls": calls, "events": events, "lookups": lookups, "pops": pops}
