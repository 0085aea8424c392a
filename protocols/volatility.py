"""Volatility read: a pulse, then reads on a log-spaced time grid, repeated.

Measures how much of a pulse's change relaxes and how fast: `retained` is the share of the
first post-pulse change still there at the last read; `tau` the time at which the change has
relaxed by 1 - 1/e of its relaxing part (NaN if it never does within the reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import Cell, FloatArray, ReadResult
from xbarlab.messages import Checkpoint, Plan, Pulse, Read, Wait, WaitResult
from xbarlab.protocol_configs import VolatilityConfig
from xbarlab.protocols.common import as_cell


@dataclass(frozen=True, slots=True)
class VolatilityOutcome:
    cell: Cell
    g_before: FloatArray  # (repeats,) S
    times: FloatArray  # (repeats, P) s after the pulse
    g: FloatArray  # (repeats, P) S

    @property
    def retained(self) -> FloatArray:
        """(repeats,) share of the first post-pulse change left at the last read."""
        d0 = self.g[:, 0] - self.g_before
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((self.g[:, -1] - self.g_before) / d0)

    @property
    def tau(self) -> FloatArray:
        """(repeats,) time (s) at which the relaxing part fell to 1/e; NaN if it did not."""
        out = np.full(len(self.g), np.nan)
        for k, (t, g) in enumerate(zip(self.times, self.g, strict=True)):
            span = g[0] - g[-1]
            if abs(span) <= 0:
                continue
            left = (g - g[-1]) / span
            below = np.flatnonzero(left <= 1 / np.e)
            if len(below):
                out[k] = t[below[0]]
        return out


def volatility(cell: Cell, cfg: VolatilityConfig, index: int = 0, total: int = 1) -> Plan:
    """Pulse `cell` and follow its relaxation; returns a `VolatilityOutcome`."""
    cell = as_cell(cell)
    grid = np.geomspace(cfg.first, cfg.duration, cfg.points)
    before, times, gs = [], [], []
    for k in range(cfg.repeats):
        r: ReadResult = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="vol_before")
        before.append(float(r.conductances[0]))
        yield Pulse(cell, cfg.voltage, cfg.width, cfg.pulse_scheme, tag="vol_pulse")
        w: WaitResult = yield Wait(0.0, tag="vol_wait")
        clock0, clock = w.clock, w.clock
        t_row, g_row = [], []
        for t in grid:
            w = yield Wait(max(0.0, float(t) - (clock - clock0)), tag="vol_wait")
            clock = w.clock
            r = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="vol_read")
            t_row.append(clock - clock0)
            g_row.append(float(r.conductances[0]))
        times.append(t_row)
        gs.append(g_row)
        yield Checkpoint("repeat_done", {"progress": (index * cfg.repeats + k + 1,
                                                      total * cfg.repeats),
                                         "cell": cell, "repeat": k + 1})
    return VolatilityOutcome(cell, np.array(before), np.array(times), np.array(gs))


def volatility_cells(cells: Sequence[Cell], cfg: VolatilityConfig) -> Plan:
    """`volatility` on each cell; returns the list of `VolatilityOutcome`."""
    out: list[VolatilityOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from volatility(cell, cfg, k, len(cells))
        out.append(o)
        yield Checkpoint("cell_done", {"cell": o.cell, "retained": o.retained.tolist(),
                                       "tau": o.tau.tolist(), "converged": True})
    return out
