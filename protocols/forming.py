"""Forming: pulses of growing amplitude until a pristine cell conducts.

Read after every pulse; stop once the read conductance exceeds `g_formed`, or fail when the
amplitude reaches `v_max` without forming. Current compliance during the pulses is the bench's
(`BenchLimits.compliance`), which is what protects a cell at the moment it forms.
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarlab.crossbar import BiasScheme, Cell, ReadResult
from xbarlab.messages import Plan, Pulse, Read


@dataclass(frozen=True, slots=True)
class FormingOutcome:
    cell: Cell
    formed: bool
    v_formed: float | None  # V, amplitude of the pulse that formed the cell
    g_final: float  # S
    n_pulses: int


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
    r: ReadResult = yield Read((cell,), v_read, BiasScheme.GROUNDED, tag="forming_read")
    g = float(r.conductances[0])
    v, n = v_start, 0
    while g < g_formed:
        if v > v_max + 1e-12:
            return FormingOutcome(cell, False, None, g, n)
        yield Pulse(cell, v, width, scheme, tag="forming_pulse")
        n += 1
        r = yield Read((cell,), v_read, BiasScheme.GROUNDED, tag="forming_read")
        g = float(r.conductances[0])
        if g >= g_formed:
            return FormingOutcome(cell, True, v, g, n)
        v += v_step
    return FormingOutcome(cell, True, None, g, n)
