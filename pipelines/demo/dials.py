"""Click-to-calls of the generated history: who dials whom, and how each one ends."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .timeline import during, seconds_us, ts, ts_or_null
from .world import REFUSAL_WEIGHTS, REFUSALS, US, World


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
    provider_error = rng.random(n) < np.where(during(t, incidents), .05, .004)
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
        [t + seconds_us(rng.uniform(.2, 1, n)), t + 30 * US, t + seconds_us(rng.uniform(1, 2, n)),
         a_answered + seconds_us(rng.uniform(3, 15, n)), a_answered + seconds_us(rng.uniform(2, 5, n)),
         a_answered + 30 * US],
        bridged_at + seconds_us(rng.lognormal(np.log(120), .9, n)))
    a_ok = ~refused & ~a_fail
    outcome = np.where(refused, 2, np.where(bridged, 0, 1))
    return pa.table({
        "dial_no": np.arange(first_no, first_no + n, dtype=np.int64), "agent": agent.astype(np.int32),
        "source": source.astype(np.int8), "kind": kind.astype(np.int8), "target": target.astype(np.int32),
        "refusal": pa.array(error.astype(np.int8), mask=~refused), "requested_at": ts(t),
        "leg_a_answered_at": ts_or_null(a_answered, a_ok), "bridged_at": ts_or_null(bridged_at, bridged),
        "ended_at": ts_or_null(ended, ~refused), "outcome": outcome.astype(np.int8),
        "error": pa.array(error.astype(np.int8), mask=error < 0)})
