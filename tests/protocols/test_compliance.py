"""Compliance as an outcome: write-verify stops a cell whose verify read hit the compliance
(optionally also on a pulse that did), forming counts a trip as formed; forming amplitudes are
computed by index and end exactly at v_max."""

from __future__ import annotations

import numpy as np

from tests.fakes import RecordingCrossbar
from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import PulseResult, ReadResult
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Pulse
from xbarlab.protocols.forming import forming, forming_amplitudes
from xbarlab.protocols.write_verify import write_verify, write_verify_array


class Tripping(RecordingCrossbar):
    """Reads of `read_trip` cells and pulses of |V| >= `pulse_trip` hit the compliance; a
    clamped read returns a negative current (what the issue's 2600B gave: -5 mS as G)."""

    def __init__(self, read_trip: set[tuple[int, int]] = frozenset(),  # type: ignore[assignment]
                 pulse_trip: float = np.inf, g0: float = 150e-6,
                 shape: tuple[int, int] = (4, 4)) -> None:
        super().__init__(shape, g0=g0)
        self.read_trip, self.pulse_trip = set(read_trip), pulse_trip

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        r = super().read(cells, v_read, scheme)
        hit = np.array([(int(a), int(b)) in self.read_trip for a, b in r.cells])
        return ReadResult(r.cells, r.v_read, np.where(hit, -1e-3, r.currents), hit)

    def pulse(self, cell, voltage, width, scheme):  # type: ignore[no-untyped-def]
        p = super().pulse(cell, voltage, width, scheme)
        return PulseResult(p.cell, p.voltage, p.width, 1e-3, abs(voltage) >= self.pulse_trip)


def _run(xbar: RecordingCrossbar, plan):  # type: ignore[no-untyped-def]
    return RunEngine(xbar, BenchLimits(compliance=1e-3)).run(plan, protocol="t")


def test_write_verify_stops_a_cell_whose_verify_read_hit_compliance() -> None:
    xbar = Tripping(read_trip={(0, 0)})
    result = _run(xbar, write_verify((0, 0), 300e-6, WriteVerifyParams()))
    out = result.raise_for_status().value
    assert not out.converged and out.compliance and out.reason.startswith("compliance")
    assert np.isnan(out.g_final) and out.n_pulses == 0
    assert [c[0] for c in xbar.calls] == ["read"]  # no pulse on a clamped value


def test_pulses_in_compliance_are_counted_and_stop_the_cell_when_asked() -> None:
    params = WriteVerifyParams(set_start=1.0, step=0.1, set_max=2.0)
    counted = _run(Tripping(pulse_trip=1.15), write_verify((0, 0), 300e-6, params)).value
    assert counted.n_compliance_pulses > 0 and not counted.compliance
    stop = params.model_copy(update={"stop_on_pulse_compliance": True})
    xbar = Tripping(pulse_trip=1.15)
    out = _run(xbar, write_verify((0, 0), 300e-6, stop)).value
    pulses = [c[1][1] for c in xbar.calls if c[0] == "pulse"]
    assert out.compliance and "SET pulse of +1.2 V" in out.reason
    assert np.allclose(pulses, [1.0, 1.1, 1.2]) and out.n_compliance_pulses == 1


def test_array_reports_and_does_not_retry_compliance_cells() -> None:
    targets = np.full((2, 2), 160e-6)
    xbar = Tripping(read_trip={(1, 0)}, shape=(2, 2))
    plan = write_verify_array(targets, WriteVerifyParams(), passes=3)
    out = _run(xbar, plan).raise_for_status().value
    assert out.n_compliance == 1 and [o.cell for o in out.cells if o.compliance] == [(1, 0)]
    assert np.isnan(out.final[1, 0])  # the final map has no number for it either
    assert sum(o.cell == (1, 0) for o in out.attempts) == 1


def test_forming_counts_a_compliance_trip_as_formed_and_stops() -> None:
    xbar = Tripping(pulse_trip=1.8, g0=1e-6)  # pristine: far below g_formed
    out = _run(xbar, forming((0, 0), v_start=1.5, v_step=0.1, v_max=2.5)).value
    pulses = [c[1][1] for c in xbar.calls if c[0] == "pulse"]
    assert out.formed and out.compliance and out.v_formed == 1.8
    assert np.allclose(pulses, [1.5, 1.6, 1.7, 1.8])  # nothing above the trip


def test_forming_reaches_v_max_exactly_and_the_limits_accept_it() -> None:
    amps = forming_amplitudes(1.5, 0.1, 2.5)
    assert amps[-1] == 2.5 and max(amps) <= 2.5 and len(amps) == 11
    assert amps == [round(1.5 + k * 0.1, 9) for k in range(11)]
    xbar = Tripping(g0=1e-6)
    xbar.stuck = True  # never forms
    result = _run(xbar, forming((0, 0), v_start=1.5, v_step=0.1, v_max=2.5))
    assert result.ok, result.reason  # summing 0.1 ten times gave 2.500000000000001: refused
    pulses = [c[1][1] for c in xbar.calls if c[0] == "pulse"]
    assert pulses == amps and not result.value.formed
    assert all(isinstance(m, float) for m in pulses)
    assert Pulse((0, 0), amps[-1], 1e-4).voltage <= BenchLimits().pulse_v_max
