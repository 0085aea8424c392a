"""The compiled sinh Newton (`solver_sinh_kernels`): its device evaluation against numpy's
sinh and cosh, repeated operations on one cell (fitted warm starts, chord finishes) against
the direct factorization, and whole-array nonlinear reads solved once per distinct case."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim import solver_sinh_kernels
from xbarlab.sim.iv import SinhIV
from xbarlab.sim.solver import CrossbarSolver, DeviceLaw, Terminals, WireCircuit, Wires

pytestmark = pytest.mark.skipif(not solver_sinh_kernels.AVAILABLE, reason="numba missing")


def _wires(shape: tuple[int, int], seed: int) -> Wires:
    rng = np.random.default_rng(seed)
    m, n = shape
    return Wires.build(shape, rng.uniform(0.5, 3.0, (m, n + 1)),
                       rng.uniform(0.5, 3.0, (m + 1, n)), 10.0, 5.0)


def test_device_evaluation_matches_numpy_to_a_few_ulp() -> None:
    m, n = 9, 11
    rng = np.random.default_rng(0)
    y_row, y_col = rng.uniform(0.5, 2.0, (m, n - 1)), rng.uniform(0.5, 2.0, (m - 1, n))
    yrs, yre = rng.uniform(0.0, 0.2, m), rng.uniform(0.0, 0.2, m)
    ycs, yce = rng.uniform(0.0, 0.2, n), rng.uniform(0.0, 0.2, n)
    b = 2.5
    x = rng.uniform(-30.0, 30.0, (m, n))  # b v up to the range a wild Newton trial reaches
    x[0, :6] = [0.0, -0.0, 1e-300, -1e-12, 1e-6, 0.3465]  # exact near 0, at the split of ln 2
    vc = rng.uniform(-1.0, 1.0, (m, n))
    vr = vc + x / b
    ga, gb = rng.uniform(1e-5, 5e-4, (m, n)), rng.uniform(1e-5, 5e-4, (m, n))
    b_r, b_c = rng.normal(0, 1e-3, (m, n)), rng.normal(0, 1e-3, (m, n))
    fr, fc, i_dev, dg = (np.empty((m, n)) for _ in range(4))
    bits = np.empty((2, m, n), dtype=np.int64)
    worst, i_max = solver_sinh_kernels._sinh_eval(
        y_row, y_col, yrs, yre, ycs, yce, vr, vc, ga, gb, b, b_r, b_c, fr, fc, i_dev, dg, bits)
    xv = b * (vr - vc)  # the voltages as the kernel sees them
    i_ref, dg_ref = ga * np.sinh(xv), gb * np.cosh(xv)
    ulp = np.finfo(np.float64).eps
    assert np.all(np.abs(i_dev - i_ref) <= 4 * ulp * np.abs(i_ref))  # relative, also near 0
    assert np.all(np.abs(dg - dg_ref) <= 4 * ulp * dg_ref)
    f_r = i_ref - b_r
    f_r[:, 0] += yrs * vr[:, 0]
    f_r[:, -1] += yre * vr[:, -1]
    seg = y_row * (vr[:, :-1] - vr[:, 1:])
    f_r[:, :-1] += seg
    f_r[:, 1:] -= seg
    f_c = -i_ref - b_c
    f_c[0] += ycs * vc[0]
    f_c[-1] += yce * vc[-1]
    seg = y_col * (vc[:-1] - vc[1:])
    f_c[:-1] += seg
    f_c[1:] -= seg
    scale = np.abs(i_ref).max()
    assert np.abs(fr - f_r).max() <= 1e-14 * scale and np.abs(fc - f_c).max() <= 1e-14 * scale
    assert worst == max(np.abs(fr).max(), np.abs(fc).max()) and i_max == np.abs(i_dev).max()
    vr[3, 4] = np.nan  # a NaN state never passes Newton's test
    worst, i_max = solver_sinh_kernels._sinh_eval(
        y_row, y_col, yrs, yre, ycs, yce, vr, vc, ga, gb, b, b_r, b_c, fr, fc, i_dev, dg, bits)
    assert np.isnan(worst) and np.isnan(i_max)


def test_one_cell_pulsed_again_and_again_stays_exact() -> None:
    """A write-verify's pattern: one cell read and pulsed at a rising amplitude while it
    and its half-selected neighbours move. Later solves start from a start corrected along
    the earlier solves' corrections and finish with chord steps; every answer is still the
    direct factorization's."""
    shape = (12, 10)
    cell = (5, 6)
    wires = _wires(shape, 7)
    fast, ref = CrossbarSolver(wires), CrossbarSolver(wires, engine="direct")
    circ = WireCircuit()
    iv = SinhIV(2.0, 1.5)
    g = np.random.default_rng(8).uniform(50e-6, 600e-6, shape)
    chord = steps = 0
    for k in range(14):
        for v, scheme in ((0.2, BiasScheme.GROUNDED), (1.2 + 0.03 * k, BiasScheme.HALF)):
            row_v, col_v = line_biases(shape, cell, v, scheme)
            t = circ.terminals(row_v[None], col_v[None])
            law = DeviceLaw.of_iv(g, iv)
            one = fast.solve_one(t.stacked()[0], law)
            assert one is not None and one.method == "lines"
            exact = ref.solve(None, t, law=law)
            for name in ("i_pad", "v_dev"):
                x, y = getattr(one, name), getattr(exact, name)
                known = ~np.isnan(y)
                assert np.abs(x[known] - y[known]).max() <= 1e-9 * np.abs(y[known]).max()
            fac = fast.line_engine(~np.isnan(t.stacked()[0])).case
            assert fac is not None
            chord += int(fac.stats[4])
            steps += one.iterations
            if scheme is BiasScheme.HALF:  # the pulse moves the cell and, less, its lines
                g = g.copy()
                g[cell[0], :] *= 1.002
                g[:, cell[1]] *= 0.999
                g[cell] *= 1.04
    assert chord > 0  # the finishing chord steps ran and still gave the exact answers
    assert steps <= 2.5 * 28  # warm starts: no more than cold would need


def test_whole_array_nonlinear_read_solves_each_distinct_case_once() -> None:
    shape = (9, 7)
    wires = _wires(shape, 3)
    g = np.random.default_rng(4).uniform(50e-6, 600e-6, shape)
    law = DeviceLaw.of_iv(g, SinhIV(2.0, 1.5))
    circ = WireCircuit()
    cells = [(r, c) for r in range(shape[0]) for c in range(shape[1])]
    biases = [line_biases(shape, cell, 0.2, BiasScheme.GROUNDED) for cell in cells]
    t = circ.terminals(np.array([b[0] for b in biases]), np.array([b[1] for b in biases]))
    fast = CrossbarSolver(wires)
    calls: list[int] = []
    solve_one = fast.solve_one

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        return solve_one(*args, **kw)

    fast.solve_one = counted  # type: ignore[method-assign]
    got = fast.pad_currents(None, t, law=law)
    assert len(calls) == shape[0]  # a grounded read's case is its row's: one per row
    want = CrossbarSolver(wires, engine="direct").pad_currents(None, t, law=law)
    known = ~np.isnan(want)
    assert np.abs(got[known] - want[known]).max() <= 1e-9 * np.abs(want[known]).max()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    half = [line_biases(shape, cell, 1.0, BiasScheme.HALF) for cell in cells]  # all distinct
    t = Terminals.build(shape, np.array([b[0] for b in half]), None,
                        np.array([b[1] for b in half]), None)
    got = fast.pad_currents(None, t, law=law)
    want = CrossbarSolver(wires, engine="direct").pad_currents(None, t, law=law)
    known = ~np.isnan(want)
    assert np.abs(got[known] - want[known]).max() <= 1e-9 * np.abs(want[known]).max()
