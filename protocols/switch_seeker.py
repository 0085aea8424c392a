"""Switch seeker: which polarity switches a cell, and from what amplitude.

Per cell: trailer reads give the reference conductance; pulses of growing amplitude
(v_start, v_start + v_step, ... v_max) of one polarity follow, each with trailer reads, until
the mean read leaves the tolerance band around the reference; the amplitude and the direction
of that change are recorded; then the same with the other polarity (starting from the state the
first ramp left). A cell whose positive ramp raised G and whose negative ramp lowered it
switches with the usual polarity (+ SET, - RESET).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import Cell
from xbarlab.messages import Plan, Pulse
from xbarlab.protocol_configs import SwitchSeekerConfig
from xbarlab.protocols.common import as_cell, cell_done, read_cell


@dataclass(frozen=True, slots=True)
class RampResult:
    """One polarity's ramp: the amplitude that switched the cell (None: none did)."""

    threshold: float | None  # V, signed
    direction: int  # +1 G rose, -1 G fell, 0 no switch
    g_before: float  # S
    g_after: float  # S
    n_pulses: int


@dataclass(frozen=True, slots=True)
class SwitchOutcome:
    cell: Cell
    positive: RampResult
    negative: RampResult

    @property
    def polarity(self) -> str:
        """"normal" (+ raises G, - lowers it), "inverted", or "none" / "partial"."""
        p, n = self.positive.direction, self.negative.direction
        if p > 0 and n < 0:
            return "normal"
        if p < 0 and n > 0:
            return "inverted"
        return "none" if p == n == 0 else "partial"


def _ramp(cell: Cell, sign: int, cfg: SwitchSeekerConfig, g_ref: float) -> Plan:
    n_steps = int(np.floor((cfg.v_max - cfg.v_start) / cfg.v_step + 1e-9)) + 1
    g = g_ref
    for k in range(n_steps):
        v = sign * round(cfg.v_start + k * cfg.v_step, 12)
        yield Pulse(cell, v, cfg.width, cfg.pulse_scheme, tag="seek_pulse")
        g, _ = yield from read_cell(cell, cfg.v_read, cfg.read_scheme, "seek_read",
                                    cfg.trailer_reads)
        if abs(g - g_ref) > cfg.tolerance * g_ref:
            return RampResult(v, 1 if g > g_ref else -1, g_ref, g, k + 1)
    return RampResult(None, 0, g_ref, g, n_steps)


def switch_seeker(cell: Cell, cfg: SwitchSeekerConfig) -> Plan:
    """Seek the switching polarity and thresholds of `cell`; returns a `SwitchOutcome`."""
    cell = as_cell(cell)
    g0, _ = yield from read_cell(cell, cfg.v_read, cfg.read_scheme, "seek_read",
                                 cfg.trailer_reads)
    pos = yield from _ramp(cell, +1, cfg, g0)
    neg = yield from _ramp(cell, -1, cfg, pos.g_after)
    return SwitchOutcome(cell, pos, neg)


def switch_seeker_cells(cells: Sequence[Cell], cfg: SwitchSeekerConfig) -> Plan:
    """`switch_seeker` on each cell; returns the list of `SwitchOutcome`."""
    out: list[SwitchOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from switch_seeker(cell, cfg)
        out.append(o)
        yield cell_done(k + 1, len(cells), o.cell, polarity=o.polarity,
                        v_set=o.positive.threshold, v_reset=o.negative.threshold,
                        n_pulses=o.positive.n_pulses + o.negative.n_pulses,
                        g_final=o.negative.g_after, converged=o.polarity == "normal")
    return out
