"""Forming: pulses of growing amplitude until a pristine cell conducts.

Read after every pulse; stop once the read conductance exceeds `g_formed`, or fail when the
amplitude reaches `v_max` without forming. Current compliance during the pulses is the bench's
(`BenchLimits.compliance`), which is what protects a cell at the moment it forms: a pulse or a
read that hits it means the cell conducts, so it counts as formed (and no further, larger pulse
follows). Amplitudes are computed from the pulse index (``v_start + k * v_step``, rounded to
1 nV), never by summing steps, so ``v_max`` is reached exactly and never overshot by rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarlab.crossbar import BiasScheme, Cell, PulseResult, ReadResult
from xbarlab.messages import Plan, Pulse, Read


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
