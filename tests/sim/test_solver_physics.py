"""The crossbar solver on analytic cases and physical properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices
from xbarlab.sim.iv import IVLaw, LinearIV, SinhIV
from xbarlab.sim.solver import CrossbarSolution, CrossbarSolver, Terminals, WireCircuit, Wires

LAWS: list[IVLaw] = [LinearIV(), SinhIV()]


def test_single_cell_is_a_series_circuit() -> None:
    g, v = 200e-6, 0.3
    wires = Wires.build((1, 1), [[2.0, 3.0]], [[5.0], [7.0]], 10.0, 20.0)
    t = Terminals.build((1, 1), row_start=[[v]], col_end=[[0.0]])
    sol = CrossbarSolver(wires).solve(np.array([[g]]), t)
    r_total = 10.0 + 2.0 + 1.0 / g + 7.0 + 20.0
    assert sol.i_cols[0, 0] == pytest.approx(v / r_total, rel=1e-12)
    assert sol.i_rows[0, 0] == pytest.approx(v / r_total, rel=1e-12)


def test_single_cell_sinh_current_satisfies_the_series_equation() -> None:
    # I = a g sinh(b (V - I R)): check the solver's current is its root
    a, b, g, v, r = 0.74, 1.24, 500e-6, 2.0, 300.0
    wires = Wires.build((1, 1), [[100.0, 1.0]], [[1.0], [100.0]], 50.0, 50.0)
    t = Terminals.build((1, 1), row_start=[[v]], col_end=[[0.0]])
    sol = CrossbarSolver(wires).solve(np.array([[g]]), t, SinhIV(a, b))
    i = float(sol.i_cols[0, 0])
    assert i == pytest.approx(a * g * np.sinh(b * (v - i * r)), rel=1e-10)
    assert 0 < sol.iterations <= 10


def _ladder_current(v: float, r_seg: float, g: np.ndarray) -> float:
    """Input current of a row ladder (series r_seg, shunt g to ground) by the recurrence
    R_k = r_seg + (1/g_k || R_{k+1}) from the far end."""
    r_next = np.inf
    for gk in g[::-1]:
        shunt = 1.0 / gk
        par = shunt if np.isinf(r_next) else shunt * r_next / (shunt + r_next)
        r_next = r_seg + par
    return v / r_next


def test_one_row_with_grounded_ideal_columns_is_a_ladder() -> None:
    g = np.random.default_rng(0).uniform(1e-4, 5e-3, 12)
    wires = Wires.build((1, 12), 3.0, 0.0, 0.0, 0.0)
    t = Terminals.build((1, 12), row_start=[[0.5]], col_end=np.zeros((1, 12)))
    for engine in ("auto", "direct"):
        sol = CrossbarSolver(wires, engine=engine).solve(g[None], t)  # type: ignore[arg-type]
        assert sol.i_rows[0, 0] == pytest.approx(_ladder_current(0.5, 3.0, g), rel=1e-12)
        assert sol.i_cols.sum() == pytest.approx(sol.i_rows[0, 0], rel=1e-12)


arrays = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))


def _random(
    seed: int, m: int, n: int, r_max: float = 20.0
) -> tuple[np.ndarray, Wires, np.random.Generator]:
    rng = np.random.default_rng(seed)
    g = rng.uniform(10e-6, 1e-3, (m, n))
    wires = Wires.build(
        (m, n),
        rng.uniform(0.1, r_max, (m, n + 1)),
        rng.uniform(0.1, r_max, (m + 1, n)),
        float(rng.uniform(0, r_max)),
        float(rng.uniform(0, r_max)),
    )
    return g, wires, rng


def _kcl_residuals(sol: CrossbarSolution, wires: Wires, t: Terminals) -> np.ndarray:
    """Net current out of every tap, from node voltages, wires and pads (independent of the
    solver's own bookkeeping)."""
    m, n = sol.shape
    vr, vc, i_dev = sol.v_row, sol.v_col, sol.i_dev
    out_r = i_dev.copy()
    out_c = -i_dev.copy()
    seg_r = (vr[:, :, :-1] - vr[:, :, 1:]) / wires.r_row[:, 1:n]
    out_r[:, :, :-1] += seg_r
    out_r[:, :, 1:] -= seg_r
    seg_c = (vc[:, :-1, :] - vc[:, 1:, :]) / wires.r_col[1:m, :]
    out_c[:, :-1, :] += seg_c
    out_c[:, 1:, :] -= seg_c

    def pad(v_drv: np.ndarray, v_node: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(v_drv), 0.0, (v_node - np.nan_to_num(v_drv)) / r)

    out_r[:, :, 0] += pad(t.row_start, vr[:, :, 0], wires.r_source + wires.r_row[:, 0])
    out_r[:, :, -1] += pad(t.row_end, vr[:, :, -1], wires.r_source + wires.r_row[:, n])
    out_c[:, 0, :] += pad(t.col_start, vc[:, 0, :], wires.r_sense + wires.r_col[0, :])
    out_c[:, -1, :] += pad(t.col_end, vc[:, -1, :], wires.r_sense + wires.r_col[m, :])
    return np.concatenate([out_r.reshape(len(vr), -1), out_c.reshape(len(vr), -1)], axis=1)


@settings(max_examples=40, deadline=None)
@given(arrays, st.sampled_from(list(BiasScheme)), st.sampled_from(LAWS), st.booleans())
def test_kirchhoff_current_law_holds_at_every_node(
    dims: tuple[int, int, int], scheme: BiasScheme, iv: IVLaw, both: bool
) -> None:
    m, n, seed = dims
    g, wires, rng = _random(seed, m, n)
    cell = (int(rng.integers(m)), int(rng.integers(n)))
    row_v, col_v = line_biases((m, n), cell, float(rng.uniform(-2.0, 2.0)), scheme)
    circ = WireCircuit(row_drive="both" if both else "start", col_drive="end")
    t = circ.terminals(row_v[None], col_v[None])
    sol = CrossbarSolver(wires).solve(g, t, iv)
    kcl = _kcl_residuals(sol, wires, t)
    i_scale = np.abs(sol.i_pad).max() + 1e-18
    assert np.abs(kcl).max() <= 1e-9 * i_scale
    # What goes in comes out; the sum over 2(M+N) pads accumulates each node's residual.
    assert abs(sol.i_pad.sum()) <= 1e-8 * i_scale
    assert np.allclose(sol.i_dev, iv.current(g, sol.v_dev), rtol=1e-12, atol=0)


@settings(max_examples=30, deadline=None)
@given(arrays, st.integers(1, 4))
def test_zero_wire_resistance_driven_rows_grounded_columns_is_ideal_mvm(
    dims: tuple[int, int, int], batch: int
) -> None:
    m, n, seed = dims
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.0, 1e-3, (m, n))
    v = rng.uniform(-1, 1, (batch, m))
    wires = Wires.build((m, n))
    t = Terminals.build((m, n), row_start=v, col_end=np.zeros((batch, n)))
    sol = CrossbarSolver(wires).solve(g, t)
    np.testing.assert_allclose(sol.i_cols, v @ g, rtol=1e-12, atol=1e-18)


@settings(max_examples=30, deadline=None)
@given(arrays, st.sampled_from(LAWS), st.floats(0.01, 1.5), st.floats(1.01, 2.0))
def test_sensed_current_grows_with_the_applied_voltage(
    dims: tuple[int, int, int], iv: IVLaw, v: float, factor: float
) -> None:
    m, n, seed = dims
    g, wires, rng = _random(seed, m, n)
    cell = (int(rng.integers(m)), int(rng.integers(n)))
    solver = CrossbarSolver(wires)
    sensed = []
    for volts in (v, v * factor):
        row_v, col_v = line_biases((m, n), cell, volts, BiasScheme.GROUNDED)
        t = WireCircuit().terminals(row_v[None], col_v[None])
        sensed.append(float(solver.solve(g, t, iv).i_cols[0, cell[1]]))
    assert 0 < sensed[0] < sensed[1]


@settings(max_examples=25, deadline=None)
@given(arrays, st.sampled_from(list(BiasScheme)), st.floats(-2, 2))
def test_zero_wires_reproduce_the_ideal_circuit_under_every_scheme(
    dims: tuple[int, int, int], scheme: BiasScheme, volts: float
) -> None:
    m, n, seed = dims
    devices = SimpleDevices((m, n), SimpleDeviceParams(), np.random.default_rng(seed))
    row_v, col_v = line_biases((m, n), (m - 1, 0), volts, scheme)
    ideal = IdealCircuit().solve(devices, row_v[None], col_v[None])
    wired = WireCircuit(nonlinear=False).solve(devices, row_v[None], col_v[None])
    np.testing.assert_allclose(wired.v_dev, ideal.v_dev, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(wired.i_cols, ideal.i_cols, rtol=1e-9, atol=1e-15)


def test_engines_agree_and_results_follow_conductance_changes() -> None:
    g, wires, rng = _random(5, 12, 9, r_max=5.0)
    t = Terminals.build((12, 9), row_start=rng.uniform(0, 0.3, (4, 12)), col_end=np.zeros((4, 9)))
    lines, direct = CrossbarSolver(wires, engine="lines"), CrossbarSolver(wires, engine="direct")
    for step in range(3):  # same solver objects: cached factors must follow g
        a, b = lines.solve(g, t), direct.solve(g, t)
        np.testing.assert_allclose(a.v_row, b.v_row, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(a.i_cols, b.i_cols, rtol=1e-9)
        fresh = CrossbarSolver(wires, engine="direct").solve(g, t)
        np.testing.assert_array_equal(b.i_cols, fresh.i_cols)
        g = g.copy()
        g[step, step] *= 3.0  # a "pulse"


def test_sim_crossbar_reads_with_wires_see_less_than_ideal() -> None:
    from xbarlab.config import SimConfig
    from xbarlab.sim.factory import build_sim_crossbar

    common = {"rows": 16, "cols": 16, "noise": False, "seed": 3}
    ideal = build_sim_crossbar(SimConfig(**common))
    wired = build_sim_crossbar(
        SimConfig(**common, fidelity="wires", r_wire_row=2.0, r_wire_col=2.0, r_source=10.0)
    )
    np.testing.assert_array_equal(ideal.g, wired.g)
    a = ideal.read(None, 0.2, BiasScheme.GROUNDED).currents
    b = wired.read(None, 0.2, BiasScheme.GROUNDED).currents
    assert np.all(b < a)  # IR drop only takes voltage away from the selected cell
    np.testing.assert_allclose(a, 0.2 * ideal.g.ravel(), rtol=1e-12)


class _SinhDevices(SimpleDevices):
    """Simple devices read through the TiO2 sinh law (a nonlinear DeviceArray)."""

    law = SinhIV(0.8, 1.5)

    @property
    def linear(self) -> bool:
        return False

    @property
    def iv(self) -> SinhIV:  # type: ignore[override]
        return self.law

    def current(self, v: np.ndarray) -> np.ndarray:
        return self.law.current(self.g, v)

    def conductance(self, v: np.ndarray) -> np.ndarray:
        return self.law.didv(self.g, v)


@settings(max_examples=20, deadline=None)
@given(arrays, st.floats(0.1, 2.5))
def test_ideal_circuit_floats_lines_with_nonlinear_devices_by_kcl(
    dims: tuple[int, int, int], volts: float
) -> None:
    m, n, seed = dims
    devices = _SinhDevices((m, n), SimpleDeviceParams(), np.random.default_rng(seed))
    row_v, col_v = line_biases((m, n), (0, n - 1), volts, BiasScheme.FLOATING)
    sol = IdealCircuit().solve(devices, row_v[None], col_v[None])
    scale = np.abs(sol.i_dev).max()
    assert np.abs(sol.i_rows[0, 1:]).max(initial=0.0) <= 1e-9 * scale  # floating rows
    assert np.abs(sol.i_cols[0, :-1]).max(initial=0.0) <= 1e-9 * scale  # floating columns
    assert sol.i_cols[0, -1] > 0
    wired = WireCircuit(nonlinear=True).solve(devices, row_v[None], col_v[None])
    np.testing.assert_allclose(wired.i_cols, sol.i_cols, rtol=1e-8, atol=1e-9 * scale)


def test_whole_array_reads_by_superposition_equal_case_by_case_solves() -> None:
    # a batch whose pad voltages span few directions is solved on a basis and combined
    shape = (6, 5)
    g, wires, _ = _random(21, *shape)
    circ = WireCircuit()
    for scheme in (BiasScheme.GROUNDED, BiasScheme.HALF, BiasScheme.THIRD):
        cases = [line_biases(shape, (r, c), 0.3, scheme) for r in range(6) for c in range(5)]
        t = circ.terminals(np.array([a for a, _ in cases]), np.array([b for _, b in cases]))
        batch = CrossbarSolver(wires).solve(g, t)
        for k in (0, 7, 29):
            one = Terminals(t.row_start[k : k + 1], t.row_end[k : k + 1],
                            t.col_start[k : k + 1], t.col_end[k : k + 1])
            single = CrossbarSolver(wires, engine="direct").solve(g, one)
            np.testing.assert_allclose(batch.i_pad[k], single.i_pad[0], rtol=1e-9,
                                       atol=1e-12 * np.abs(single.i_pad).max())
            np.testing.assert_allclose(batch.v_dev[k], single.v_dev[0], rtol=1e-9, atol=1e-12)


def test_configured_drive_sides_reach_the_circuit_and_driving_both_ends_loses_less() -> None:
    from xbarlab.config import SimConfig
    from xbarlab.sim.factory import build_sim_crossbar

    def grounded_read_map(row_drive: str) -> np.ndarray:
        cfg = SimConfig(rows=16, cols=16, device="simple", fidelity="wires", r_wire_row=5.0,
                        r_wire_col=0.0, noise=False, row_drive=row_drive)  # type: ignore[arg-type]
        xb = build_sim_crossbar(cfg)
        assert xb.circuit.describe()["row_drive"] == row_drive
        return xb.read(None, 0.2, BiasScheme.GROUNDED).currents.reshape(16, 16)

    one, both = grounded_read_map("start"), grounded_read_map("both")
    # driven from the start only, the far end of each row sags most; from both ends the
    # worst cell is in the middle and every cell sees at least as much voltage
    assert np.all(both >= one * (1 - 1e-12))
    assert one[:, -1].mean() < one[:, 0].mean()
    assert both[:, 8].mean() < both[:, 0].mean()
