"""Confidence intervals over training seeds (Student t), for the reproduction's figures.

Each seed gives one value of a figure (a network trained and evaluated over N transfers); the
seeds are treated as independent draws, so the 95 % interval of the mean is the Student
t-interval  mean +- t_{0.975, n-1} * s / sqrt(n)  with s the sample standard deviation
(ddof = 1). It covers the spread between trained networks and, through each seed's value, the
finite number of transfers. One seed gives no interval (NaN bounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean of per-seed values with its two-sided t confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def pct(self) -> str:
        """'72.5 % [68.1, 76.9]' (values as fractions shown in %), or '72.5 % (1 seed)'.
        Shares: the bounds are shown clipped to [0, 100] %."""
        if self.n < 2:
            return f"{100 * self.mean:.1f} % ({self.n} seed, no CI)"
        lo, hi = max(self.low, 0.0), min(self.high, 1.0)
        return f"{100 * self.mean:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval:
    """Student t-interval of the mean of `values` at confidence `level`."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no values: a confidence interval needs at least one seed")
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    mean = float(v.mean())
    n = int(v.size)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, level)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def bootstrap_share_interval(
    correct: np.ndarray,
    threshold: float = 0.95,
    level: float = LEVEL,
    n_boot: int = 2000,
    rng: np.random.Generator | None = None,
) -> Interval:
    """Share of points correct in >= `threshold` of the transfers (rows of the (N, P) bool
    matrix `correct`, e.g. N programmed chips), with a percentile bootstrap interval over
    the rows: the chips are resampled with replacement (one network, so no seed spread;
    what the interval covers is the finite number of chips)."""
    c = np.asarray(correct, dtype=np.float64)
    if c.ndim != 2 or c.size == 0:
        raise ValueError(f"correct must be a non-empty (transfers, points) matrix, got {c.shape}")
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    n = c.shape[0]
    share = float(np.mean(c.mean(axis=0) >= threshold))
    if n < 2:
        return Interval(share, math.nan, math.nan, n, level)
    rng = rng or np.random.default_rng(0)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # (B, N) resample counts
    boot = ((weights @ c) / n >= threshold).mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(share, float(lo), float(hi), n, level)
