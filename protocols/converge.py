"""Converge to state: write-verify of cells to one target, by amplitude or by width ramps.

Amplitude ramps are the write-verify of `xbarlab.protocols.write_verify` (ISPP). Width ramps
keep the amplitude at `set_start` / `reset_start` and multiply the width by `width_factor` on
each consecutive pulse of one polarity (back to `width` when the polarity changes), up to
`width_max`. Both read after every pulse, take the polarity from the sign of (target - G),
and give up after `max_pulses`, after more than `max_reversals` polarity reversals, or after
`max_pulses_at_limit` pulses at the largest setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import Cell, ReadResult
from xbarlab.messages import Plan, Pulse, Read
from xbarlab.protocol_configs import ConvergeConfig
from xbarlab.protocols.common import as_cell, cell_done
from xbarlab.protocols.write_verify import WriteVerifyOutcome, write_verify


def write_verify_params(cfg: ConvergeConfig) -> WriteVerifyParams:
    """The write-verify parameters of an amplitude-ramp converge config."""
    return WriteVerifyParams(
        v_read=cfg.v_read, read_scheme=cfg.read_scheme, pulse_scheme=cfg.pulse_scheme,
        set_start=cfg.set_start, set_max=cfg.set_max, reset_start=cfg.reset_start,
        reset_min=cfg.reset_min, step=cfg.step, width=cfg.width, tolerance=cfg.tolerance,
        max_pulses=cfg.max_pulses, max_reversals=cfg.max_reversals,
        max_pulses_at_limit=cfg.max_pulses_at_limit,
    )


def converge_width(cell: Cell, target: float, cfg: ConvergeConfig) -> Plan:
    """Width-ramp write-verify of `cell` to `target` (S); returns a `WriteVerifyOutcome`."""
    cell = as_cell(cell)
    width = cfg.width
    n_pulses = n_rev = at_limit = 0
    last = 0
    while True:
        r: ReadResult = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="verify")
        g = float(r.conductances[0])
        if abs(g - target) <= cfg.tolerance * target:
            return WriteVerifyOutcome(cell, target, g, True, n_pulses, n_rev, "converged")
        if n_pulses >= cfg.max_pulses:
            return WriteVerifyOutcome(cell, target, g, False, n_pulses, n_rev,
                                      f"{cfg.max_pulses} pulses spent")
        polarity = 1 if g < target else -1
        if last and polarity != last:
            n_rev += 1
            width = cfg.width
            if n_rev > cfg.max_reversals:
                return WriteVerifyOutcome(cell, target, g, False, n_pulses, n_rev,
                                          f"more than {cfg.max_reversals} polarity reversals")
        last = polarity
        at_limit = at_limit + 1 if width >= cfg.width_max else 0
        if at_limit > cfg.max_pulses_at_limit:
            return WriteVerifyOutcome(cell, target, g, False, n_pulses, n_rev,
                                      f"stuck: {cfg.max_pulses_at_limit} pulses at "
                                      f"{cfg.width_max:.3g} s moved it no further")
        v = cfg.set_start if polarity > 0 else cfg.reset_start
        yield Pulse(cell, v, width, cfg.pulse_scheme, tag="set" if polarity > 0 else "reset")
        n_pulses += 1
        width = min(width * cfg.width_factor, cfg.width_max)


def converge_cells(cells: Sequence[Cell], cfg: ConvergeConfig) -> Plan:
    """Converge each of `cells` to `cfg.target`; returns the list of `WriteVerifyOutcome`."""
    params = write_verify_params(cfg) if cfg.ramp == "amplitude" else None
    out: list[WriteVerifyOutcome] = []
    for k, cell in enumerate(cells):
        if params is not None:
            o = yield from write_verify(cell, cfg.target, params)
        else:
            o = yield from converge_width(cell, cfg.target, cfg)
        out.append(o)
        yield cell_done(k + 1, len(cells), o.cell, converged=o.converged, n_pulses=o.n_pulses,
                        g_final=o.g_final, target=o.target, reason=o.reason)
    return out
