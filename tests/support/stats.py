"""Percentiles and how far a difference between two servers can be trusted.

A benchmark cell runs the hub and the baseline in alternating slices, so a noisy spell of the
shared machine lands on one *pair* of slices. Two figures come of that:

- the *paired* difference: the median over the pairs of (hub's percentile − baseline's), which
  one bad slice moves by one place only;
- a 95 % *interval* of the pooled difference: whole pairs resampled with replacement, each side's
  pooled percentile taken every time. Where the interval lies wholly on one side of a target the
  run could tell; where it spans the target, it could not.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

import numpy as np


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of values already sorted, at least one."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    return nearest_rank(sorted(values), q) if len(values) else math.nan


def paired_difference(a_slices: list[list[float]], b_slices: list[list[float]], q: float = 99) -> float:
    """Median over the pairs of slices of percentile ``q`` of a's slice minus b's."""
    if len(a_slices) != len(b_slices) or not a_slices:
        raise ValueError("one b slice per a slice, at least one")
    return statistics.median(percentile(a, q) - percentile(b, q) for a, b in zip(a_slices, b_slices))


def difference_interval(a_slices: list[list[float]], b_slices: list[list[float]], q: float = 99,
                        level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(low, high): the ``level`` bootstrap interval of a's pooled percentile ``q`` minus b's,
    resampling the pairs of slices run side by side."""
    if len(a_slices) != len(b_slices) or not a_slices:
        raise ValueError("one b slice per a slice, at least one")
    rng = np.random.default_rng(seed)
    a = [np.asarray(s, dtype=float) for s in a_slices]
    b = [np.asarray(s, dtype=float) for s in b_slices]
    n = len(a)
    diffs = np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, n, n)
        diffs[i] = (nearest_rank(np.sort(np.concatenate([a[j] for j in pick])), q)
                    - nearest_rank(np.sort(np.concatenate([b[j] for j in pick])), q))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def verdict(value: float, limit: float, interval: tuple[float, float] | list[float] | None = None) -> str:
    """Words for "``value`` stays below ``limit``": met or **missed**, and with an interval,
    whether the run could tell (clear) or not (within the noise)."""
    words = "met" if value < limit else "**missed**"
    if interval:
        low, high = interval
        words += ", clear" if high < limit or low >= limit else ", within the noise"
    return words
