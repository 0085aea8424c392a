"""Compiled damped Newton for one case with sinh devices i = ga sinh(b v) on the line engine.

The Jacobian's line solves reuse the chain factorization and the preconditioned CG of
`solver_case_kernels` (rows eliminated exactly, CG on the column nodes). What is its own:
- the device evaluation: sinh and cosh from e^x - 1 computed by a polynomial after range
  reduction (1 ulp, no library call: the compiler vectorizes the loop; the library's expm1
  cost four times as much and was the largest part of a step);
- the KCL residual in three passes that vectorize (devices, row wires, column wires) and one
  reduction.

Without numba `AVAILABLE` is False (the caller uses the other engines).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.jit import AVAILABLE

__all__ = ["AVAILABLE", "NewtonWork", "sinh_case"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split: k ln2_hi exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
# Taylor coefficients 1/k! of e^r - 1 = r (1 + r/2! + ...), |r| <= ln2 / 2: truncation
# below 4e-18 relative
_C = tuple(1.0 / math.factorial(k) for k in range(2, 15))
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13, _C14 = _C
_X_MAX = 700.0  # |b v| clipped here: e^700 is finite (a wild Newton trial stays finite)

if AVAILABLE:
    from numba import njit

    from xbarlab.sim.solver_case_kernels import _factor_cols, _factor_rows, _pcg

    # no reassociation (it would undo the split of ln 2) and no NaN/inf assumptions (a NaN
    # state must fail Newton's test)
    _EXACT = {"nsz", "contract", "arcp"}

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _sinh_eval(  # type: ignore[no-untyped-def]
        y_row, y_col, yrs, yre, ycs, yce, vr, vc, ga, gb, b, b_r, b_c, fr, fc, i_dev, dg,
        bits,
    ):
        """At tap voltages (vr, vc) with sinh devices: KCL residual (`fr`, `fc`), device
        currents i = ga sinh(b v) and conductances dg = gb cosh(b v), from u = e^(bv) - 1
        (sinh = u (u + 2) / 2(1 + u), cosh = ((1 + u)^2 + 1) / 2(1 + u): no loss near 0).
        `bits` (M, N) int64 work. Returns (largest |residual|, largest |device current|);
        NaN if any is NaN."""
        m, n = vr.shape
        for i in range(m):  # e^x - 1 = 2^k (e^r - 1) + (2^k - 1), x = k ln2 + r
            for j in range(n):
                x = min(max(b * (vr[i, j] - vc[i, j]), -_X_MAX), _X_MAX)
                kf = np.floor(x * _LOG2E + 0.5)
                r = (x - kf * _LN2_HI) - kf * _LN2_LO
                q = r * (1.0 + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (
                    _C6 + r * (_C7 + r * (_C8 + r * (_C9 + r * (_C10 + r * (
                        _C11 + r * (_C12 + r * (_C13 + r * _C14)))))))))))))
                bits[i, j] = (np.int64(kf) + 1023) << 52
                fr[i, j] = q
        two_k = bits.view(np.float64)
        for i in range(m):
            for j in range(n):
                s = two_k[i, j]
                u = s * fr[i, j] + (s - 1.0)
                w = 1.0 + u
                h = 0.5 / w
                d = ga[i, j] * (u * (u + 2.0) * h)
                i_dev[i, j] = d
                dg[i, j] = gb[i, j] * ((w * w + 1.0) * h)
                fr[i, j] = d - b_r[i, j]
                fc[i, j] = -d - b_c[i, j]
        for i in range(m):  # row wires and their end pads
            fr[i, 0] += yrs[i] * vr[i, 0]
            fr[i, n - 1] += yre[i] * vr[i, n - 1]
            for j in range(n - 1):
                c = y_row[i, j] * (vr[i, j] - vr[i, j + 1])
                fr[i, j] += c
                fr[i, j + 1] -= c
        for j in range(n):  # column wires and their end pads
            fc[0, j] += ycs[j] * vc[0, j]
            fc[m - 1, j] += yce[j] * vc[m - 1, j]
        for i in range(m - 1):
            for j in range(n):
                c = y_col[i, j] * (vc[i, j] - vc[i + 1, j])
                fc[i, j] += c
                fc[i + 1, j] -= c
        worst = 0.0
        i_max = 0.0
        total = 0.0  # NaN anywhere makes it NaN (max() would drop it)
        for i in range(m):
            for j in range(n):
                a, c, d = abs(fr[i, j]), abs(fc[i, j]), abs(i_dev[i, j])
                worst = max(worst, max(a, c))
                i_max = max(i_max, d)
                total += a + c + d
        if total != total:
            return np.nan, np.nan
        return worst, i_max

    @njit(cache=True, nogil=True)
    def sinh_case(  # type: ignore[no-untyped-def]
        y_row, y_col, py, v, ga, gb, b, g0, x0, warm, rtol, max_newton, lin_rtol, max_iter,
        y_wire, kappa, lr, ir, lc, ic, dc, work, nwork, bits, state, v_dev, i_dev_out, i_pad,
        stats,
    ):
        """Damped Newton (the steps and line search of `solver._newton`) on one case with
        sinh devices i = ga sinh(b v), dI/dV = gb cosh(b v); start from the tap voltages
        `x0` (2, M, N) if `warm`, else from the linear solution with conductances `g0`. The
        answer's tap voltages go to `state` (2, M, N). The answer is judged by the KCL
        residual alone, as in `solver._newton`.

        Inexact Newton: a step's line solve stops at a residual well below what the step
        must reach. A step that cannot be the last one (the residual it leaves is predicted
        as `kappa` |F|^2, `kappa` (1/A) the smallest such ratio of an earlier full step, 0
        unknown, is ten times the tolerance or more) needs its line solve only well below
        that prediction; otherwise well below the tolerance (never looser than `lin_rtol`
        needs where the tolerance is near). `stats` (4,) gets CG iterations, line-search
        evaluations, Newton steps and factorizations. Returns (Newton iterations, status,
        largest KCL residual, the ratio `kappa` this solve measured, or the one given):
        status 0 converged, 1 not converged, 2 a linear solve did not converge, 3 a chain
        is not positive definite."""
        m, n = ga.shape
        yrs, yre = py[:m], py[m : 2 * m]
        ycs, yce = py[2 * m : 2 * m + n], py[2 * m + n :]
        b_r, b_c = work[7], work[8]
        vr, vc = nwork[12], nwork[13]
        for i in range(m):
            for j in range(n):
                b_r[i, j] = 0.0
                b_c[i, j] = 0.0
                if warm:
                    vr[i, j] = x0[0, i, j]
                    vc[i, j] = x0[1, i, j]
        for i in range(m):
            b_r[i, 0] += yrs[i] * v[i]
            b_r[i, n - 1] += yre[i] * v[m + i]
        for j in range(n):
            b_c[0, j] += ycs[j] * v[2 * m + j]
            b_c[m - 1, j] += yce[j] * v[2 * m + n + j]
        inj = 0.0
        for i in range(m):
            inj = max(inj, abs(b_r[i, 0]), abs(b_r[i, n - 1]))
        for j in range(n):
            inj = max(inj, abs(b_c[0, j]), abs(b_c[m - 1, j]))
        v_max = 0.0
        for k in range(v.shape[0]):
            v_max = max(v_max, abs(v[k]))
        i_scale = max(inj, y_wire * v_max)
        if not warm:
            stats[3] += 1
            if not (_factor_rows(y_row, yrs, yre, g0, lr, ir)
                    and _factor_cols(y_col, ycs, yce, g0, lc, ic, dc)):
                return 0, 3, 0.0, kappa
            _, done = _pcg(y_col, g0, lr, ir, lc, ic, dc, b_r, b_c, vc, False, lin_rtol,
                           max_iter, vr, work, work[10], False)
            if not done:
                return 0, 2, 0.0, kappa
        fr, fc, i_dev, dg = nwork[0], nwork[1], nwork[2], nwork[3]
        fr2, fc2, i_dev2, dg2 = nwork[4], nwork[5], nwork[6], nwork[7]
        xr, xc, dxr, dxc = nwork[8], nwork[9], nwork[10], nwork[11]
        fnorm, i0 = _sinh_eval(y_row, y_col, yrs, yre, ycs, yce, vr, vc, ga, gb, b, b_r,
                               b_c, fr, fc, i_dev, dg, bits)
        atol = max(rtol * i0, 16 * np.finfo(np.float64).eps * i_scale)
        its = 0
        status = 1
        measured = np.inf
        for it in range(1, max_newton + 1):
            if fnorm <= atol:
                its = it - 1
                status = 0
                break
            stats[2] += 1
            f2 = 0.0
            for i in range(m):
                for j in range(n):
                    fr[i, j] = -fr[i, j]
                    fc[i, j] = -fc[i, j]
                    f2 += fr[i, j] * fr[i, j] + fc[i, j] * fc[i, j]
            stats[3] += 1
            if not (_factor_rows(y_row, yrs, yre, dg, lr, ir)
                    and _factor_cols(y_col, ycs, yce, dg, lc, ic, dc)):
                return it, 3, fnorm, kappa
            # the step's own residual stays a tenth of what the step must (or will) reach:
            # CG bounds the 2-norm (>= the largest node residual) relative to its right-hand
            # side, the column loads with the row loads carried over (2-norm <= |F|_2)
            pred = kappa * fnorm * fnorm
            goal = 0.1 * pred if pred >= 10.0 * atol else atol
            eta = min(max(0.1 * goal / np.sqrt(f2), lin_rtol), 1e-3)
            cg, done = _pcg(y_col, dg, lr, ir, lc, ic, dc, fr, fc, dxc, False, eta, max_iter,
                            dxr, work, work[10], False)
            stats[0] += cg
            if not done:
                return it, 2, fnorm, kappa
            t = 1.0
            while True:
                for i in range(m):
                    for j in range(n):
                        xr[i, j] = vr[i, j] + t * dxr[i, j]
                        xc[i, j] = vc[i, j] + t * dxc[i, j]
                fn_try, _ = _sinh_eval(y_row, y_col, yrs, yre, ycs, yce, xr, xc, ga, gb, b,
                                       b_r, b_c, fr2, fc2, i_dev2, dg2, bits)
                stats[1] += 1
                if fn_try <= (1.0 - 1e-4 * t) * fnorm or t < 1e-4:
                    break
                t = t / 2.0
            if t == 1.0 and fn_try > atol:  # a full step short of the tolerance: its ratio
                measured = min(measured, fn_try / (fnorm * fnorm))
            vr, xr = xr, vr
            vc, xc = xc, vc
            fr, fr2 = fr2, fr
            fc, fc2 = fc2, fc
            i_dev, i_dev2 = i_dev2, i_dev
            dg, dg2 = dg2, dg
            fnorm = fn_try
        if status == 1 and fnorm <= atol:
            its = max_newton
            status = 0
        for i in range(m):
            for j in range(n):
                state[0, i, j] = vr[i, j]
                state[1, i, j] = vc[i, j]
                v_dev[i, j] = vr[i, j] - vc[i, j]
                i_dev_out[i, j] = i_dev[i, j]
        for i in range(m):
            t0 = yrs[i] + (yre[i] if n == 1 else 0.0)
            t1 = yre[i] + (yrs[i] if n == 1 else 0.0)
            i_pad[i] = yrs[i] * (v[i] - vr[i, 0]) + (
                yrs[i] / t0 * fr[i, 0] if t0 > 0 else 0.0)
            i_pad[m + i] = yre[i] * (v[m + i] - vr[i, n - 1]) + (
                yre[i] / t1 * fr[i, n - 1] if t1 > 0 else 0.0)
        for j in range(n):
            t0 = ycs[j] + (yce[j] if m == 1 else 0.0)
            t1 = yce[j] + (ycs[j] if m == 1 else 0.0)
            i_pad[2 * m + j] = ycs[j] * (v[2 * m + j] - vc[0, j]) + (
                ycs[j] / t0 * fc[0, j] if t0 > 0 else 0.0)
            i_pad[2 * m + n + j] = yce[j] * (v[2 * m + n + j] - vc[m - 1, j]) + (
                yce[j] / t1 * fc[m - 1, j] if t1 > 0 else 0.0)
        if status == 0 and measured < np.inf:
            kappa = measured
        return its, status, fnorm, kappa


class NewtonWork:
    """The work arrays of `sinh_case` on one (M, N) line system, made once, and the
    quadratic-convergence ratio each warm-start key's last solve measured."""

    def __init__(self, m: int, n: int, y_row: FloatArray, y_col: FloatArray,
                 keep: int = 16) -> None:
        self.nwork = np.empty((14, m, n))
        self.bits = np.empty((m, n), dtype=np.int64)
        self.y_wire = float(max(y_row.max(initial=0.0), y_col.max(initial=0.0)))
        self.kappa: OrderedDict[bytes, float] = OrderedDict()
        self.keep = keep

    def ratio(self, key: bytes | None) -> float:
        """The ratio last measured for `key` (0: unknown)."""
        if key is None:
            return 0.0
        return self.kappa.get(key, 0.0)

    def remember(self, key: bytes | None, kappa: float) -> None:
        if key is None or kappa <= 0.0:
            return
        self.kappa[key] = kappa
        self.kappa.move_to_end(key)
        while len(self.kappa) > self.keep:
            self.kappa.popitem(last=False)
