"""Compiled single-case solve of the line engine with factors kept between cases.

The algorithm of `solver_kernels` (CG on the column nodes, preconditioned by the column
chains, row lines eliminated exactly), laid out for one case at a time as a single-cell read
or pulse needs it:
- every array is row-major (M, N): the row chains' recurrences run along the contiguous axis,
  four rows interleaved (four independent chains keep the floating-point units busy as the
  column chains' vectorised loops do), so no transposed copy is written per iteration;
- the chain factors live in a workspace (`LineFactors`) and are refactored only when the
  device conductances changed (a pulse that follows a read of the same state reuses them);
- the tail computes the KCL residual and the pad currents in one pass; device voltages and
  currents only when asked (a read needs the pad currents alone).

Without numba `AVAILABLE` is False and the caller uses the other engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.jit import AVAILABLE

if TYPE_CHECKING:
    from xbarlab.sim.solver_sinh_kernels import NewtonWork

__all__ = ["AVAILABLE", "LineFactors"]

if AVAILABLE:
    from numba import njit

    # T_c^-1 x for chains along axis 0: the batched engine's column-chain solve, the same
    # row-major layout
    from xbarlab.sim.solver_kernels import _solve_chains as _solve_cols

    @njit(cache=True, nogil=True, fastmath=True)
    def _factor_row(y_row, yrs, yre, g, lr, ir, i):  # type: ignore[no-untyped-def]
        n = g.shape[1]
        inv = 0.0
        for j in range(n):
            d = g[i, j]
            d += yrs[i] if j == 0 else y_row[i, j - 1]
            d += yre[i] if j == n - 1 else y_row[i, j]
            if j > 0:
                e = -y_row[i, j - 1]
                lj = e * inv
                lr[i, j - 1] = lj
                d -= lj * e
            if not d > 0.0:
                return False
            inv = 1.0 / d
            ir[i, j] = inv
        return True

    @njit(cache=True, nogil=True, fastmath=True)
    def _factor_rows(y_row, yrs, yre, g, lr, ir):  # type: ignore[no-untyped-def]
        """LDL^T of every row chain: multipliers `lr` (M, N-1), inverse pivots `ir` (M, N);
        four rows interleaved (the recurrence runs along the contiguous axis)."""
        m, n = g.shape
        m4 = m - m % 4 if n > 1 else 0
        for i0 in range(0, m4, 4):
            ia = ib = ic = id_ = 0.0
            for j in range(n):
                da, db, dc_, dd = g[i0, j], g[i0 + 1, j], g[i0 + 2, j], g[i0 + 3, j]
                if j == 0:
                    da += yrs[i0]
                    db += yrs[i0 + 1]
                    dc_ += yrs[i0 + 2]
                    dd += yrs[i0 + 3]
                else:
                    ea, eb = y_row[i0, j - 1], y_row[i0 + 1, j - 1]
                    ec, ed = y_row[i0 + 2, j - 1], y_row[i0 + 3, j - 1]
                    da += ea
                    db += eb
                    dc_ += ec
                    dd += ed
                    la, lb, lc, ld = -ea * ia, -eb * ib, -ec * ic, -ed * id_
                    lr[i0, j - 1], lr[i0 + 1, j - 1] = la, lb
                    lr[i0 + 2, j - 1], lr[i0 + 3, j - 1] = lc, ld
                    da += la * ea
                    db += lb * eb
                    dc_ += lc * ec
                    dd += ld * ed
                if j == n - 1:
                    da += yre[i0]
                    db += yre[i0 + 1]
                    dc_ += yre[i0 + 2]
                    dd += yre[i0 + 3]
                else:
                    da += y_row[i0, j]
                    db += y_row[i0 + 1, j]
                    dc_ += y_row[i0 + 2, j]
                    dd += y_row[i0 + 3, j]
                if not (da > 0.0 and db > 0.0 and dc_ > 0.0 and dd > 0.0):
                    return False
                ia, ib, ic, id_ = 1.0 / da, 1.0 / db, 1.0 / dc_, 1.0 / dd
                ir[i0, j], ir[i0 + 1, j], ir[i0 + 2, j], ir[i0 + 3, j] = ia, ib, ic, id_
        ok = True
        for i in range(m4, m):  # numba compiles no generator: no all()
            ok = ok and _factor_row(y_row, yrs, yre, g, lr, ir, i)
        return ok

    @njit(cache=True, nogil=True, fastmath=True)
    def _factor_cols(y_col, ycs, yce, g, lc, ic, dc):  # type: ignore[no-untyped-def]
        """LDL^T of every column chain (along i): `lc` (M-1, N), inverse pivots `ic` (M, N);
        `dc` (M, N) gets the diagonal of T_c (devices included). Vectorised along j (no
        branch in the inner loop)."""
        m, n = g.shape
        bad = 0
        for i in range(m):
            gi, di, ci = g[i], dc[i], ic[i]
            ya = ycs if i == 0 else y_col[i - 1]
            yb = yce if i == m - 1 else y_col[i]
            if i == 0:
                for j in range(n):
                    d = gi[j] + ya[j] + yb[j]
                    di[j] = d
                    bad += 0 if d > 0.0 else 1
                    ci[j] = 1.0 / d
            else:
                cp, li = ic[i - 1], lc[i - 1]
                for j in range(n):
                    e = -ya[j]
                    d = gi[j] + ya[j] + yb[j]
                    di[j] = d
                    lij = e * cp[j]
                    li[j] = lij
                    d -= lij * e
                    bad += 0 if d > 0.0 else 1
                    ci[j] = 1.0 / d
        return bad == 0

    @njit(cache=True, nogil=True, fastmath=True)
    def _solve_row(l, ir, x, i):  # type: ignore[no-untyped-def]
        n = x.shape[1]
        p = x[i, 0]
        for j in range(1, n):
            p = x[i, j] - l[i, j - 1] * p
            x[i, j] = p
        p *= ir[i, n - 1]
        x[i, n - 1] = p
        for j in range(n - 2, -1, -1):
            p = x[i, j] * ir[i, j] - l[i, j] * p
            x[i, j] = p

    @njit(cache=True, nogil=True, fastmath=True)
    def _solve_rows(l, ir, x):  # type: ignore[no-untyped-def]
        """x <- T_r^-1 x in place, one chain per row (along the contiguous axis), four rows
        interleaved."""
        m, n = x.shape
        m4 = m - m % 4
        for i0 in range(0, m4, 4):
            a, b, c, d = x[i0], x[i0 + 1], x[i0 + 2], x[i0 + 3]
            la, lb, lc, ld = l[i0], l[i0 + 1], l[i0 + 2], l[i0 + 3]
            ia, ib, ic, id_ = ir[i0], ir[i0 + 1], ir[i0 + 2], ir[i0 + 3]
            pa, pb, pc, pd = a[0], b[0], c[0], d[0]
            for j in range(1, n):
                pa = a[j] - la[j - 1] * pa
                a[j] = pa
                pb = b[j] - lb[j - 1] * pb
                b[j] = pb
                pc = c[j] - lc[j - 1] * pc
                c[j] = pc
                pd = d[j] - ld[j - 1] * pd
                d[j] = pd
            pa *= ia[n - 1]
            pb *= ib[n - 1]
            pc *= ic[n - 1]
            pd *= id_[n - 1]
            a[n - 1], b[n - 1], c[n - 1], d[n - 1] = pa, pb, pc, pd
            for j in range(n - 2, -1, -1):
                pa = a[j] * ia[j] - la[j] * pa
                a[j] = pa
                pb = b[j] * ib[j] - lb[j] * pb
                b[j] = pb
                pc = c[j] * ic[j] - lc[j] * pc
                c[j] = pc
                pd = d[j] * id_[j] - ld[j] * pd
                d[j] = pd
        for i in range(m4, m):
            _solve_row(l, ir, x, i)

    @njit(cache=True, nogil=True, fastmath=True)
    def _schur_tmp(y_col, dc, g, lr, ir, x, tmp, out):  # type: ignore[no-untyped-def]
        """out <- (T_c - D T_r^-1 D) x (T_c with D on its diagonal), given `tmp` = D x
        (overwritten); returns x . out. The inner rows run without a branch (a branch in
        the inner loop keeps it from vectorizing: 2.6x slower at 64 x 64)."""
        m, n = x.shape
        _solve_rows(lr, ir, tmp)
        s = 0.0
        # the inner rows in a loop of their own: numba checks that the rows a loop reads do
        # not overlap the rows it writes once for all its rows, and a loop over every row
        # would count row M of `x` (past its end) among them. `x` and `out` are often
        # neighbouring slices of one work array: that check then fails and the scalar loop
        # runs (4x slower at 64 x 64).
        for i in range(1, m - 1):
            xi, gi, ti, di, oi = x[i], g[i], tmp[i], dc[i], out[i]
            ya, yb, xa, xb = y_col[i - 1], y_col[i], x[i - 1], x[i + 1]
            for j in range(n):
                v = di[j] * xi[j] - gi[j] * ti[j] - ya[j] * xa[j] - yb[j] * xb[j]
                oi[j] = v
                s += v * xi[j]
        for i in range(0, m, max(m - 1, 1)):  # the first and last rows
            xi, gi, ti, di, oi = x[i], g[i], tmp[i], dc[i], out[i]
            for j in range(n):
                v = di[j] * xi[j] - gi[j] * ti[j]
                if i > 0:
                    v -= y_col[i - 1, j] * x[i - 1, j]
                if i < m - 1:
                    v -= y_col[i, j] * x[i + 1, j]
                oi[j] = v
                s += v * xi[j]
        return s

    @njit(cache=True, nogil=True, fastmath=True)
    def _solve_cols_dot(lc, ic, x, r):  # type: ignore[no-untyped-def]
        """`_solve_cols` (x <- T_c^-1 x in place), returning r . x of the result from the
        back-substitution's sweep. The dot product is summed per column (`acc`) and the
        columns at the end: one running sum over every element is a chain of dependent
        adds that keeps the sweep from vectorizing (5x slower at 64 x 64)."""
        m, n = x.shape
        for i in range(1, m):
            for j in range(n):
                x[i, j] -= lc[i - 1, j] * x[i - 1, j]
        acc = np.empty(n)
        xl, il, rl = x[m - 1], ic[m - 1], r[m - 1]
        for j in range(n):
            v = xl[j] * il[j]
            xl[j] = v
            acc[j] = rl[j] * v
        for k in range(m - 1):
            i = m - 2 - k
            xi, xn, ii, li, ri = x[i], x[i + 1], ic[i], lc[i], r[i]
            for j in range(n):
                v = xi[j] * ii[j] - li[j] * xn[j]
                xi[j] = v
                acc[j] += ri[j] * v
        s = 0.0
        for j in range(n):
            s += acc[j]
        return s

    @njit(cache=True, nogil=True)
    def _row_loaded(x, i):  # type: ignore[no-untyped-def]
        """Whether row i of x has a nonzero entry."""
        k = 0
        n = x.shape[1]
        while k < n and x[i, k] == 0.0:
            k += 1
        return k < n

    @njit(cache=True, nogil=True, fastmath=True)
    def _pcg(  # type: ignore[no-untyped-def]
        y_col, g, lr, ir, lc, ic, dc, b_r, b_c, x, warm, rtol, max_iter, vr, work, xp,
        use_prev,
    ):
        """Column-node voltages `x` (start values if `warm`) and row-node voltages `vr` for
        loads `b_r`, `b_c` (M, N); returns (iterations, converged). With `use_prev` the
        start is the best combination (in the energy norm) of `x` and its change since
        `xp`, the solution before it: a device that moved the same way pulse after pulse
        moves the solution along about the same direction."""
        it, done = _pcg_columns(y_col, g, lr, ir, lc, ic, dc, b_r, b_c, x, warm, rtol,
                                max_iter, work, xp, 1.0, use_prev)
        _row_nodes(g, lr, ir, x, work[0], work[6], vr)
        return it, done

    @njit(cache=True, nogil=True, fastmath=True)
    def _row_nodes(g, lr, ir, x, trb, tmp, vr):  # type: ignore[no-untyped-def]
        """Row-node voltages vr = T_r^-1 (b_r + D x) = trb + T_r^-1 (D x), given the column
        nodes `x` and trb = T_r^-1 b_r (`tmp` is overwritten)."""
        m, n = x.shape
        for i in range(m):
            for j in range(n):
                tmp[i, j] = g[i, j] * x[i, j]
        _solve_rows(lr, ir, tmp)
        for i in range(m):
            for j in range(n):
                vr[i, j] = trb[i, j] + tmp[i, j]

    @njit(cache=True, nogil=True, fastmath=True)
    def _pcg_columns(  # type: ignore[no-untyped-def]
        y_col, g, lr, ir, lc, ic, dc, b_r, b_c, x, warm, rtol, max_iter, work, xp, fp,
        use_prev,
    ):
        """`_pcg`'s column-node voltages `x` alone (the row nodes are left to the caller:
        `work[0]` holds T_r^-1 b_r); the previous solution is `fp` * `xp`."""
        m, n = x.shape
        trb, rhs, r, z, p, q, tmp = (work[0], work[1], work[2], work[3], work[4], work[5],
                                     work[6])
        # T_r^-1 b_r, kept for the back-substitution; a row without load stays 0 (a read
        # drives one row: its other rows need no solve)
        loaded = 0
        for i in range(m):
            any_load = False
            for j in range(n):
                x_ij = b_r[i, j]
                trb[i, j] = x_ij
                any_load |= x_ij != 0.0
            loaded += any_load
        if 4 * loaded >= m:
            _solve_rows(lr, ir, trb)
        else:
            for i in range(m):
                if trb[i, 0] != 0.0 or trb[i, n - 1] != 0.0 or _row_loaded(trb, i):
                    _solve_row(lr, ir, trb, i)
        bb = 0.0
        for i in range(m):
            for j in range(n):
                v = b_c[i, j] + g[i, j] * trb[i, j]
                rhs[i, j] = v
                bb += v * v
        if not warm:
            for i in range(m):
                for j in range(n):
                    x[i, j] = rhs[i, j]
            _solve_cols(lc, ic, x)
        prev = warm and use_prev
        d, q2, tmp2 = work[9], work[10], z  # z is free until the residual is formed
        for i in range(m):  # D x
            for j in range(n):
                tmp[i, j] = g[i, j] * x[i, j]
        if prev:  # the change d since the previous solution, and D d
            for i in range(m):
                for j in range(n):
                    dij = x[i, j] - fp * xp[i, j]
                    d[i, j] = dij
                    tmp2[i, j] = g[i, j] * dij
        a11 = _schur_tmp(y_col, dc, g, lr, ir, x, tmp, q)
        c1, c2 = 1.0, 0.0
        if prev:
            a22 = _schur_tmp(y_col, dc, g, lr, ir, d, tmp2, q2)
            a12 = b1 = b2 = 0.0
            for i in range(m):
                for j in range(n):
                    a12 += d[i, j] * q[i, j]
                    b1 += x[i, j] * rhs[i, j]
                    b2 += d[i, j] * rhs[i, j]
            det = a11 * a22 - a12 * a12
            if a22 > 0.0 and det > 1e-12 * a11 * a22:
                c1 = (b1 * a22 - b2 * a12) / det
                c2 = (a11 * b2 - a12 * b1) / det
            else:
                prev = False
        if prev:  # the best start of the two
            for i in range(m):
                for j in range(n):
                    x[i, j] = c1 * x[i, j] + c2 * d[i, j]
                    q[i, j] = c1 * q[i, j] + c2 * q2[i, j]
        rr = 0.0
        for i in range(m):  # its residual
            for j in range(n):
                ri = rhs[i, j] - q[i, j]
                r[i, j] = ri
                z[i, j] = ri
                rr += ri * ri
        stop = rtol * np.sqrt(bb) + np.finfo(np.float64).tiny
        done = np.sqrt(rr) <= stop
        it = 0
        if not done:
            rz = _solve_cols_dot(lc, ic, z, r)
            beta = 0.0
            while it < max_iter:
                it += 1
                if it == 1:  # the new direction, and D p for the Schur product
                    for i in range(m):
                        for j in range(n):
                            pij = z[i, j]
                            p[i, j] = pij
                            tmp[i, j] = g[i, j] * pij
                else:
                    for i in range(m):
                        for j in range(n):
                            pij = z[i, j] + beta * p[i, j]
                            p[i, j] = pij
                            tmp[i, j] = g[i, j] * pij
                pq = _schur_tmp(y_col, dc, g, lr, ir, p, tmp, q)
                alpha = 0.0 if pq == 0.0 else rz / pq
                rr = 0.0
                for i in range(m):
                    for j in range(n):
                        x[i, j] += alpha * p[i, j]
                        ri = r[i, j] - alpha * q[i, j]
                        r[i, j] = ri
                        z[i, j] = ri
                        rr += ri * ri
                if np.sqrt(rr) <= stop:
                    done = True
                    break
                rz_new = _solve_cols_dot(lc, ic, z, r)
                beta = 0.0 if rz == 0.0 else rz_new / rz
                rz = rz_new
        return it, done

    @njit(cache=True, nogil=True)
    def _prepare(y_row, y_col, py, v, g, refactor, lr, ir, lc, ic, dc, work):  # type: ignore[no-untyped-def]
        """Before a single case: refactor the chains (`refactor` 0: keep them, 1: all, 2:
        the row chains and the column chains' diagonal `dc`, the column factors kept: they
        only precondition the CG, the rows and `dc` are part of its operator; False where
        a chain is not positive definite), and the pads' loads on the row and column nodes
        (`work[7]`, `work[8]`) for pad voltages `v` (P,)."""
        m, n = g.shape
        yrs, yre = py[:m], py[m : 2 * m]
        ycs, yce = py[2 * m : 2 * m + n], py[2 * m + n :]
        if refactor and not _factor_rows(y_row, yrs, yre, g, lr, ir):
            return False
        if refactor == 1 and not _factor_cols(y_col, ycs, yce, g, lc, ic, dc):
            return False
        if refactor == 2:
            for i in range(m):
                gi, di = g[i], dc[i]
                ya = ycs if i == 0 else y_col[i - 1]
                yb = yce if i == m - 1 else y_col[i]
                for j in range(n):
                    di[j] = gi[j] + ya[j] + yb[j]
        b_r, b_c = work[7], work[8]
        b_r[:, :] = 0.0
        b_c[:, :] = 0.0
        _pad_loads(py, v, b_r, b_c)
        return True

    @njit(cache=True, nogil=True)
    def _pad_loads(py, v, b_r, b_c):  # type: ignore[no-untyped-def]
        """Add the pads' loads y_pad v_pad on the end nodes of the lines to `b_r`, `b_c`
        (M, N) for pad voltages `v` (P,) and pad conductances `py` (P,)."""
        m, n = b_r.shape
        for i in range(m):
            b_r[i, 0] += py[i] * v[i]
            b_r[i, n - 1] += py[m + i] * v[m + i]
        for j in range(n):
            b_c[0, j] += py[2 * m + j] * v[2 * m + j]
            b_c[m - 1, j] += py[2 * m + n + j] * v[2 * m + n + j]

    @njit(cache=True, nogil=True)
    def _case(  # type: ignore[no-untyped-def]
        y_row, y_col, py, v, g, refactor, lr, ir, lc, ic, dc, vc, warm, rtol, max_iter,
        vr, v_dev, i_dev, i_pad, work, devices, xp, use_prev,
    ):
        m, n = g.shape
        yrs, yre = py[:m], py[m : 2 * m]
        ycs, yce = py[2 * m : 2 * m + n], py[2 * m + n :]
        if not _prepare(y_row, y_col, py, v, g, refactor, lr, ir, lc, ic, dc, work):
            return -1, False, 0.0
        b_r, b_c = work[7], work[8]
        it, done = _pcg(y_col, g, lr, ir, lc, ic, dc, b_r, b_c, vc, warm, rtol, max_iter, vr,
                        work, xp, use_prev)
        # KCL residual of every node (wires, pads, device) in one pass; the taps' residuals
        # give the pad currents (see `solver_kernels.line_case`)
        resid = 0.0
        f_r0 = work[2][:, 0]  # free rows of the work arrays: the tap residuals
        f_r1 = work[3][:, 0]
        f_c0 = work[4][0]
        f_c1 = work[5][0]
        for i in range(m):
            for j in range(n):
                vd = vr[i, j] - vc[i, j]
                d = g[i, j] * vd
                if devices:
                    v_dev[i, j] = vd
                    i_dev[i, j] = d
                fr = d - b_r[i, j]
                fc = -d - b_c[i, j]
                x = vr[i, j]
                if j == 0:
                    fr += yrs[i] * x
                else:
                    fr += y_row[i, j - 1] * (x - vr[i, j - 1])
                if j == n - 1:
                    fr += yre[i] * x
                else:
                    fr += y_row[i, j] * (x - vr[i, j + 1])
                # `_col_kcl`'s residual, written out: a call here keeps the loop 2x slower,
                # inlined (inline="always") too
                y = vc[i, j]
                if i == 0:
                    fc += ycs[j] * y
                else:
                    fc += y_col[i - 1, j] * (y - vc[i - 1, j])
                if i == m - 1:
                    fc += yce[j] * y
                else:
                    fc += y_col[i, j] * (y - vc[i + 1, j])
                a = abs(fr)
                if a > resid:
                    resid = a
                a = abs(fc)
                if a > resid:
                    resid = a
                if j == 0:
                    f_r0[i] = fr
                if j == n - 1:
                    f_r1[i] = fr
                if i == 0:
                    f_c0[j] = fc
                if i == m - 1:
                    f_c1[j] = fc
        for i in range(m):
            t0 = yrs[i] + (yre[i] if n == 1 else 0.0)
            t1 = yre[i] + (yrs[i] if n == 1 else 0.0)
            i_pad[i] = yrs[i] * (v[i] - vr[i, 0]) + (yrs[i] / t0 * f_r0[i] if t0 > 0 else 0.0)
            i_pad[m + i] = yre[i] * (v[m + i] - vr[i, n - 1]) + (
                yre[i] / t1 * f_r1[i] if t1 > 0 else 0.0)
        for j in range(n):
            i_pad[2 * m + j] = _col_pad_current(ycs, yce, v, vc, f_c0[j], j, True)
            i_pad[2 * m + n + j] = _col_pad_current(ycs, yce, v, vc, f_c1[j], j, False)
        return it, done, resid

    @njit(cache=True, nogil=True)
    def _col_kcl(y_col, ycs, yce, vc, b_c, d, i, j):  # type: ignore[no-untyped-def]
        """KCL residual of column tap (i, j) (wires, end pads, loads `b_c`) whose device
        carries `d` from its row to the column."""
        m = vc.shape[0]
        fc = -d - b_c[i, j]
        y = vc[i, j]
        if i == 0:
            fc += ycs[j] * y
        else:
            fc += y_col[i - 1, j] * (y - vc[i - 1, j])
        if i == m - 1:
            fc += yce[j] * y
        else:
            fc += y_col[i, j] * (y - vc[i + 1, j])
        return fc

    @njit(cache=True, nogil=True, inline="always")
    def _col_pad_current(ycs, yce, v, vc, fc, j, start):  # type: ignore[no-untyped-def]
        """Current the pad at column j's first tap (`start`) or last tap delivers, from pad
        voltages `v` (P,), the tap voltages `vc` and that tap's KCL residual `fc` (the pad
        current corrected by the residual, as `solver_kernels.line_case`)."""
        m, n = vc.shape
        if start:
            t0 = ycs[j] + (yce[j] if m == 1 else 0.0)
            return ycs[j] * (v[2 * m + j] - vc[0, j]) + (ycs[j] / t0 * fc if t0 > 0 else 0.0)
        t1 = yce[j] + (ycs[j] if m == 1 else 0.0)
        return yce[j] * (v[2 * m + n + j] - vc[m - 1, j]) + (yce[j] / t1 * fc if t1 > 0 else 0.0)

    @njit(cache=True, nogil=True)
    def _normalized(v, out, clean):  # type: ignore[no-untyped-def]
        s = 0.0
        for k in range(v.shape[0]):
            x = v[k]
            if x == x and abs(x) > abs(s):
                s = x
        for k in range(v.shape[0]):
            x = v[k]
            out[k] = x / s if s != 0.0 else x
            clean[k] = x if x == x else 0.0
        return s


def normalized(v: FloatArray, out: FloatArray, clean: FloatArray) -> float:
    """The driven value of largest magnitude s of pad voltages `v` (P,) (NaN = open; the
    first of equal magnitude), `out` = v / s (NaN stays NaN): equal for cases whose
    voltages are proportional (a warm-start key), and `clean` = v with 0 where open.
    Returns s, 0 when every driven pad is at 0 V."""
    return float(_normalized(v, out, clean))


STALE_COLUMNS = 4
"""Refactorings in a row that keep the column chains' factors (the CG's preconditioner): a
pulse moves a few percent of the devices' conductances, so the old factors precondition the
new state about as well, and their factorization was a sixth of a read."""


class LineFactors:
    """The chain factors of one pad pattern's line system and the work arrays of its
    single-case solves, kept while the device conductances stay the same array."""

    def __init__(self, y_row: FloatArray, y_col_rows: FloatArray, pad_y: FloatArray) -> None:
        m, n = y_row.shape[0], y_col_rows.shape[1]
        self.shape = (m, n)
        self.y_row = np.ascontiguousarray(y_row, dtype=np.float64)
        self.y_col = np.ascontiguousarray(y_col_rows, dtype=np.float64)
        self.pad_y = np.ascontiguousarray(pad_y, dtype=np.float64)
        self.lr = np.empty((m, max(n - 1, 1)))
        self.ir = np.empty((m, n))
        self.lc = np.empty((max(m - 1, 1), n))
        self.ic = np.empty((m, n))
        self.dc = np.empty((m, n))
        self.work = np.empty((11, m, n))
        self._newton: NewtonWork | None = None  # Newton's work arrays, made on first use
        #: the tap voltages (2, M, N) of the last `solve_sinh`, new for every solve
        self.state = np.empty((2, 0, 0))
        #: of the last `solve_sinh`: CG iterations of its steps, residual evaluations of its
        #: line searches, Newton steps, chain factorizations, chord steps
        self.stats = np.zeros(5, dtype=np.int64)
        self._g: FloatArray | None = None  # the read-only conductances factored
        #: the column factors are of a valid state (this workspace factored them), and the
        #: number of refactorings since that kept them
        self._cols_fresh = False
        self._stale = 0

    def refactoring(self, g: FloatArray) -> int:
        """How a case on conductances `g` refactors the kept chains (`_prepare`'s
        `refactor`): 0 when `g` is the read-only array they were factored for, else 2 (the
        column factors kept as the preconditioner) up to `STALE_COLUMNS` times in a row,
        else 1. The kept state is forgotten until the case succeeds (the caller then calls
        `factored`)."""
        if g is self._g and not g.flags.writeable:
            return 0
        self._g = None
        if self._cols_fresh and self._stale < STALE_COLUMNS:
            self._stale += 1
            return 2
        self._stale = 0
        self._cols_fresh = False  # until the case succeeds (`factored`)
        return 1

    def factored(self, g: FloatArray) -> None:
        """After a case on `g` succeeded: its factors are kept."""
        self._g = g
        self._cols_fresh = True

    def solve(
        self, volts: FloatArray, g: FloatArray, x0: FloatArray | None, *, devices: bool,
        rtol: float = 1e-11, max_iter: int = 60, x_prev: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray | None, FloatArray | None, FloatArray, int,
               bool, float]:
        """(vr, vc, v_dev, i_dev (None unless `devices`), i_pad, iterations, converged,
        largest KCL residual) of one case: `volts` (P,) pad voltages (any finite value where
        open), `g` (M, N) device conductances, `x0` (M, N) a start for the column-node
        voltages (a float64 C-contiguous `x0` is taken over: the answer overwrites it),
        `x_prev` the solution before `x0` (same scaling) for a two-vector start.
        Iterations are -1 where a line chain is not positive definite."""
        m, n = self.shape
        refactor = self.refactoring(g)
        vr = np.empty((m, n))
        if x0 is None:
            vc = np.empty((m, n))
        elif x0.dtype == np.float64 and x0.flags.c_contiguous and x0.flags.writeable:
            vc = x0
        else:
            vc = np.array(x0, dtype=np.float64)
        v_dev = np.empty((m, n)) if devices else self.work[6]
        i_dev = np.empty((m, n)) if devices else self.work[6]
        i_pad = np.empty(2 * m + 2 * n)
        it, done, resid = _case(
            self.y_row, self.y_col, self.pad_y, volts, g, refactor, self.lr, self.ir,
            self.lc, self.ic, self.dc, vc, x0 is not None, float(rtol), int(max_iter), vr,
            v_dev, i_dev, i_pad, self.work, devices,
            x_prev if x_prev is not None else self.work[10], x_prev is not None and x0 is not None,
        )
        if it >= 0:
            self.factored(g)
        if not devices:
            return vr, vc, None, None, i_pad, int(it), bool(done), float(resid)
        return vr, vc, v_dev, i_dev, i_pad, int(it), bool(done), float(resid)


    def solve_sinh(
        self, volts: FloatArray, ga: FloatArray, gb: FloatArray, b: float, g0: FloatArray,
        x0: FloatArray | None, *, rtol: float, max_newton: int, lin_rtol: float = 1e-11,
        max_iter: int = 60, key: bytes | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, int, int, float]:
        """(vr, vc, v_dev, i_dev, i_pad, Newton iterations, status, largest KCL residual) of
        one case with sinh devices i = ga sinh(b v) (dI/dV = gb cosh(b v)): Newton from
        `x0` (2, M, N) tap voltages if given, else from the linear solution at conductances
        `g0`. Status 0 converged, 1 not converged in `max_newton` iterations, 2 a line solve
        did not converge, 3 a chain is not positive definite. `vr`, `vc` are views of
        `state` (2, M, N), new for every solve. `key` names the case's kind (a warm-start
        key): how its last solve corrected its start corrects this start, and how fast
        Newton converged then sets how exactly a first step's line solve is done. The chain
        factors are left for the Jacobian (the kept factors are forgotten)."""
        from xbarlab.sim.solver_sinh_kernels import NewtonWork, sinh_case  # imports this

        m, n = self.shape
        self._g = None
        self._cols_fresh = False  # the chains now hold the Jacobian's factors
        nw = self._newton
        if nw is None:
            nw = self._newton = NewtonWork(m, n, self.y_row, self.y_col)
        self.stats[:] = 0
        self.state = state = np.empty((2, m, n))
        v_dev, i_dev, i_pad = np.empty((m, n)), np.empty((m, n)), np.empty(2 * m + 2 * n)
        start = state if x0 is None else np.ascontiguousarray(x0, dtype=np.float64)
        entry = nw.recall(key)
        its, status, resid, kappa = sinh_case(
            self.y_row, self.y_col, self.pad_y, volts, ga, gb, float(b), g0, start,
            x0 is not None, float(rtol), int(max_newton), float(lin_rtol), int(max_iter),
            nw.y_wire, float(entry[0]), entry[1], int(entry[2]), int(entry[3]),
            nw.slot(entry), self.lr, self.ir, self.lc, self.ic, self.dc, self.work, nw.nwork,
            nw.bits, state, v_dev, i_dev, i_pad, self.stats,
        )
        nw.store(entry, kappa, x0 is not None, status == 0)
        return state[0], state[1], v_dev, i_dev, i_pad, int(its), int(status), float(resid)
