"""Pulse planning from the configured device model: the voltage that moves a device to a
target in one pulse, and the device's own offset learned from what each pulse did.

The law is the TiO2 compact model of `xbarlab.sim.tio2` (per polarity a rate
s(V) = a (exp(|V|/t) - 1) and a bound r(V) = r0 + r1 |V|, exact closed form over a pulse of
constant voltage), with the numbers of the session's device preset: on a bench, the preset
its calibration wrote. A device differs from the preset by its own rate and threshold
(device-to-device spread): both show as a shift `delta` of the voltage it responds to
(|V| -> |V| - delta), which `offset_of` infers from one pulse's observed effect. Nothing here
looks at a simulated device: the inputs are conductances the verify reads estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray

_V_GRID = np.linspace(0.2, 3.0, 141)  # |V| on the device (20 mV steps, interpolated)
_DELTA_GRID = np.linspace(-0.6, 0.6, 121)  # voltage offsets (10 mV steps, interpolated)


@dataclass(frozen=True, slots=True)
class Switching:
    """One polarity of the law: rate s(|V|) = a (exp(|V|/t) - 1) 1/(ohm s), bound
    r(|V|) = r0 + r1 |V| ohm (SET moves R down to it, RESET up to it)."""

    a: float
    t: float
    r0: float
    r1: float


@dataclass(frozen=True, slots=True)
class PulseLaw:
    """A device's response to one pulse: R = `k_read` / G, R within [`r_on`, `r_off`]."""

    k_read: float
    r_on: float
    r_off: float
    set: Switching
    reset: Switching

    @classmethod
    def of_preset(cls, preset: Any) -> PulseLaw:
        """The law of a compact device preset (`xbarlab.sim.presets.CompactPreset`)."""
        a, b, v = preset.iv.a, preset.iv.b, preset.v_read
        k_read = float(a * np.sinh(b * v) / v)
        pols = [Switching(float(p.a), float(p.t), float(p.r0), float(p.r1))
                for p in (preset.set, preset.reset)]
        return cls(k_read, float(preset.r_on), float(preset.r_off), pols[0], pols[1])

    def after(self, g: float, v: FloatArray | float, width: float,
              delta: FloatArray | float = 0.0) -> FloatArray:
        """Conductance (S) after one pulse of device voltage `v` (signed, V) held `width` s
        on a device at `g` (S) that responds to |V| - `delta` (broadcasts over v, delta)."""
        v = np.asarray(v, dtype=np.float64)
        setting = bool(np.all(v >= 0))
        pol = self.set if setting else self.reset
        v_eff = np.clip(np.abs(v) - np.asarray(delta, dtype=np.float64), 0.0, None)
        rate = pol.a * np.expm1(v_eff / pol.t)
        bound = pol.r0 + pol.r1 * v_eff
        r = self.k_read / g
        u0 = r - bound
        active = (u0 > 0) if setting else (u0 < 0)
        moved = np.where(active, bound + u0 / (1.0 + rate * np.abs(u0) * width), r)
        return np.asarray(self.k_read / np.clip(moved, self.r_on, self.r_off), dtype=np.float64)

    def voltage_for(self, g: float, g_aim: float, width: float, delta: float,
                    v_cap: float) -> float:
        """Signed device voltage (V) of the pulse the law says moves `g` to `g_aim` (S),
        capped at |v_cap|: SET (positive) to raise G, RESET (negative) to lower it."""
        sign = 1.0 if g_aim > g else -1.0
        cap = abs(v_cap)
        grid = _V_GRID[cap >= _V_GRID]
        if grid.size == 0:
            return sign * cap
        got = self.after(g, sign * grid, width, delta)
        reach = got >= g_aim if sign > 0 else got <= g_aim  # monotone in |V|
        if not reach.any():
            return sign * cap
        k = int(np.argmax(reach))
        if k == 0:
            return sign * float(grid[0])
        lo, hi = got[k - 1], got[k]  # interpolate between the bracketing grid points
        frac = (g_aim - lo) / (hi - lo) if hi != lo else 1.0
        return sign * float(grid[k - 1] + frac * (grid[k] - grid[k - 1]))

    def offset_of(self, g0: float, g1: float, v: float, width: float) -> float | None:
        """The offset `delta` (V) under which the law moves `g0` to `g1` with device voltage
        `v`; None if the pulse moved G the wrong way (noise, or beyond the bound)."""
        if v == 0 or (g1 - g0) * v <= 0:
            return None
        got = self.after(g0, np.full(_DELTA_GRID.shape, v), width, _DELTA_GRID)
        # G moves less as delta grows: |got - g0| falls along the grid
        change = np.abs(got - g0)
        want = abs(g1 - g0)
        if want >= change[0]:
            return float(_DELTA_GRID[0])
        if want <= change[-1]:
            return float(_DELTA_GRID[-1])
        k = int(np.argmax(change <= want))
        lo, hi = change[k - 1], change[k]
        frac = (lo - want) / (lo - hi) if lo != hi else 1.0
        return float(_DELTA_GRID[k - 1] + frac * (_DELTA_GRID[k] - _DELTA_GRID[k - 1]))
