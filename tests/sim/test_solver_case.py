"""The compiled single-case path (`CrossbarSolver.solve_one`, `solver_case_kernels`) against
the direct factorization: kept chain factors follow every change of state, every shape
(rows not a multiple of the four the row chains interleave), every drive side, sinh devices
through the compiled Newton, cold and warm."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim import solver_case_kernels
from xbarlab.sim.iv import LinearIV, SinhIV
from xbarlab.sim.solver import (
    CrossbarSolver,
    DeviceLaw,
    NonConvergenceError,
    WireCircuit,
    Wires,
)

pytestmark = pytest.mark.skipif(not solver_case_kernels.AVAILABLE, reason="numba missing")


def _same(a: object, b: object, rel: float = 1e-9) -> None:
    for name in ("i_pad", "v_dev"):
        x, y = getattr(a, name), getattr(b, name)
        known = ~np.isnan(y)
        scale = np.abs(y[known]).max()
        assert np.abs(x[known] - y[known]).max() <= rel * scale, name


def _wires(shape: tuple[int, int], seed: int) -> Wires:
    rng = np.random.default_rng(seed)
    m, n = shape
    return Wires.build(shape, rng.uniform(0.5, 3.0, (m, n + 1)),
                       rng.uniform(0.5, 3.0, (m + 1, n)), 10.0, 5.0)


@pytest.mark.parametrize("shape", [(7, 5), (9, 13), (1, 6), (6, 1), (12, 8)])
@pytest.mark.parametrize("iv", [LinearIV(), SinhIV(2.0, 1.5)])
def test_single_cases_match_the_direct_factorization(shape: tuple[int, int], iv: object
                                                     ) -> None:
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    wires = _wires(shape, 1)
    fast, ref = CrossbarSolver(wires), CrossbarSolver(wires, engine="direct")
    for sides in (("start", "end"), ("both", "start"), ("end", "both")):
        circ = WireCircuit(row_drive=sides[0], col_drive=sides[1])
        g = rng.uniform(50e-6, 600e-6, shape)
        for k in range(6):
            cell = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
            scheme = (BiasScheme.HALF, BiasScheme.GROUNDED, BiasScheme.THIRD)[k % 3]
            row_v, col_v = line_biases(shape, cell, 1.4 * (-1) ** k, scheme)
            t = circ.terminals(row_v[None], col_v[None])
            law = DeviceLaw.of_iv(g, iv)  # type: ignore[arg-type]
            one = fast.solve_one(t.stacked()[0], law)
            assert one is not None and one.method == "lines"
            _same(one, ref.solve(None, t, law=law))
            g = g * rng.uniform(0.97, 1.03, shape)  # the devices move between operations


def test_kept_factors_follow_every_change_of_state() -> None:
    shape = (10, 11)
    rng = np.random.default_rng(3)
    wires = _wires(shape, 2)
    fast, ref = CrossbarSolver(wires), CrossbarSolver(wires, engine="direct")
    circ = WireCircuit()
    row_v, col_v = line_biases(shape, (4, 7), 1.2, BiasScheme.HALF)
    t = circ.terminals(row_v[None], col_v[None])
    volts = t.stacked()[0]
    a = rng.uniform(50e-6, 600e-6, shape)
    b = a.copy()
    b[4, 7] *= 1.5
    for g in (a, b):
        g.flags.writeable = False
    for g in (a, a, b, a, b.copy()):  # read-only states: factors kept while g is the same
        law = DeviceLaw(lambda v: v, lambda v: v, True, g)
        one = fast.solve_one(volts, law)
        _same(one, ref.solve(g, t))
    w = a.copy()  # a writable state may change in place: refactored every time
    for _ in range(2):
        law = DeviceLaw(lambda v: v, lambda v: v, True, w)
        _same(fast.solve_one(volts, law), ref.solve(w.copy(), t))
        w[2, :] *= 1.8


def test_a_warm_start_far_off_still_gives_the_exact_answer() -> None:
    shape = (8, 9)
    wires = _wires(shape, 4)
    g = np.random.default_rng(5).uniform(50e-6, 600e-6, shape)
    circ = WireCircuit()
    row_v, col_v = line_biases(shape, (3, 3), 2.0, BiasScheme.HALF)
    t = circ.terminals(row_v[None], col_v[None])
    law = DeviceLaw.of_iv(g, SinhIV(2.0, 1.5))
    exact = CrossbarSolver(wires, engine="direct").solve(None, t, law=law)
    fac = solver_case_kernels.LineFactors(
        1.0 / wires.r_row[:, 1:-1], 1.0 / wires.r_col[1:-1, :],
        np.where(~np.isnan(t.stacked()[0]), 1.0 / CrossbarSolver(wires).pads.r_series, 0.0),
    )
    assert law.sinh is not None
    volts = np.nan_to_num(t.stacked()[0])
    far = np.full((2, *shape), 5.0)  # every tap at 5 V: Newton must walk back
    out = fac.solve_sinh(volts, law.sinh[0], law.g0, law.sinh[1], law.g0, far, rtol=1e-11,
                         max_newton=50)
    assert out[6] == 0 and out[5] > 2
    assert np.abs(out[2] - exact.v_dev[0]).max() <= 1e-9 * 2.0
    stuck = fac.solve_sinh(volts, law.sinh[0], law.g0, law.sinh[1], law.g0, far, rtol=1e-11,
                           max_newton=1)
    assert stuck[6] == 1  # not converged: the solver says so (below), never returns it
    solver = CrossbarSolver(wires, max_newton=1)
    with pytest.raises(NonConvergenceError):
        solver.solve_one(t.stacked()[0], DeviceLaw.of_iv(g * 40, SinhIV(2.0, 6.0)))
