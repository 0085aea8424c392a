"""Write-verify that compensates the circuit's predictions (line drops on pulses and reads)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from xbarlab.analysis.estimate import estimate_session
from xbarlab.analysis.physics_checks import circuit_gains
from xbarlab.config import SimConfig, WriteVerifyArrayProtocol, WriteVerifyParams
from xbarlab.crossbar import ReadResult
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.protocol_configs import ProtocolSession
from xbarlab.protocols.compensated import CircuitGains, scaled_params, write_verify_compensated
from xbarlab.protocols.write_verify import programming_order, write_verify_array
from xbarlab.sim.factory import build_sim_crossbar


class Lossy(RecordingCrossbar):
    """Cells see `share` of each pulse; reads return `read_gain` x the cell's conductance."""

    def __init__(self, share: np.ndarray, read_gain: np.ndarray) -> None:
        super().__init__(share.shape, g0=150e-6)
        self.share, self.rg = share, read_gain

    def pulse(self, cell: Any, voltage: float, width: float, scheme: Any) -> Any:
        return super().pulse(cell, voltage * float(self.share[cell]), width, scheme)

    def read(self, cells: Any, v_read: float, scheme: Any) -> ReadResult:
        r = super().read(cells, v_read, scheme)
        gain = self.rg[r.cells[:, 0], r.cells[:, 1]]
        return ReadResult(r.cells, v_read, r.currents * gain, r.compliance)


PARAMS = WriteVerifyParams(set_start=1.1, set_max=2.0, reset_start=-1.1, reset_min=-2.0,
                           step=0.02, tolerance=0.01, max_pulses=300)


def test_scaled_params_stay_within_the_bench_limits() -> None:
    p = scaled_params(PARAMS, 1.5, v_max=2.5, v_min=-2.8)
    assert p.set_start == pytest.approx(1.65) and p.set_max == 2.5
    assert p.reset_start == pytest.approx(-1.65) and p.reset_min == -2.8
    assert p.step == pytest.approx(0.03)


def test_compensation_lands_the_true_conductance_on_target() -> None:
    share = np.array([[0.9, 0.8], [0.75, 0.7]])
    rg = np.array([[0.95, 0.9], [0.85, 0.8]])  # reads under-estimate the cells
    targets = np.full((2, 2), 300e-6)
    order = programming_order((2, 2), "row-major")
    plain = Lossy(share, rg)
    res = RunEngine(plain, BenchLimits(), []).run(write_verify_array(targets, PARAMS), protocol="p")
    err_plain = np.abs(plain.g - targets) / targets
    assert res.ok and res.value.converged == 4  # converged on what the reads say ...
    assert np.all(err_plain > 0.04)  # ... which is not what the cells hold
    comp = Lossy(share, rg)
    gains = CircuitGains(1 / share, rg, 2.5, -3.0)
    res = RunEngine(comp, BenchLimits(), []).run(
        write_verify_compensated(targets, PARAMS, gains, order), protocol="c")
    assert res.ok and res.value.converged == 4
    np.testing.assert_allclose(comp.g, targets, rtol=0.012)
    sent = [c for c in comp.calls if c[0] == "pulse"]
    first = {}
    for _, (cell, v, _w, _s) in sent:
        first.setdefault(cell, v / share[cell])  # the scripted array records delivered V
    for cell, v in first.items():  # the first pulse of each cell is its scaled start
        assert v == pytest.approx(1.1 / share[cell]) or v == pytest.approx(-1.1 / share[cell])


def test_circuit_gains_follow_the_wires() -> None:
    cfg = ProtocolSession(sim=SimConfig(rows=8, cols=8, fidelity="wires", r_wire_row=2.0,
                                        r_wire_col=2.0, seed=0),
                          protocol=WriteVerifyArrayProtocol(compensate=True))
    g = circuit_gains(cfg)
    assert g is not None
    # rows driven from column 0, columns terminated at row 7: cell (0, 7) is the farthest
    assert np.all(g.pulse >= 1.0) and g.pulse[0, -1] == g.pulse.max() > g.pulse[-1, 0]
    assert np.all(g.read < 1.0)  # grounded reads under-read on a wired array
    ideal = ProtocolSession(sim=SimConfig(rows=16, cols=16, seed=0),
                            protocol=WriteVerifyArrayProtocol(compensate=True))
    assert (build_sim_crossbar(ideal.sim).devices.stuck > 0).any()  # type: ignore[attr-defined]
    gi = circuit_gains(ideal)  # stuck cells keep their G: their read gain is 1 too
    assert gi is not None
    np.testing.assert_allclose(gi.pulse, 1.0)
    np.testing.assert_allclose(gi.read, 1.0, rtol=1e-9)


def test_estimate_accepts_a_compensated_wired_session_and_refuses_one_beyond_the_limits(
        ) -> None:
    ok = ProtocolSession(sim=SimConfig(rows=8, cols=8, fidelity="wires", r_wire_row=1.0,
                                       r_wire_col=1.0, seed=0),
                         protocol=WriteVerifyArrayProtocol(compensate=True))
    est = estimate_session(ok)
    assert est.ok, est.blocking
    assert any("true conductance" in k for k, _ in est.outcome)
    bad = ProtocolSession(sim=SimConfig(rows=64, cols=64, fidelity="wires", r_wire_row=2.0,
                                        r_wire_col=2.0, r_source=50.0),
                          protocol=WriteVerifyArrayProtocol(compensate=True))
    est = estimate_session(bad)
    assert any("exceeds the bench limit" in b for b in est.blocking)


def test_a_line_resistance_refusal_says_what_both_end_drive_would_deliver() -> None:
    """Driving every line from both ends halves the longest wire path: the refusal says what
    a pulse would deliver then (one more solve per sample cell), and whether that passes."""
    from xbarlab.analysis.physics_checks import both_ends_delivery, pulse_delivery
    from xbarlab.crossbar import BiasScheme

    sim = SimConfig(rows=48, cols=48, fidelity="wires", r_wire_row=3.0, r_wire_col=3.0,
                    r_source=10.0, r_sense=10.0, seed=0, noise=False)
    xbar = build_sim_crossbar(sim)
    one = pulse_delivery(xbar, 1.1, BiasScheme.HALF)
    both = both_ends_delivery(xbar, 1.1, BiasScheme.HALF)
    assert both is not None and one < both < 1.0
    assert both_ends_delivery(build_sim_crossbar(
        sim.model_copy(update={"row_drive": "both", "col_drive": "both"})), 1.1,
        BiasScheme.HALF) is None  # already driven from both ends: no hint
    assert both_ends_delivery(build_sim_crossbar(SimConfig(rows=4, cols=4)), 1.1,
                              BiasScheme.HALF) is None  # no wires
    est = estimate_session(ProtocolSession(sim=sim,
                                           protocol=WriteVerifyArrayProtocol(compensate=True)))
    refusal = next(b for b in est.blocking if "exceeds the bench limit" in b)
    model = build_sim_crossbar(sim.model_copy(update={"seed": est.seed}))  # the estimate's draw
    both = both_ends_delivery(model, 1.1, BiasScheme.HALF)
    assert both is not None
    assert "both ends" in refusal and f"it would see {both:.0%}" in refusal
    need = 1.1 / both
    assert (f"{need:.2f} V, within the limit" in refusal) == (need <= 2.5)
