"""tests.support.stats, what the benchmarks' verdicts rest on: percentiles, the paired difference
and the interval from resampling paired slices, and the words a verdict puts on them. Pure
functions, no servers."""

import math

import numpy as np
import pytest

from tests.support.stats import difference_interval, nearest_rank, paired_difference, percentile, verdict


def slices(rng, n, size, shift=0.0):
    return [list(rng.exponential(3.0, size) + 1.0 + shift) for _ in range(n)]


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert nearest_rank([7.0], 99) == 7.0
    assert math.isnan(percentile([], 99))


def test_a_real_difference_lies_inside_the_interval_and_far_from_none():
    rng = np.random.default_rng(7)
    base = slices(rng, 12, 400)
    hub = [[x + 5.0 for x in s] for s in base]  # the same pops, each 5 ms later
    assert difference_interval(hub, base) == pytest.approx((5.0, 5.0))
    assert paired_difference(hub, base) == pytest.approx(5.0)
    low, high = difference_interval(slices(rng, 12, 400, shift=5.0), slices(rng, 12, 400))
    assert 2.0 < low < 5.0 < high < 9.0


def test_two_servers_alike_get_an_interval_around_zero_and_fewer_pops_a_wider_one():
    rng = np.random.default_rng(11)
    many = difference_interval(slices(rng, 12, 500), slices(rng, 12, 500))
    few = difference_interval(slices(rng, 6, 50), slices(rng, 6, 50))
    assert many[0] < 0.0 < many[1] and few[0] < 0.0 < few[1]
    assert few[1] - few[0] > 2 * (many[1] - many[0])


def test_one_noisy_slice_widens_the_interval_but_moves_the_paired_difference_little():
    rng = np.random.default_rng(3)
    hub, base = slices(rng, 12, 200), slices(rng, 12, 200)
    quiet, quiet_paired = difference_interval(hub, base), paired_difference(hub, base)
    hub[4] = [x + 40.0 for x in hub[4]]  # a spell that hit one hub slice only
    noisy = difference_interval(hub, base)
    assert noisy[1] - noisy[0] > 2 * (quiet[1] - quiet[0])
    assert abs(paired_difference(hub, base) - quiet_paired) < 3.0


def test_slices_must_come_in_pairs():
    with pytest.raises(ValueError):
        difference_interval([[1.0]], [[1.0], [2.0]])
    with pytest.raises(ValueError):
        paired_difference([], [])


@pytest.mark.parametrize("value, interval, words", [
    (0.5, [-1.0, 1.5], "met, clear"),
    (0.5, [-3.0, 6.0], "met, within the noise"),
    (6.0, [5.5, 9.0], "**missed**, clear"),
    (6.0, None, "**missed**"),
])
def test_the_verdict_says_whether_the_run_could_tell(value, interval, words):
    assert verdict(value, 5.0, interval) == words
