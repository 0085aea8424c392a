"""The seed paper's statistical model of ex-situ transfer, vectorised over N transfers.

Each programmed device of target conductance G ends at

    G' = G * (1 + o) + G * s(G) * e + d_k        (healthy device)
    G' = G_stuck                                  (stuck device)

- tuning imprecision of write-verify: e ~ N(0, 1), s(G) = (a * G[uS] + b) / 100;
- per-device systematic offset: o ~ N(mean, std) / 100, drawn per device and transfer;
- biasing-scheme disturb: d_k drawn from the measured distribution for k = number of devices
  of the same array programmed after it (inverse CDF of the per-k quantiles; k = 0: no disturb);
- stuck devices: with probability lrs_rate stuck at LRS, G ~ N(lrs_mean, lrs_std), with
  probability hrs_rate stuck at HRS, G ~ U(hrs_low, hrs_high).

The random parts do not depend on the targets, so they are drawn once (`draw`) and applied to
any targets (`apply`): the hardware-aware training draws them in blocks and the evaluation of
N transfers is one array expression. numpy only.

Differences to the authors' code: their disturb sampling replaces draws beyond 4 std of the
per-k set by +60 uS (our data are clipped at +-40 uS at the source and used as they are), and
their k of the first device of a tensor is the tensor size instead of size - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray, IntArray
from xbarlab.sim.presets import (
    DisturbStats,
    StatisticalPreset,
    load_statistical_preset,
    sample_disturb,
)

DEFAULT_PRESET = "tio2-sherbrooke-2023"


@dataclass(frozen=True)
class TransferModel:
    """Transfer statistics (a `StatisticalPreset`) and which effects are switched on."""

    stats: StatisticalPreset
    tuning: bool = True
    offset: bool = True
    disturb: bool = True
    stuck: bool = True

    @classmethod
    def from_preset(cls, name: str = DEFAULT_PRESET, **switches: bool) -> TransferModel:
        """The model of a named statistical preset, e.g. ``tio2-sherbrooke-2023``."""
        return cls(load_statistical_preset(name), **switches)

    @property
    def g_min(self) -> float:
        return self.stats.window.g_min

    @property
    def g_max(self) -> float:
        return self.stats.window.g_max

    def only(self, **switches: bool) -> TransferModel:
        """A copy with some effects switched on or off."""
        return replace(self, **switches)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {
            "preset": self.stats.name,
            "tuning": self.tuning,
            "offset": self.offset,
            "disturb": self.disturb,
            "stuck": self.stuck,
        }


@dataclass(frozen=True)
class TransferDraw:
    """Random parts of N transfers of D devices (arrays of shape (N, D))."""

    offset: FloatArray  # relative systematic offset o
    eps: FloatArray  # standard normal of the tuning imprecision
    delta: FloatArray  # S, disturb
    stuck_g: FloatArray  # S where stuck, NaN where healthy

    @property
    def n(self) -> int:
        return int(self.eps.shape[0])

    @property
    def stuck(self) -> np.ndarray:
        """(N, D) bool, True where the device is stuck."""
        return ~np.isnan(self.stuck_g)

    def take(self, i: int | slice) -> TransferDraw:
        """Transfers `i` (kept 2-D)."""
        s = slice(i, i + 1) if isinstance(i, int) else i
        return TransferDraw(self.offset[s], self.eps[s], self.delta[s], self.stuck_g[s])


def draw(model: TransferModel, k: IntArray, n: int, rng: np.random.Generator) -> TransferDraw:
    """Random parts of `n` transfers of the devices whose later-programming counts are `k`."""
    k = np.asarray(k, dtype=np.int64)
    if k.ndim != 1:
        raise ValueError(f"k must be a flat vector of devices, got shape {k.shape}")
    if n < 1:
        raise ValueError(f"number of transfers must be >= 1, got {n}")
    shape = (int(n), k.size)
    s = model.stats
    if model.offset:
        offset = (s.offset.mean_pct + s.offset.std_pct * rng.standard_normal(shape)) / 100.0
    else:
        offset = np.zeros(shape)
    eps = rng.standard_normal(shape) if model.tuning else np.zeros(shape)
    delta = (
        sample_disturb(s.disturb, np.broadcast_to(k, (int(n), np.size(k))), rng)
        if model.disturb else np.zeros(shape)
    )
    if model.stuck:
        _, stuck_g = s.stuck.draw(shape, rng)
    else:
        stuck_g = np.full(shape, np.nan)
    return TransferDraw(offset, eps, delta, stuck_g)


def tuning_std(model: TransferModel, targets: FloatArray) -> FloatArray:
    """Relative std of the tuning imprecision at `targets` (S), as a fraction (not %)."""
    t = model.stats.tuning
    return (t.slope_pct_per_uS * np.asarray(targets) * 1e6 + t.intercept_pct) / 100.0


def apply(model: TransferModel, targets: FloatArray, d: TransferDraw) -> FloatArray:
    """Programmed conductances (N, D) for `targets` ((D,) or (N, D), S) under draw `d`."""
    g = np.asarray(targets, dtype=np.float64)
    healthy = g * (1.0 + d.offset) + g * tuning_std(model, g) * d.eps + d.delta
    return np.where(np.isnan(d.stuck_g), healthy, d.stuck_g)


def transfer(
    model: TransferModel, targets: FloatArray, k: IntArray, n: int, rng: np.random.Generator
) -> FloatArray:
    """`n` simulated transfers of `targets` (D,) with later-programming counts `k` (D,)."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != np.shape(k):
        raise ValueError(f"targets {targets.shape} and k {np.shape(k)} must have the same shape")
    return apply(model, targets, draw(model, k, n, rng))


def transfer_std(model: TransferModel, targets: FloatArray, k: IntArray) -> FloatArray:
    """Analytic std (S) of a healthy device's programmed conductance (tuning, offset, disturb);
    the disturb part is that of the tabulated quantiles that are sampled."""
    g = np.asarray(targets, dtype=np.float64)
    var = np.zeros_like(g)
    if model.tuning:
        var += (g * tuning_std(model, g)) ** 2
    if model.offset:
        var += (g * model.stats.offset.std_pct / 100.0) ** 2
    if model.disturb:
        st = model.stats.disturb
        idx = np.clip(np.searchsorted(st.k, np.asarray(k), side="right") - 1, 0, len(st.k) - 1)
        var += np.where(np.asarray(k) > 0, _quantile_variance(st)[idx], 0.0)
    return np.sqrt(var)


def _quantile_variance(stats: DisturbStats) -> FloatArray:
    """Variance per tabulated k of the distribution `sample_disturb` draws from: the
    piecewise-linear inverse CDF makes each quantile interval a uniform segment."""
    q = np.asarray(stats.quantiles, dtype=np.float64)
    w = np.diff(np.asarray(stats.quantile_levels, dtype=np.float64))
    a, b = q[:, :-1], q[:, 1:]
    m1 = (w * (a + b) / 2).sum(axis=1)
    m2 = (w * (a * a + a * b + b * b) / 3).sum(axis=1)
    return np.maximum(m2 - m1 * m1, 0.0)
