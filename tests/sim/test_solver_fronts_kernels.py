"""The direct engine's compiled loops (`solver_fronts_kernels`) against its numpy paths and
against dense references."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.solutions import assert_same_solution
from xbarlab.sim import solver_fronts_kernels, solver_network
from xbarlab.sim.solver import CrossbarSolver, Terminals, Wires
from xbarlab.sim.solver_network import DirectEngine, Pads

pytestmark = pytest.mark.skipif(not solver_fronts_kernels.AVAILABLE, reason="numba not installed")


def _case(
    m: int, n: int, fixed_ends: bool, seed: int
) -> tuple[Wires, np.ndarray, Terminals]:
    rng = np.random.default_rng(seed)
    r_col = rng.uniform(0.5, 2.0, (m + 1, n))
    if fixed_ends:
        r_col[m] = 0.0  # with r_sense = 0: the column ends are held at their drivers
    wires = Wires.build((m, n), rng.uniform(0.5, 2.0, (m, n + 1)), r_col, 5.0, 0.0)
    g = rng.uniform(50e-6, 500e-6, (m, n))
    t = Terminals.build((m, n), row_start=rng.uniform(0, 0.3, (5, m)),
                        col_end=rng.uniform(-0.05, 0.05, (5, n)))
    return wires, g, t


@pytest.mark.parametrize(("m", "n", "fixed_ends"),
                         [(9, 13, False), (16, 7, False), (12, 12, True), (1, 6, False)])
def test_compiled_and_numpy_paths_agree_and_solve_kcl(
    m: int, n: int, fixed_ends: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Symbolic analysis, factor, solve and KCL check, compiled and in numpy, give the same
    voltages, pad currents and residual; the voltages solve the node equations."""
    wires, g, t = _case(m, n, fixed_ends, m * 100 + n)
    sols = []
    for compiled in (True, False):
        monkeypatch.setattr(solver_fronts_kernels, "AVAILABLE", compiled)
        solver_network.forget_symbolic_analyses()
        sols.append(CrossbarSolver(wires, engine="direct").solve(g, t))
    solver_network.forget_symbolic_analyses()
    a, b = sols
    assert_same_solution(a, b)
    # the currents into the array balance (independent of either KCL check)
    assert np.abs(a.i_pad.sum(axis=1)).max() <= 1e-11 * np.abs(b.i_pad).max()


def _engine_and_voltages(
    m: int, n: int, fixed_ends: bool, seed: int
) -> tuple[DirectEngine, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    wires, g, t = _case(m, n, fixed_ends, seed)
    volts = t.stacked()
    eng = DirectEngine(wires, ~np.isnan(volts[0]))
    inj, _ = eng.pad_rhs(volts)
    rng = np.random.default_rng(seed + 1)
    v = np.asfortranarray(rng.normal(size=(eng.nnode, volts.shape[0])))  # not a solution
    i_dev = g * (v[: m * n].T - v[m * n :].T).reshape(-1, m, n)
    return eng, v, i_dev, inj, np.flatnonzero(eng.fixed_pad)


@pytest.mark.parametrize("fixed_ends", [False, True])
def test_compiled_kcl_check_is_the_kcl_residual(
    fixed_ends: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On arbitrary voltages the compiled check returns the largest |KCL residual| over the
    free nodes and the residual at the asked nodes, as `DirectEngine.kcl` computes them."""
    m, n = 7, 10
    eng, v, i_dev, inj, fp = _engine_and_voltages(m, n, fixed_ends, 4)
    want = eng.pad_node[fp] if fp.size else np.arange(3)
    f = eng.kcl(v, i_dev, inj)
    free = ~eng.fixed
    ref = float(np.abs(f[free]).max())
    resid, f_want = eng.kcl_check(v, i_dev, inj, want)
    assert resid == pytest.approx(ref, rel=1e-12)
    assert np.abs(f_want - f[want]).max() <= 1e-12 * np.abs(f).max()
    monkeypatch.setattr(solver_fronts_kernels, "AVAILABLE", False)
    resid_np, f_np = eng.kcl_check(v, i_dev, inj, want)
    assert resid_np == ref and np.array_equal(f_np, f[want])


def test_compiled_kcl_check_fails_on_nan() -> None:
    eng, v, i_dev, inj, _ = _engine_and_voltages(5, 6, False, 7)
    v[3, 2] = np.nan
    assert np.isnan(eng.kcl_check(v, i_dev, inj, np.zeros(0, np.int64))[0])


def test_solve_reading_only_the_pad_rows_gives_the_full_solve() -> None:
    m, n = 10, 9
    wires, g, t = _case(m, n, False, 11)
    volts = t.stacked()
    eng = DirectEngine(wires, ~np.isnan(volts[0]))
    inj, fixed_v = eng.pad_rhs(volts)
    full = eng.solve(g, inj, fixed_v)
    hinted = eng.solve(g, inj, fixed_v, pads_only=True)
    assert np.abs(hinted - full).max() <= 1e-13 * np.abs(full).max()
    assert set(np.flatnonzero(np.any(inj != 0, axis=1))) <= set(Pads.of(wires).tap.tolist())
