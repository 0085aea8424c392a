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
