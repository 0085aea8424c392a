"""Forming: pulses of growing amplitude (and/or width) until a pristine cell conducts.

`forming` is the simple amplitude ramp on one cell; `form_cells` runs the configurable ramps
of `FormingConfig` (amplitude, width, or every width at each amplitude, several pulses per
step, a wait between pulses) over a list of cells, stopping each at a G (or R) threshold or at
a compliance hit, and reports the device voltage after the series-resistance drop.

Read after every pulse; stop once the read conductance exceeds `g_formed`, or fail when the
amplitude reaches `v_max` without forming. Current compliance during the pulses is the bench's
(`BenchLimits.compliance`), which is what protects a cell at the moment it forms: a pulse or a
read that hits it means the cell conducts, so it counts as formed (and no further, larger pulse
follows). Amplitudes are computed from the pulse index (``v_start + k * v_step``, rounded to
1 nV), never by summing steps, so ``v_max`` is reached exactly and never overshot by rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import BiasScheme, Cell, PulseResult, ReadResult
from xbarlab.messages import Plan, Pulse, Read, Wait
from xbarlab.protocol_configs import FormingConfig
from xbarlab.protocols.common import cell_done


@dataclass(frozen=True, slots=True)
class FormingOutcome:
    cell: Cell
    formed: bool
    v_formed: float | None  # V, amplitude of the pulse that formed the cell
    g_final: float  # S
    n_pulses: int
    compliance: bool = False  # formed as shown by a compliance trip (pulse or read)


def forming(
    cell: Cell,
    g_formed: float = 50e-6,
    v_start: float = 1.5,
    v_step: float = 0.1,
    v_max: float = 3.0,
    width: float = 1e-4,
    v_read: float = 0.2,
    scheme: BiasScheme = BiasScheme.HALF,
) -> Plan:
    """Form `cell`; returns a `FormingOutcome`."""
    if not 0 < v_start <= v_max or v_step <= 0 or g_formed <= 0:
        raise ValueError("need 0 < v_start <= v_max, v_step > 0 and g_formed > 0")
    cell = (int(cell[0]), int(cell[1]))
    amplitudes = forming_amplitudes(v_start, v_step, v_max)
    r: ReadResult = yield Read((cell,), v_read, BiasScheme.GROUNDED, tag="forming_read")
    g = float(r.conductances[0])
    if bool(r.compliance[0]):  # conducts already: nothing to form
        return FormingOutcome(cell, True, None, g, 0, compliance=True)
    if g >= g_formed:
        return FormingOutcome(cell, True, None, g, 0)
    for n, v in enumerate(amplitudes, start=1):
        p: PulseResult | None = yield Pulse(cell, v, width, scheme, tag="forming_pulse")
        r = yield Read((cell,), v_read, BiasScheme.GROUNDED, tag="forming_read")
        g = float(r.conductances[0])
        tripped = bool(r.compliance[0]) or (p is not None and p.compliance)
        if tripped or g >= g_formed:
            return FormingOutcome(cell, True, v, g, n, compliance=tripped)
    return FormingOutcome(cell, False, None, g, len(amplitudes))


def forming_amplitudes(v_start: float, v_step: float, v_max: float) -> list[float]:
    """``v_start, v_start + v_step, ...`` up to `v_max` included (within 1 nV), each computed
    from its index and rounded to 1 nV: the last one is `v_max` itself, never a hair above."""
    n = int((v_max - v_start) / v_step + 1e-9) + 1
    out = [round(v_start + k * v_step, 9) for k in range(n)]
    return [min(v, v_max) for v in out]


@dataclass(frozen=True, slots=True)
class FormOutcome:
    """How forming of one cell by voltage and/or width ramps ended."""

    cell: Cell
    formed: bool
    v_formed: float | None  # V, amplitude of the pulse after which the cell conducted
    width_formed: float | None  # s, its width
    v_device: float | None  # V, that amplitude minus the drop on the series resistance
    g_final: float  # S
    n_pulses: int
    compliance: bool  # a pulse hit the current compliance
    reason: str


def ramp_steps(cfg: FormingConfig) -> list[tuple[float, float]]:
    """(amplitude, width) of each ramp step, in order, per `cfg.ramp`."""
    n_v = int(np.floor((cfg.v_max - cfg.v_start) / cfg.v_step + 1e-9)) + 1
    volts = [round(cfg.v_start + k * cfg.v_step, 12) for k in range(n_v)]
    widths = [cfg.width_min]
    while widths[-1] * cfg.width_factor <= cfg.width_max * (1 + 1e-9):
        widths.append(widths[-1] * cfg.width_factor)
    if cfg.ramp == "voltage":
        return [(v, cfg.width_min) for v in volts]
    if cfg.ramp == "width":
        return [(cfg.v_max, w) for w in widths]
    return [(v, w) for v in volts for w in widths]


def form_cell(cell: Cell, cfg: FormingConfig) -> Plan:
    """Ramp `cell` (see `ramp_steps`), reading after every pulse, until G >= `cfg.g_formed`;
    returns a `FormOutcome`. A compliance hit during a pulse ends the ramp (the cell has
    conducted: more pulses would only stress it)."""
    cell = (int(cell[0]), int(cell[1]))
    g_formed = cfg.g_formed
    r: ReadResult = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="forming_read")
    g = float(r.conductances[0])
    if g >= g_formed:
        return FormOutcome(cell, True, None, None, None, g, 0, False, "already conducting")
    n = 0
    for v, w in ramp_steps(cfg):
        for _ in range(cfg.pulses_per_step):
            p: PulseResult = yield Pulse(cell, v, w, cfg.pulse_scheme, tag="forming_pulse")
            n += 1
            if cfg.interpulse > 0:
                yield Wait(cfg.interpulse, tag="interpulse")
            r = yield Read((cell,), cfg.v_read, cfg.read_scheme, tag="forming_read")
            g = float(r.conductances[0])
            i = p.current if np.isfinite(p.current) else 0.0
            v_dev = v - i * cfg.r_series
            if g >= g_formed:
                return FormOutcome(cell, True, v, w, v_dev, g, n, p.compliance, "formed")
            if p.compliance and cfg.stop_on_compliance:
                return FormOutcome(cell, False, v, w, v_dev, g, n, True,
                                   "compliance hit below the G threshold")
    return FormOutcome(cell, False, None, None, None, g, n, False, "ramp ended unformed")


def form_cells(cells: Sequence[Cell], cfg: FormingConfig) -> Plan:
    """Form each of `cells` in turn; returns the list of `FormOutcome`."""
    out: list[FormOutcome] = []
    for k, cell in enumerate(cells):
        o = yield from form_cell(cell, cfg)
        out.append(o)
        yield cell_done(k + 1, len(cells), o.cell, formed=o.formed, v_formed=o.v_formed,
                        width_formed=o.width_formed, v_device=o.v_device, g_final=o.g_final,
                        n_pulses=o.n_pulses, compliance=o.compliance, converged=o.formed)
    return out
