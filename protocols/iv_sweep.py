"""I-V sweep: a quasi-static staircase on one cell, current measured at every step.

Each step is a `Pulse` of the step's voltage held for `dwell` seconds; the backend measures the
current during it. A bipolar sweep 0 -> +v_max -> 0 -> v_min -> 0 traces the switching loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import BiasScheme, Cell, FloatArray, PulseResult
from xbarlab.messages import Plan, Pulse


def staircase(v_max: float, v_min: float, step: float) -> FloatArray:
    """Voltages of a bipolar sweep 0 -> v_max -> 0 -> v_min -> 0 in steps of `step` (V)."""
    if step <= 0 or v_max < 0 or v_min > 0:
        raise ValueError("need step > 0, v_max >= 0 and v_min <= 0")
    up = np.arange(0.0, v_max + step / 2, step)
    down = np.arange(0.0, v_min - step / 2, -step)
    return np.concatenate([up, up[-2::-1], down[1:], down[-2::-1]])


@dataclass(frozen=True, slots=True)
class IVCurve:
    """Applied voltages (V) and measured currents (A) of a sweep, in order."""

    cell: Cell
    voltages: FloatArray
    currents: FloatArray


def iv_sweep(
    cell: Cell,
    v_max: float = 1.5,
    v_min: float = -1.5,
    step: float = 0.05,
    dwell: float = 1e-3,
    scheme: BiasScheme = BiasScheme.HALF,
) -> Plan:
    """Sweep `cell` through `staircase(v_max, v_min, step)`; returns an `IVCurve`."""
    volts = staircase(v_max, v_min, step)
    currents = np.empty(len(volts))
    for i, v in enumerate(volts):
        if v == 0.0:
            currents[i] = 0.0
            continue
        r: PulseResult = yield Pulse(cell, float(v), dwell, scheme, tag="iv_step")
        currents[i] = r.current
    return IVCurve((int(cell[0]), int(cell[1])), volts, currents)
