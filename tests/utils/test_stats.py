"""pfgraph.utils.stats over seeds: the t interval of a mean, paired differences, pooled spread, F ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pfgraph.utils.stats import paired_difference, pooled_std, t_interval, t_quantile, variance_ratio_interval


def test_t_interval_of_three_seeds_is_0_757_standard_deviations() -> None:
    """1, 2, 3: mean 2, s = 1; the 68 % interval for the mean is 2 +- t(0.84, 2) / sqrt(3)."""
    t = t_interval([1.0, 2.0, 3.0])
    assert t["n"] == 3 and t["mean"] == pytest.approx(2.0) and t["std"] == pytest.approx(1.0)
    assert t["t"] == pytest.approx(1.3116, abs=1e-4)
    assert t["hi"] - t["mean"] == pytest.approx(0.7572, abs=1e-4) and t["mean"] - t["lo"] == pytest.approx(0.7572, abs=1e-4)


def test_t_quantile_with_one_degree_of_freedom_is_the_cauchy_quantile() -> None:
    """Student t with 1 dof is the Cauchy distribution: its quantile is tan(pi (p - 1/2)), p = 0.84."""
    assert t_quantile(2) == pytest.approx(math.tan(math.pi * 0.34), rel=1e-9)
    # many values: the normal quantile (0.9945 at 84 %)
    assert t_quantile(10_000) == pytest.approx(0.99446, abs=1e-3)


def test_t_interval_needs_two_finite_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0, math.nan])


def test_paired_difference_resolves_what_the_two_intervals_do_not() -> None:
    """Seed effects shared by both models cancel in the differences."""
    a = {1: 1.00, 2: 2.00, 3: 3.00}
    b = {1: 1.10, 2: 2.09, 3: 3.11}
    ia, ib = t_interval(list(a.values())), t_interval(list(b.values()))
    assert ia["hi"] > ib["lo"]  # the means' intervals overlap
    d = paired_difference(a, b)
    assert d is not None and d["seeds"] == [1, 2, 3]
    assert d["mean"] == pytest.approx(-0.1) and d["hi"] < 0  # a is lower, resolved
    assert d["std"] == pytest.approx(np.std([-0.10, -0.09, -0.11], ddof=1))


def test_paired_difference_uses_common_seeds_only() -> None:
    assert paired_difference({1: 1.0, 2: 2.0}, {2: 1.0, 3: 0.5}) is None  # one seed in common
    d = paired_difference({1: 1.0, 2: 2.0, 4: 9.0}, {1: 0.5, 2: 1.0, 3: 7.0})
    assert d is not None and d["seeds"] == [1, 2] and d["mean"] == pytest.approx(0.75)


def test_pooled_std_weights_by_degrees_of_freedom() -> None:
    s, dof = pooled_std([[1.0, 2.0, 3.0], [10.0, 12.0], [5.0]])  # sums of squares 2 and 2, dof 2 + 1
    assert dof == 3 and s == pytest.approx(math.sqrt(4.0 / 3.0))
    assert pooled_std([[1.0], [2.0]]) is None


def test_variance_ratio_interval() -> None:
    ratio, lo, hi = variance_ratio_interval(1.0, 3, 1.0, 3)
    assert ratio == pytest.approx(1.0) and lo < 1.0 < hi
    ratio, lo, hi = variance_ratio_interval(0.01, 10, 1.0, 10)  # a far steadier than b
    assert ratio == pytest.approx(1e-4) and hi < 1.0
