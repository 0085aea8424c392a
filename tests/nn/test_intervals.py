"""95 % Student t confidence intervals over seeds, against scipy.stats and a textbook value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from xbarlab.nn.intervals import t_interval


@pytest.mark.parametrize("values", [[0.72, 0.75, 0.61], [0.1, 0.2, 0.15, 0.4, 0.33, 0.05],
                                    list(np.linspace(0.6, 0.8, 10))])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    ci = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                              scale=stats.sem(values))
    assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-12)
    assert ci.mean == pytest.approx(np.mean(values)) and ci.n == len(values)


def test_t_interval_textbook_three_seeds() -> None:
    # t_{0.975, 2} = 4.303 (tables); values 1, 2, 3: s = 1, half width 4.303 / sqrt(3)
    ci = t_interval([1.0, 2.0, 3.0])
    assert ci.half_width == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert "[" in ci.pct()


def test_one_seed_has_no_interval_and_empty_is_refused() -> None:
    ci = t_interval([0.7])
    assert math.isnan(ci.low) and "no CI" in ci.pct()
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=1.5)


def test_bootstrap_interval_over_chips_shrinks_with_more_chips() -> None:
    from xbarlab.nn.intervals import bootstrap_share_interval

    rng = np.random.default_rng(0)
    p_point = rng.uniform(0.9, 1.0, 300)  # per-point probability of being right on a chip
    widths = []
    for n in (20, 200, 2000):
        correct = rng.random((n, 300)) < p_point
        iv = bootstrap_share_interval(correct, rng=np.random.default_rng(1))
        assert iv.low <= iv.mean <= iv.high and iv.n == n
        widths.append(iv.high - iv.low)
    assert widths[0] > widths[1] > widths[2]
    # large N: the share converges to the share of points whose p >= 0.95
    assert abs(iv.mean - np.mean(p_point >= 0.95)) < 0.05
    assert np.isnan(bootstrap_share_interval(np.ones((1, 3), bool)).low)
