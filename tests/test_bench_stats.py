"""The bench's verdict on the latency target: the interval from resampling paired slices, and
the words the report puts on it. Pure functions, no servers."""

import numpy as np
import pytest

from bench.__main__ import latency_verdict
from bench.stats import overhead_interval


def slices(rng, n, size, shift=0.0):
    return [list(rng.exponential(3.0, size) + 1.0 + shift) for _ in range(n)]


def test_a_real_overhead_lies_inside_the_interval_and_far_from_none():
    rng = np.random.default_rng(7)
    base = slices(rng, 12, 400)
    hub = [[x + 5.0 for x in s] for s in base]  # the same pops, each 5 ms later
    assert overhead_interval(hub, base) == pytest.approx((5.0, 5.0))
    low, high = overhead_interval(slices(rng, 12, 400, shift=5.0), slices(rng, 12, 400))
    assert 2.0 < low < 5.0 < high < 9.0


def test_two_servers_alike_get_an_interval_around_zero_and_fewer_pops_a_wider_one():
    rng = np.random.default_rng(11)
    many = overhead_interval(slices(rng, 12, 500), slices(rng, 12, 500))
    few = overhead_interval(slices(rng, 6, 50), slices(rng, 6, 50))
    assert many[0] < 0.0 < many[1] and few[0] < 0.0 < few[1]
    assert few[1] - few[0] > 2 * (many[1] - many[0])


def test_one_noisy_slice_widens_the_interval():
    rng = np.random.default_rng(3)
    hub, base = slices(rng, 12, 200), slices(rng, 12, 200)
    quiet = overhead_interval(hub, base)
    hub[4] = [x + 40.0 for x in hub[4]]  # a spell that hit one hub slice only
    noisy = overhead_interval(hub, base)
    assert noisy[1] - noisy[0] > 2 * (quiet[1] - quiet[0])


def test_slices_must_come_in_pairs():
    with pytest.raises(ValueError):
        overhead_interval([[1.0]], [[1.0], [2.0]])


@pytest.mark.parametrize("overhead, interval, rate, words", [
    (0.5, [-1.0, 1.5], 20, "< 2 ms: met, clear"),
    (0.5, [-3.0, 4.0], 20, "< 2 ms: met, within the noise"),
    (6.0, [2.5, 9.0], 200, "< 2 ms: **missed**, clear"),
    (6.0, None, 200, "< 2 ms: **missed**"),  # a results file from before the interval
    (6.0, [2.5, 9.0], 1000, "–"),  # no target above 200/s
])
def test_the_verdict_says_whether_the_run_could_tell(overhead, interval, rate, words):
    cell = {"rate": rate, "overhead_p99_ms": overhead, "hub": {"sustained": True}}
    if interval:
        cell["overhead_p99_interval_ms"] = interval
    assert latency_verdict(cell) == words
