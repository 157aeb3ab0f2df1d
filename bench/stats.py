"""How far a cell's overhead can be trusted: a bootstrap over the measurement's paired slices.

An interleaved cell runs the hub and the baseline in alternating slices, so a noisy spell of the
shared machine lands on one pair of slices. Resampling whole pairs (with replacement, the pairing
kept) and taking the pooled percentile of each side every time gives the spread the overhead
would have had with other spells: a 95 % interval that says whether a cell met or missed its
target, or could not tell.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of values already sorted, at least one."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def overhead_interval(hub_slices: list[list[float]], baseline_slices: list[list[float]], q: float = 99,
                      level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(low, high): the ``level`` bootstrap interval of pooled percentile ``q`` of the hub minus
    that of the baseline, resampling the pairs of slices run side by side."""
    if len(hub_slices) != len(baseline_slices) or not hub_slices:
        raise ValueError("one baseline slice per hub slice, at least one")
    rng = np.random.default_rng(seed)
    hub = [np.asarray(s, dtype=float) for s in hub_slices]
    base = [np.asarray(s, dtype=float) for s in baseline_slices]
    n = len(hub)
    diffs = np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, n, n)
        diffs[i] = (nearest_rank(np.sort(np.concatenate([hub[j] for j in pick])), q)
                    - nearest_rank(np.sort(np.concatenate([base[j] for j in pick])), q))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)
