"""The reduced single-cell path of the wired circuit (`WireCircuit.column`: the selected
column's current and the device voltages, nothing else) against the direct factorization
of the whole circuit, state after state, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.sim import solver_column_kernels
from xbarlab.sim.circuit import CircuitError
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.solver import CrossbarSolver, DeviceLaw, WireCircuit

pytestmark = pytest.mark.skipif(not solver_column_kernels.AVAILABLE,
                                reason="numba not installed")


@pytest.mark.parametrize(("r_wire", "r_source", "r_sense", "row_drive", "col_drive", "rel"), [
    (1.0, 10.0, 10.0, "start", "end", 1e-9),
    # a 1 mohm sense resistance: 1000 S at the taps; the direct factorization's own
    # rounding and the line engine's stop differ by ~1e-9 here (the full tail's answer too)
    (2.0, 50.0, 1e-3, "both", "start", 3e-9),
    (0.05, 1.0, 10.0, "end", "both", 1e-9),
])
def test_column_matches_the_direct_factorization(
    r_wire: float, r_source: float, r_sense: float, row_drive: str, col_drive: str,
    rel: float,
) -> None:
    """The column's current and the device voltages agree with the direct factorization,
    and with the full single-case tail (`solve`) of a circuit with the same history."""
    shape = (9, 11)
    rng = np.random.default_rng(5)
    circ = WireCircuit(r_wire_row=r_wire, r_wire_col=r_wire, r_source=r_source,
                       r_sense=r_sense, row_drive=row_drive, col_drive=col_drive,  # type: ignore[arg-type]
                       nonlinear=False)
    full = WireCircuit(r_wire_row=r_wire, r_wire_col=r_wire, r_source=r_source,
                       r_sense=r_sense, row_drive=row_drive, col_drive=col_drive,  # type: ignore[arg-type]
                       nonlinear=False)
    devices = build_sim_crossbar(SimConfig(rows=9, cols=11, seed=3, noise=False)).devices
    ref = CrossbarSolver(circ.solver_for(shape).wires, engine="direct")
    checked = 0
    for k in range(14):  # the states move: the warm starts come from earlier states
        cell = (int(rng.integers(9)), int(rng.integers(11)))
        pulse_v = 1.7 if k % 2 else -1.9
        for scheme, v in ((BiasScheme.GROUNDED, 0.2), (BiasScheme.HALF, pulse_v),
                          (BiasScheme.THIRD, pulse_v), (BiasScheme.FLOATING, 0.3)):
            row_v, col_v = line_biases(shape, cell, v, scheme)
            exact = ref.solve(None, circ.terminals(row_v[None], col_v[None]),
                              law=DeviceLaw.of_devices(devices, linearize=True))
            want = float(exact.i_cols[0, cell[1]])
            v_dev = np.full(shape, np.nan)
            got = circ.column(devices, row_v, col_v, cell[1], v_dev)
            alone = circ.column(devices, row_v, col_v, cell[1])  # a read: no device voltages
            tail = full.solve(devices, row_v[None], col_v[None])
            assert got is not None and alone is not None
            scale = np.abs(exact.i_cols).max()
            assert abs(got - want) <= rel * scale, (scheme, k)
            assert abs(alone - want) <= rel * scale, (scheme, k)
            assert got == pytest.approx(float(tail.i_cols[0, cell[1]]), rel=1e-10, abs=1e-22)
            assert np.abs(v_dev - exact.v_dev[0]).max() <= 1e-9 * abs(v), (scheme, k)
            np.testing.assert_allclose(v_dev, tail.v_dev[0], rtol=0, atol=1e-11 * abs(v))
            checked += 1
            if scheme is BiasScheme.HALF:
                devices.apply_voltage(v_dev, 1e-6, rng)
    assert checked == 56


def test_kept_column_factors_precondition_later_states_to_the_same_answers() -> None:
    """After a pulse the row chains are refactored and the column chains keep their factors
    (the CG's preconditioner) for up to `STALE_COLUMNS` states: the answers stay those of a
    circuit that refactors everything (a fresh solver per state)."""
    from xbarlab.sim.solver_case_kernels import STALE_COLUMNS, LineFactors

    shape = (12, 10)
    params = {"r_wire_row": 1.0, "r_wire_col": 1.0, "r_source": 10.0, "r_sense": 10.0,
              "nonlinear": False}
    circ = WireCircuit(**params)  # type: ignore[arg-type]
    devices = build_sim_crossbar(SimConfig(rows=12, cols=10, seed=4, noise=False)).devices
    modes: list[int] = []
    refactoring = LineFactors.refactoring

    def spy(self: LineFactors, g: np.ndarray) -> int:
        modes.append(refactoring(self, g))
        return modes[-1]

    rng = np.random.default_rng(8)
    LineFactors.refactoring = spy  # type: ignore[method-assign]
    try:
        for k in range(12):
            cell = (int(rng.integers(12)), int(rng.integers(10)))
            read = line_biases(shape, cell, 0.2, BiasScheme.GROUNDED)
            pulse = line_biases(shape, cell, 1.6 if k % 3 else -1.8, BiasScheme.HALF)
            got = circ.column(devices, read[0], read[1], cell[1])
            fresh = WireCircuit(**params).column(devices, read[0], read[1], cell[1])  # type: ignore[arg-type]
            assert got is not None and fresh is not None
            assert got == pytest.approx(fresh, rel=1e-9, abs=1e-20), k  # both to the CG stop
            v_dev = np.empty(shape)
            assert circ.column(devices, pulse[0], pulse[1], cell[1], v_dev) is not None
            devices.apply_voltage(v_dev, 1e-6, rng)
    finally:
        LineFactors.refactoring = refactoring  # type: ignore[method-assign]
    assert 2 in modes and modes.count(2) <= STALE_COLUMNS * (modes.count(1) + 1)
    assert modes[0] == 1  # a new workspace factors everything


def test_a_simulated_session_takes_the_column_path() -> None:
    cfg = SimConfig(rows=8, cols=8, fidelity="wires", r_wire_row=1.0, r_wire_col=1.0,
                    r_source=10.0, r_sense=10.0, seed=2)
    xbar = build_sim_crossbar(cfg)
    solver = xbar.circuit.solver_for(xbar.shape)  # type: ignore[attr-defined]
    calls = []
    column_one = solver.column_one

    def spy(*args: object, **kw: object) -> float | None:
        out = column_one(*args, **kw)  # type: ignore[arg-type]
        calls.append(out)
        return out

    solver.column_one = spy  # type: ignore[method-assign]
    read = xbar.read([(3, 4)], 0.2, BiasScheme.GROUNDED)
    xbar.pulse((3, 4), 1.5, 1e-6, BiasScheme.HALF)
    assert len(calls) == 2 and None not in calls
    assert read.currents[0] == pytest.approx(calls[0], rel=0.05)  # read noise only


def test_column_refuses_what_it_cannot_solve() -> None:
    shape = (5, 6)
    devices = build_sim_crossbar(SimConfig(rows=5, cols=6, seed=1, noise=False)).devices
    row_v, col_v = line_biases(shape, (2, 3), 0.2, BiasScheme.GROUNDED)
    sinh = WireCircuit(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0,
                       nonlinear=True)
    assert sinh.column(devices, row_v, col_v, 3) is None  # Newton: the general path
    lin = WireCircuit(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0,
                      nonlinear=False)
    assert lin.column(devices, row_v[None], col_v[None], 3) is None  # a batch: not one case
    zero = np.zeros_like(row_v)
    assert lin.column(devices, zero, np.zeros_like(col_v), 3) is None  # nothing driven


def test_bad_conductances_raise_one_clear_error() -> None:
    class Fixed:
        def __init__(self, g: np.ndarray) -> None:
            self.g = g
            self.shape = g.shape
            self.linear = True

        def conductance(self, v: np.ndarray) -> np.ndarray:
            return np.broadcast_to(self.g, v.shape).copy()

    g = np.full((4, 5), 2e-4)
    g[1, 2] = -1e-4
    circ = WireCircuit(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0,
                       nonlinear=False)
    row_v, col_v = line_biases((4, 5), (1, 2), 0.2, BiasScheme.GROUNDED)
    with pytest.raises(CircuitError, match=r"device \(1, 2\)"):
        circ.column(Fixed(g), row_v, col_v, 2)  # type: ignore[arg-type]
    g = np.full((4, 5), 2e-4)
    g[:, 3] = 0.0  # column 3 touches no device: with its pads open it floats
    circ = WireCircuit(r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0,
                       nonlinear=False, col_drive="end")
    row_v, col_v = line_biases((4, 5), (1, 2), 0.3, BiasScheme.FLOATING)
    with pytest.raises(CircuitError):
        circ.column(Fixed(g), row_v, col_v, 2)  # type: ignore[arg-type]


def test_without_the_column_kernels_the_crossbar_takes_the_full_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = SimConfig(rows=6, cols=7, fidelity="wires", r_wire_row=1.0, r_wire_col=1.0,
                    r_source=10.0, r_sense=10.0, seed=2, noise=False)
    fast, full = build_sim_crossbar(cfg), build_sim_crossbar(cfg)
    monkeypatch.setattr(solver_column_kernels, "AVAILABLE", False)
    row_v, col_v = line_biases((6, 7), (2, 5), 0.2, BiasScheme.GROUNDED)
    assert full.circuit.column(full.devices, row_v, col_v, 5) is None  # type: ignore[attr-defined]
    got_full = [full.read([(2, 5)], 0.2, BiasScheme.GROUNDED).currents[0],
                full.pulse((2, 5), 1.6, 1e-6, BiasScheme.HALF).current]
    monkeypatch.setattr(solver_column_kernels, "AVAILABLE", True)
    got_fast = [fast.read([(2, 5)], 0.2, BiasScheme.GROUNDED).currents[0],
                fast.pulse((2, 5), 1.6, 1e-6, BiasScheme.HALF).current]
    np.testing.assert_allclose(got_fast, got_full, rtol=1e-10)
    np.testing.assert_allclose(fast.g, full.g, rtol=1e-10)
