"""Compiled single-cell read or pulse on the line engine: one column's current (and, for a
pulse, every device voltage), nothing else.

The solve is `solver_case_kernels`' (CG on the column nodes on the kept chain factors, warm
started from the same case's last solution and the one before it); the tail differs. A read
needs the current of the selected column only: the row-node voltages of the two end rows
and the KCL residual of the column's two end taps give it, with the same formula as the full
tail (the pad current corrected by its tap's residual), so the answer is the same float
apart from rounding. A pulse also needs every device voltage (the device update), written
into the caller's array; it skips the device currents and the other pads.
The warm starts are passed as (array, factor) pairs and scaled inside the kernel (no scaled
copies made in Python).

Without numba `AVAILABLE` is False and the caller takes `CrossbarSolver.solve_one`.
"""

from __future__ import annotations

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.jit import AVAILABLE
from xbarlab.sim.solver_case_kernels import LineFactors

__all__ = ["AVAILABLE", "column_case"]

if AVAILABLE:
    from numba import njit

    from xbarlab.sim.solver_case_kernels import (
        _col_kcl,
        _col_pad_current,
        _pcg_columns,
        _prepare,
        _row_nodes,
        _solve_row,
    )

    @njit(cache=True, nogil=True)
    def _tap_current(y_col, ycs, yce, v, g, vr, vc, b_c, i, j, start):  # type: ignore[no-untyped-def]
        """Current the column pad at tap (i, j) delivers (`start`: the column's first tap,
        i = 0; else its last, i = M - 1): `_case`'s pad formula with its tap residual."""
        fc = _col_kcl(y_col, ycs, yce, vc, b_c, g[i, j] * (vr[i, j] - vc[i, j]), i, j)
        return _col_pad_current(ycs, yce, v, vc, fc, j, start)

    @njit(cache=True, nogil=True)
    def _column_case(  # type: ignore[no-untyped-def]
        y_row, y_col, py, v, g, refactor, lr, ir, lc, ic, dc, vc, x_last, f_last, x_prev,
        f_prev, mode, rtol, max_iter, vr, v_dev, devices, work, col,
    ):
        """Returns (CG iterations (-1: a chain is not positive definite), converged, the
        current column `col` sinks). `mode` 0: cold start; 1: from `f_last` * `x_last`;
        2: also along its change from `f_prev` * `x_prev`."""
        m, n = g.shape
        ycs, yce = py[2 * m : 2 * m + n], py[2 * m + n :]
        if not _prepare(y_row, y_col, py, v, g, refactor, lr, ir, lc, ic, dc, work):
            return -1, False, 0.0
        b_r, b_c = work[7], work[8]
        if mode > 0:
            for i in range(m):
                for j in range(n):
                    vc[i, j] = f_last * x_last[i, j]
        it, done = _pcg_columns(y_col, g, lr, ir, lc, ic, dc, b_r, b_c, vc, mode > 0, rtol,
                                max_iter, work, x_prev, f_prev, mode == 2)
        # T_r^-1 b_r; vr = T_r^-1 (b_r + D vc) (`vr` may be `work[1]`: free after the solve)
        trb, tmp = work[0], work[6]
        if devices:
            _row_nodes(g, lr, ir, vc, trb, tmp, vr)
            for i in range(m):
                for j in range(n):
                    v_dev[i, j] = vr[i, j] - vc[i, j]
        else:  # the end rows only: the column's end taps need no other row node
            for i in (0, m - 1):
                for j in range(n):
                    tmp[i, j] = g[i, j] * vc[i, j]
                _solve_row(lr, ir, tmp, i)
                for j in range(n):
                    vr[i, j] = trb[i, j] + tmp[i, j]
        i_start = _tap_current(y_col, ycs, yce, v, g, vr, vc, b_c, 0, col, True)
        i_end = _tap_current(y_col, ycs, yce, v, g, vr, vc, b_c, m - 1, col, False)
        return it, done, -(i_start + i_end)


def column_case(
    fac: LineFactors, volts: FloatArray, g: FloatArray, col: int,
    last: tuple[float, FloatArray] | None, prev: tuple[float, FloatArray] | None,
    v_dev: FloatArray | None, *, rtol: float = 1e-11, max_iter: int = 60,
) -> tuple[float, FloatArray, int, bool]:
    """(current column `col` sinks, column-node voltages, CG iterations, converged) of one
    case on `fac`'s kept factors: `volts` (P,) pad voltages (any finite value where open),
    `g` (M, N) conductances (refactored unless the same read-only array as last time),
    `last` / `prev` the warm starts as (factor, column-node voltages) (the voltages are only
    read), `v_dev` (M, N) filled with the device voltages if given. Iterations are -1 where
    a line chain is not positive definite."""
    m, n = fac.shape
    refactor = fac.refactoring(g)
    vc = np.empty((m, n))
    mode = 0 if last is None else 1 if prev is None else 2
    x_last, f_last = (last[1], last[0]) if last is not None else (vc, 0.0)
    x_prev, f_prev = (prev[1], prev[0]) if prev is not None else (vc, 0.0)
    devices = v_dev is not None
    it, done, i_col = _column_case(
        fac.y_row, fac.y_col, fac.pad_y, volts, g, refactor, fac.lr, fac.ir, fac.lc, fac.ic,
        fac.dc, vc, x_last, float(f_last), x_prev, float(f_prev), mode, float(rtol),
        int(max_iter), fac.work[1], v_dev if v_dev is not None else fac.work[6], devices,
        fac.work, int(col),
    )
    if it >= 0:
        fac.factored(g)
    return float(i_col), vc, int(it), bool(done)
