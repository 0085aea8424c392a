"""Empirical half-select disturb: the measured per-k statistics instead of the physics.

`tio2-sherbrooke-2023` holds, for k = the number of devices programmed after a device in the
same array, the measured distribution of that device's conductance change (quantiles). This
module offers it two ways:

- `later_programmings(shape, order)` and `sample_disturb` (re-exported from presets): k per cell
  of a whole-array programming and one draw of the disturb, for statistical transfer models;
- `EmpiricalDisturbDevices`: wraps a physical device array so that a pulse acts only on the
  selected device (the one seeing the largest |V|) and every device already programmed moves
  to ``G_programmed + Q_k(u)`` when a new device's programming starts, with ``Q_k`` the measured
  quantile function at its current k and ``u ~ U(0, 1)`` drawn once per device (so the
  disturb is a consistent path whose marginal at every k is the measured one). The biasing
  scheme then plays no part: the scheme behind the measurements is not documented.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.crossbar import Cell, FloatArray
from xbarlab.sim.presets import DisturbStats, load_statistical_preset, sample_disturb
from xbarlab.sim.tio2 import TiO2Devices

__all__ = [
    "EmpiricalDisturbDevices", "empirical_stats", "later_programmings", "quantile_at",
    "sample_disturb",
]

EMPIRICAL_PRESET = "tio2-sherbrooke-2023"


def empirical_stats() -> DisturbStats:
    """The measured per-k disturb statistics (preset tio2-sherbrooke-2023)."""
    return load_statistical_preset(EMPIRICAL_PRESET).disturb


def later_programmings(shape: tuple[int, int], order: str) -> np.ndarray:
    """k per cell when every cell of `shape` is programmed once in `order`
    ("row-major" or "column-major"): the first cell has k = M N - 1, the last k = 0."""
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be >= (1, 1), got {shape}")
    idx = np.arange(rows * cols)
    if order == "row-major":
        position = idx.reshape(rows, cols)
    elif order == "column-major":
        position = idx.reshape(cols, rows).T
    else:
        raise ValueError(f"unknown programming order {order!r}: use 'row-major' or 'column-major'")
    return np.asarray(rows * cols - 1 - position, dtype=np.int64)


def quantile_at(stats: DisturbStats, k: np.ndarray, u: np.ndarray) -> FloatArray:
    """Q_k(u): the measured disturb (S) at quantile level `u` for each k (0 for k = 0; k beyond
    the table uses the largest tabulated k)."""
    k = np.asarray(k, dtype=np.int64)
    table_k = np.asarray(stats.k, dtype=np.int64)
    q = np.asarray(stats.quantiles, dtype=np.float64)
    levels = np.asarray(stats.quantile_levels, dtype=np.float64)
    row = np.clip(np.searchsorted(table_k, k, side="right") - 1, 0, len(table_k) - 1)
    j = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, len(levels) - 2)
    frac = (u - levels[j]) / (levels[j + 1] - levels[j])
    out = q[row, j] + frac * (q[row, j + 1] - q[row, j])
    return np.asarray(np.where(k == 0, 0.0, out), dtype=np.float64)


class EmpiricalDisturbDevices:
    """A `TiO2Devices` array whose half-select disturb follows the measured statistics."""

    def __init__(self, inner: TiO2Devices, stats: DisturbStats, rng: np.random.Generator) -> None:
        self.inner = inner
        self.stats = stats
        shape = inner.shape
        self._u = rng.random(shape)
        self._k = np.zeros(shape, dtype=np.int64)
        self._done = np.zeros(shape, dtype=bool)
        self._g_done = np.zeros(shape)  # read conductance when each device was finished
        self._current: Cell | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    @property
    def g(self) -> FloatArray:
        return self.inner.g

    @property
    def linear(self) -> bool:
        return self.inner.linear

    @property
    def iv(self) -> Any:
        return self.inner.iv

    @property
    def stuck(self) -> np.ndarray:
        return self.inner.stuck

    @property
    def k(self) -> np.ndarray:
        """Number of programmings started after each finished device (0 for the others)."""
        return self._k.copy()

    def current(self, v: FloatArray) -> FloatArray:
        return self.inner.current(v)

    def conductance(self, v: FloatArray) -> FloatArray:
        return self.inner.conductance(v)

    def read_noise(self, currents: FloatArray, rng: np.random.Generator) -> FloatArray:
        return self.inner.read_noise(currents, rng)

    def apply_voltage(self, v: FloatArray, width: float, rng: np.random.Generator) -> None:
        """Pulse the selected device only; a newly selected device starts a programming."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != self.shape:
            raise ValueError(f"voltage map has shape {v.shape}, the array is {self.shape}")
        flat = int(np.argmax(np.abs(v)))
        sel = (flat // self.shape[1], flat % self.shape[1])
        if v[sel] == 0:
            return
        if sel != self._current:
            self._start_programming(sel)
        only = np.zeros(self.shape)
        only[sel] = v[sel]
        self.inner.apply_voltage(only, width, rng)

    def advance(self, seconds: float) -> None:
        """Device time passes (retention, relaxation): as in the inner array."""
        self.inner.advance(seconds)

    def _start_programming(self, cell: Cell) -> None:
        if self._current is not None and not self._done[self._current]:
            prev = self._current
            self._done[prev] = True
            self._g_done[prev] = self.inner.g[prev]
        self._current = cell
        if self._done[cell]:  # reprogramming a finished device starts its count afresh
            self._done[cell] = False
            self._k[cell] = 0
        moved = self._done.copy()
        self._k[moved] += 1
        g_read = self._g_done + quantile_at(self.stats, self._k, self._u)
        self.inner.set_g(np.where(moved, np.maximum(g_read, 1e-9), 1.0), moved)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "disturb": "empirical (tio2-sherbrooke-2023 per-k)"}
