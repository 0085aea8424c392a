"""Multi-state seeker: how many distinguishable conductance levels a cell holds.

Per cell: RESET to the bottom of the window (`reset_pulses` at `reset_voltage`), read the
starting level, then raise the SET amplitude step by step (`pulses_per_level` pulses each),
reading `trailer_reads` times after each step. A step's mean read becomes a new level when it
differs from the last accepted level by more than `n_sigma` times their combined read spread
and by more than `tolerance` (relative). Reported: the levels (mean and spread), the smallest
separation between neighbours, and that separation in units of the largest spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import Cell, FloatArray
from xbarlab.messages import Plan, Pulse
from xbarlab.protocol_configs import MultiStateConfig
from xbarlab.protocols.common import as_cell, cell_done, read_cell


@dataclass(frozen=True, slots=True)
class MultiStateOutcome:
    cell: Cell
    levels: FloatArray  # (L,) S, mean read of each level, increasing
    spreads: FloatArray  # (L,) S, read std of each level
    voltages: FloatArray  # (L,) V, SET amplitude that reached each level (0: the RESET level)
    n_pulses: int

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def min_separation(self) -> float:
        """Smallest gap between neighbouring levels (S); NaN with fewer than two levels."""
        return float(np.diff(self.levels).min()) if len(self.levels) > 1 else float("nan")

    @property
    def separation_in_spreads(self) -> float:
        """min_separation / the largest level spread (NaN if undefined)."""
        s = float(self.spreads.max()) if len(self.spreads) else 0.0
        return self.min_separation / s if s > 0 else float("nan")


def distinct(mean: float, std: float, ref: float, ref_std: float, cfg: MultiStateConfig) -> bool:
    """Whether a level (mean, std) is distinguishable from the reference level."""
    gap = abs(mean - ref)
    return gap > cfg.n_sigma * np.hypot(std, ref_std) and gap > cfg.tolerance * ref


def multistate(cell: Cell, cfg: MultiStateConfig) -> Plan:
    """Seek the levels of `cell`; returns a `MultiStateOutcome`."""
    cell = as_cell(cell)
    for _ in range(cfg.reset_pulses):
        yield Pulse(cell, cfg.reset_voltage, cfg.width, cfg.pulse_scheme, tag="ms_reset")
    mean, std = yield from read_cell(cell, cfg.v_read, cfg.read_scheme, "ms_read",
                                     cfg.trailer_reads)
    levels, spreads, volts = [mean], [std], [0.0]
    n = cfg.reset_pulses
    n_steps = int(np.floor((cfg.v_max - cfg.v_start) / cfg.v_step + 1e-9)) + 1
    for k in range(n_steps):
        v = round(cfg.v_start + k * cfg.v_step, 12)
        for _ in range(cfg.pulses_per_level):
            yield Pulse(cell, v, cfg.width, cfg.pulse_scheme, tag="ms_set")
            n += 1
        mean, std = yield from read_cell(cell, cfg.v_read, cfg.read_scheme, "ms_read",
                                         cfg.trailer_reads)
        if mean > levels[-1] and distinct(mean, std, levels[-1], spreads[-1], cfg):
            levels.append(mean)
            spreads.append(std)
            volts.append(v)
    return MultiStateOutcome(cell, np.array(levels), np.array(spreads), np.array(volts), n)


def multistate_cells(cells: Sequence[Cell], cfg: MultiStateConfig) -> Plan:
    """`multistate` on each cell; returns the list of `MultiStateOutcome`."""
    out: list[MultiStateOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from multistate(cell, cfg)
        out.append(o)
        yield cell_done(k + 1, len(cells), o.cell, levels=o.levels.tolist(),
                        spreads=o.spreads.tolist(), voltages=o.voltages.tolist(),
                        n_levels=o.n_levels, n_pulses=o.n_pulses, g_final=float(o.levels[-1]),
                        converged=o.n_levels > 1)
    return out
