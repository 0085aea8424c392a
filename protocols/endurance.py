"""Endurance: SET/RESET cycling, LRS and HRS read every k cycles, until the window fails.

A check (every `read_every` cycles, and after the last) reads the cell after the SET (G_on)
and after the RESET (G_off) of that cycle. The check fails as "stuck" when G_on and G_off lie
within `stuck_tolerance` of each other (the cell no longer switches), as "window collapse"
when G_on / G_off falls below `min_ratio`. `fail_after` consecutive failing checks end the
cell's test with that failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xbarlab.crossbar import Cell, ReadResult
from xbarlab.messages import Checkpoint, Plan, Pulse, Read
from xbarlab.protocol_configs import EnduranceConfig
from xbarlab.protocols.common import as_cell


@dataclass(frozen=True, slots=True)
class EnduranceOutcome:
    cell: Cell
    cycles: int  # cycles applied
    failed: str  # "" (survived), "stuck" or "window collapse"
    checks: list[tuple[int, float, float]]  # (cycle, G_on, G_off) S


def check_failure(g_on: float, g_off: float, cfg: EnduranceConfig) -> str:
    """"stuck", "window collapse" or "" for one LRS/HRS pair."""
    lo = min(g_on, g_off)
    if abs(g_on - g_off) <= cfg.stuck_tolerance * lo:
        return "stuck"
    if lo <= 0 or g_on / lo < cfg.min_ratio or g_on < g_off:
        return "window collapse"
    return ""


def endurance(cell: Cell, cfg: EnduranceConfig, index: int = 0, total: int = 1) -> Plan:
    """Cycle `cell`; returns an `EnduranceOutcome`."""
    cell = as_cell(cell)
    checks: list[tuple[int, float, float]] = []
    failing, last_fail = 0, ""
    for n in range(1, cfg.cycles + 1):
        check = n % cfg.read_every == 0 or n == cfg.cycles
        yield Pulse(cell, cfg.set_voltage, cfg.width, cfg.pulse_scheme, tag="cycle_set")
        g_on = 0.0
        if check:
            r: ReadResult = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="read_lrs")
            g_on = float(r.conductances[0])
        yield Pulse(cell, cfg.reset_voltage, cfg.width, cfg.pulse_scheme, tag="cycle_reset")
        if not check:
            continue
        r = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="read_hrs")
        g_off = float(r.conductances[0])
        checks.append((n, g_on, g_off))
        fail = check_failure(g_on, g_off, cfg)
        failing = failing + 1 if fail else 0
        last_fail = fail or last_fail
        yield Checkpoint("endurance_check", {
            "progress": (index * cfg.cycles + n, total * cfg.cycles), "cell": cell, "cycle": n,
            "g_on": g_on, "g_off": g_off, "failure": fail,
        })
        if failing >= cfg.fail_after:
            return EnduranceOutcome(cell, n, last_fail, checks)
    return EnduranceOutcome(cell, cfg.cycles, "", checks)


def endurance_cells(cells: Sequence[Cell], cfg: EnduranceConfig) -> Plan:
    """`endurance` on each cell; returns the list of `EnduranceOutcome`."""
    out: list[EnduranceOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from endurance(cell, cfg, k, len(cells))
        out.append(o)
        yield Checkpoint("cell_done", {"cell": o.cell, "cycles": o.cycles, "failed": o.failed,
                                       "converged": not o.failed})
    return out
