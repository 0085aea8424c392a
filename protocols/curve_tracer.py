"""Curve tracer: I-V loops of a cell, staircase or pulsed, several cycles, both polarities.

One cycle visits 0 -> v_pos -> 0 -> v_neg -> 0 (or the negative branch first) in steps of
`v_step`. Staircase: each step is held for `width` and the current during it is the I-V point
("read at bias"). Pulsed: each step is a pulse of `width` followed by `interpulse` at 0 V.
`read_at` "v_read" (or "both") adds a read at the read voltage after every step, which traces
the state (G at v_read) against the applied voltage. Steps at exactly 0 V apply nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import Cell, FloatArray, PulseResult, ReadResult
from xbarlab.messages import Checkpoint, Plan, Pulse, Read, Wait
from xbarlab.protocol_configs import CurveTracerConfig
from xbarlab.protocols.common import as_cell


def branch(v_end: float, step: float) -> FloatArray:
    """0 -> v_end -> 0 in steps of `step` (both ends included once)."""
    if v_end == 0:
        return np.zeros(1)
    n = int(np.floor(abs(v_end) / step + 1e-9))
    up = np.sign(v_end) * step * np.arange(0, n + 1)
    if abs(up[-1]) < abs(v_end) - 1e-12:
        up = np.append(up, v_end)
    return np.concatenate([up, up[-2::-1]])


def loop_voltages(cfg: CurveTracerConfig) -> FloatArray:
    """The voltages of one cycle, in order."""
    first, second = (cfg.v_pos, cfg.v_neg) if cfg.order == "pos_first" else (cfg.v_neg, cfg.v_pos)
    return np.concatenate([branch(first, cfg.v_step), branch(second, cfg.v_step)[1:]])


@dataclass(frozen=True, slots=True)
class CurveOutcome:
    cell: Cell
    voltages: FloatArray  # (cycles, S) V
    currents: FloatArray  # (cycles, S) A at bias (NaN where not measured)
    g_read: FloatArray  # (cycles, S) S at v_read after each step (NaN where not read)


def curve_tracer(cell: Cell, cfg: CurveTracerConfig, index: int = 0, total: int = 1) -> Plan:
    """Trace `cfg.cycles` I-V loops of `cell`; returns a `CurveOutcome`."""
    cell = as_cell(cell)
    volts = loop_voltages(cfg)
    cur = np.full((cfg.cycles, len(volts)), np.nan)
    g = np.full((cfg.cycles, len(volts)), np.nan)
    for k in range(cfg.cycles):
        for j, v in enumerate(volts):
            if v != 0.0:
                p: PulseResult = yield Pulse(cell, float(v), cfg.width, cfg.pulse_scheme,
                                             tag="iv_step")
                cur[k, j] = p.current if cfg.read_at in ("bias", "both") else np.nan
                if cfg.mode == "pulsed" and cfg.interpulse > 0:
                    yield Wait(cfg.interpulse, tag="interpulse")
            else:
                cur[k, j] = 0.0 if cfg.read_at in ("bias", "both") else np.nan
            if cfg.read_at in ("v_read", "both"):
                r: ReadResult = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="iv_read")
                g[k, j] = float(r.conductances[0])
        yield Checkpoint("cycle_done", {"progress": (index * cfg.cycles + k + 1,
                                                     total * cfg.cycles),
                                        "cell": cell, "cycle": k + 1})
    return CurveOutcome(cell, np.tile(volts, (cfg.cycles, 1)), cur, g)


def curve_tracer_cells(cells: Sequence[Cell], cfg: CurveTracerConfig) -> Plan:
    """`curve_tracer` on each cell; returns the list of `CurveOutcome`."""
    out: list[CurveOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from curve_tracer(cell, cfg, k, len(cells))
        out.append(o)
        yield Checkpoint("cell_done", {"cell": o.cell, "converged": True})
    return out
