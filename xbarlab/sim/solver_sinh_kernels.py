"""Compiled damped Newton for one case with sinh devices i = ga sinh(b v) on the line engine.

The Jacobian's line solves reuse the chain factorization and the preconditioned CG of
`solver_case_kernels` (rows eliminated exactly, CG on the column nodes). What is its own:
- the device evaluation: sinh and cosh from the even and odd parts of one polynomial for
  e^r after range reduction x = k ln2 + r (2 ulp, exact near 0; no library call and no
  division, so the compiler vectorizes it: the library's expm1 alone cost three times the
  whole evaluation and made the evaluation the largest part of a Newton step);
- the KCL residual in passes that vectorize (row taps, column taps) and one reduction.

Without numba `AVAILABLE` is False (the caller uses the other engines).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.jit import AVAILABLE

__all__ = ["AVAILABLE", "NewtonWork", "sinh_case"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split: k ln2_hi exact for |k| < 2^20
_LN2_LO = 1.90821492927058770002e-10
# 1/k! (Taylor coefficients of e^r, |r| <= ln2 / 2: truncated below 1e-18 relative)
(_F2, _F3, _F4, _F5, _F6, _F7, _F8, _F9, _F10, _F11, _F12, _F13, _F14,
 _F15) = (1.0 / math.factorial(k) for k in range(2, 16))
CHORD = 300.0  # a chord step finishes below this many tolerances
_X_MAX = 700.0  # |b v| clipped here: e^700 is finite (a wild Newton trial stays finite)

if AVAILABLE:
    from numba import njit

    from xbarlab.sim.solver_case_kernels import (
        _factor_cols,
        _factor_rows,
        _pad_loads,
        _pcg,
        _solve_cols,
        _solve_rows,
    )

    # no reassociation (it would undo the split of ln 2) and no NaN/inf assumptions (a NaN
    # state must fail Newton's test)
    _EXACT = {"nsz", "contract", "arcp"}
    _SUMS = {"nsz", "contract", "arcp", "reassoc"}  # reductions of |x|: any order will do

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _exp_parts(vr, vc, b, even, odd, bits):  # type: ignore[no-untyped-def]
        """x = b (vr - vc) = k ln2 + r, |r| <= ln2 / 2: the even and odd parts of
        e^r - 1 (`even`, `odd`; e^r = 1 + even + odd, e^-r = 1 + even - odd) and the bit
        patterns of 2^k, 2^-k (`bits` (2, M, N) int64)."""
        m, n = vr.shape
        for i in range(m):
            for j in range(n):
                x = min(max(b * (vr[i, j] - vc[i, j]), -_X_MAX), _X_MAX)
                kf = np.floor(x * _LOG2E + 0.5)
                r = (x - kf * _LN2_HI) - kf * _LN2_LO
                r2 = r * r
                even[i, j] = r2 * (_F2 + r2 * (_F4 + r2 * (_F6 + r2 * (_F8 + r2 * (
                    _F10 + r2 * (_F12 + r2 * _F14))))))
                odd[i, j] = r * (1.0 + r2 * (_F3 + r2 * (_F5 + r2 * (_F7 + r2 * (
                    _F9 + r2 * (_F11 + r2 * (_F13 + r2 * _F15)))))))
                k = np.int64(kf)
                bits[0, i, j] = (1023 + k) << 52
                bits[1, i, j] = (1023 - k) << 52

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _sinh_cosh(ga, gb, even, odd, bits, i_dev, dg):  # type: ignore[no-untyped-def]
        """i = ga sinh(x), dg = gb cosh(x) from `_exp_parts`: with s, c = sinh, cosh(k ln2)
        and p = 1 + even, sinh x = s p + c odd, cosh x = c p + s odd (k = 0: sinh x = odd,
        no loss near 0)."""
        m, n = even.shape
        two_k = bits.view(np.float64)
        for i in range(m):
            for j in range(n):
                up, down = two_k[0, i, j], two_k[1, i, j]
                s, c = 0.5 * (up - down), 0.5 * (up + down)
                p, o = 1.0 + even[i, j], odd[i, j]
                i_dev[i, j] = ga[i, j] * (s * p + c * o)
                dg[i, j] = gb[i, j] * (c * p + s * o)

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _kcl_rows(y_row, yrs, yre, vr, b_r, i_dev, fr):  # type: ignore[no-untyped-def]
        """KCL residual of the row taps: devices out, wires and end pads."""
        m, n = vr.shape
        for i in range(m):
            if n == 1:
                fr[i, 0] = i_dev[i, 0] - b_r[i, 0] + (yrs[i] + yre[i]) * vr[i, 0]
                continue
            fr[i, 0] = (i_dev[i, 0] - b_r[i, 0] + yrs[i] * vr[i, 0]
                        + y_row[i, 0] * (vr[i, 0] - vr[i, 1]))
            for j in range(1, n - 1):
                fr[i, j] = (i_dev[i, j] - b_r[i, j] + y_row[i, j - 1] * (vr[i, j] - vr[i, j - 1])
                            + y_row[i, j] * (vr[i, j] - vr[i, j + 1]))
            fr[i, n - 1] = (i_dev[i, n - 1] - b_r[i, n - 1] + yre[i] * vr[i, n - 1]
                            + y_row[i, n - 2] * (vr[i, n - 1] - vr[i, n - 2]))

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _kcl_cols(y_col, ycs, yce, vc, b_c, i_dev, fc):  # type: ignore[no-untyped-def]
        """KCL residual of the column taps: devices in, wires and end pads (vectorized along
        the rows)."""
        m, n = vc.shape
        if m == 1:
            for j in range(n):
                fc[0, j] = -i_dev[0, j] - b_c[0, j] + (ycs[j] + yce[j]) * vc[0, j]
            return
        for j in range(n):
            fc[0, j] = (-i_dev[0, j] - b_c[0, j] + ycs[j] * vc[0, j]
                        + y_col[0, j] * (vc[0, j] - vc[1, j]))
        for i in range(1, m - 1):
            for j in range(n):
                fc[i, j] = (-i_dev[i, j] - b_c[i, j] + y_col[i - 1, j] * (vc[i, j] - vc[i - 1, j])
                            + y_col[i, j] * (vc[i, j] - vc[i + 1, j]))
        for j in range(n):
            fc[m - 1, j] = (-i_dev[m - 1, j] - b_c[m - 1, j] + yce[j] * vc[m - 1, j]
                            + y_col[m - 2, j] * (vc[m - 1, j] - vc[m - 2, j]))

    @njit(cache=True, nogil=True, fastmath=_SUMS)
    def _norms(fr, fc, i_dev):  # type: ignore[no-untyped-def]
        """(largest |residual|, largest |device current|, a sum that is NaN if any is);
        the maxima kept per column (they vectorize along the rows)."""
        m, n = fr.shape
        worst = np.zeros(n)
        i_max = np.zeros(n)
        total = 0.0
        for i in range(m):
            for j in range(n):
                a, c, d = abs(fr[i, j]), abs(fc[i, j]), abs(i_dev[i, j])
                worst[j] = max(worst[j], max(a, c))
                i_max[j] = max(i_max[j], d)
                total += a + c + d
        return worst.max(), i_max.max(), total

    @njit(cache=True, nogil=True, fastmath=_EXACT)
    def _chord_step(g, lr, ir, lc, ic, fr, fc, dxr, dxc):  # type: ignore[no-untyped-def]
        """(dxr, dxc) = the line engine's preconditioner applied to loads (fr, fc) on the
        factored chains of conductances `g`: the rows eliminated exactly, the column nodes'
        Schur complement replaced by the column chains (no CG)."""
        m, n = g.shape
        for i in range(m):
            for j in range(n):
                dxr[i, j] = fr[i, j]
        _solve_rows(lr, ir, dxr)
        for i in range(m):
            for j in range(n):
                dxc[i, j] = fc[i, j] + g[i, j] * dxr[i, j]
        _solve_cols(lc, ic, dxc)
        for i in range(m):
            for j in range(n):
                dxr[i, j] = fr[i, j] + g[i, j] * dxc[i, j]
        _solve_rows(lr, ir, dxr)

    @njit(cache=True, nogil=True)
    def _sinh_eval(  # type: ignore[no-untyped-def]
        y_row, y_col, yrs, yre, ycs, yce, vr, vc, ga, gb, b, b_r, b_c, fr, fc, i_dev, dg,
        bits,
    ):
        """At tap voltages (vr, vc) with sinh devices: KCL residual (`fr`, `fc`), device
        currents i = ga sinh(b v) and conductances dg = gb cosh(b v). `bits` (2, M, N)
        int64 work. Returns (largest |residual|, largest |device current|); NaN if any is
        NaN (a NaN state never passes Newton's test)."""
        _exp_parts(vr, vc, b, fr, fc, bits)  # fr, fc as scratch until the residual
        _sinh_cosh(ga, gb, fr, fc, bits, i_dev, dg)
        _kcl_rows(y_row, yrs, yre, vr, b_r, i_dev, fr)
        _kcl_cols(y_col, ycs, yce, vc, b_c, i_dev, fc)
        worst, i_max, total = _norms(fr, fc, i_dev)
        if total != total:
            return np.nan, np.nan
        return worst, i_max

    @njit(cache=True, nogil=True)
    def sinh_case(  # type: ignore[no-untyped-def]
        y_row, y_col, py, v, ga, gb, b, g0, x0, warm, rtol, max_newton, lin_rtol, max_iter,
        y_wire, kappa, memo, n_memo, newest, dst, lr, ir, lc, ic, dc, work, nwork, bits,
        state, v_dev, i_dev_out, i_pad, stats,
    ):
        """Damped Newton (the steps and line search of `solver._newton`) on one case with
        sinh devices i = ga sinh(b v), dI/dV = gb cosh(b v); start from the tap voltages
        `x0` (2, M, N) if `warm`, else from the linear solution with conductances `g0`. The
        answer's tap voltages go to `state` (2, M, N). The answer is judged by the KCL
        residual alone, as in `solver._newton`.

        What the key's last solves learned (`memo` (2, 2, 2, M, N): two slots of a start
        correction D and its start residual F, `n_memo` slots filled, `newest` the last;
        this solve writes slot `dst` when `warm`): a warm start x0 is moved to x0 + sum c D,
        the c fitting the F to this start's residual, when that lowers the residual (tried
        unless one step is predicted to reach the tolerance from x0).
        `kappa` (1/A): the smallest ratio |F_after| / |F_before|^2 of a full step on the
        key's last solve (0 unknown): the residual a step will leave is predicted as
        kappa |F|^2.

        Inexact Newton: a step's line solve stops at a residual a tenth of what the step
        must reach: the tolerance if the step may be the last (never looser than `lin_rtol`
        needs there), else the larger of a tenth of the prediction and of the chord range.
        A full step that leaves less than `CHORD` tolerances is followed by a chord step:
        the same factors, the line engine's preconditioner alone, no CG.

        `stats` (5,) gets CG iterations, residual evaluations after the start's, Newton
        steps (chord steps included), factorizations and chord steps. Returns (Newton
        iterations, status, largest KCL residual, the ratio `kappa` this solve measured, or
        the one given): status 0 converged, 1 not converged, 2 a linear solve did not
        converge, 3 a chain is not positive definite."""
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
        _pad_loads(py, v, b_r, b_c)
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
        saved = False
        # (not where one step is predicted to reach the tolerance from x0 already)
        one_step = kappa > 0.0 and kappa * fnorm * fnorm <= 0.5 * atol
        if warm and fnorm > atol and n_memo > 0 and not one_step:
            # the last solves of this kind moved their starts by D against start residuals
            # F (J D ~ -F): what moved the devices then (the same cell pulsed again, the
            # same amplitude step) moves them alike now, so x0 + sum c D with the c fitting
            # the F to this residual (least squares) is kept if its residual is smaller
            a, o = newest, 1 - newest
            g_aa = g_ab = g_bb = r_a = r_b = f_2 = 0.0
            for i in range(m):
                for j in range(n):
                    f_2 += fr[i, j] * fr[i, j] + fc[i, j] * fc[i, j]
                    fa0, fa1 = memo[a, 1, 0, i, j], memo[a, 1, 1, i, j]
                    g_aa += fa0 * fa0 + fa1 * fa1
                    r_a += fa0 * fr[i, j] + fa1 * fc[i, j]
                    if n_memo > 1:
                        fb0, fb1 = memo[o, 1, 0, i, j], memo[o, 1, 1, i, j]
                        g_ab += fa0 * fb0 + fa1 * fb1
                        g_bb += fb0 * fb0 + fb1 * fb1
                        r_b += fb0 * fr[i, j] + fb1 * fc[i, j]
            det = g_aa * g_bb - g_ab * g_ab
            if n_memo > 1 and det > 1e-9 * g_aa * g_bb:
                c_a = (r_a * g_bb - r_b * g_ab) / det
                c_b = (g_aa * r_b - g_ab * r_a) / det
            else:
                c_a = r_a / g_aa if g_aa > 0.0 else 0.0
                c_b = 0.0
            # worth a residual evaluation only if the fit explains most of this residual
            if c_a * r_a + c_b * r_b >= 0.5 * f_2:
                for i in range(m):
                    for j in range(n):
                        xr[i, j] = vr[i, j] + c_a * memo[a, 0, 0, i, j]
                        xc[i, j] = vc[i, j] + c_a * memo[a, 0, 1, i, j]
                        if c_b != 0.0:
                            xr[i, j] += c_b * memo[o, 0, 0, i, j]
                            xc[i, j] += c_b * memo[o, 0, 1, i, j]
                fn_try, i_try = _sinh_eval(y_row, y_col, yrs, yre, ycs, yce, xr, xc, ga, gb,
                                           b, b_r, b_c, fr2, fc2, i_dev2, dg2, bits)
                stats[1] += 1
                if fn_try < fnorm:
                    for i in range(m):  # the residual at x0, for the next solves' fits
                        for j in range(n):
                            memo[dst, 1, 0, i, j] = fr[i, j]
                            memo[dst, 1, 1, i, j] = fc[i, j]
                    vr, xr = xr, vr
                    vc, xc = xc, vc
                    fr, fr2 = fr2, fr
                    fc, fc2 = fc2, fc
                    i_dev, i_dev2 = i_dev2, i_dev
                    dg, dg2 = dg2, dg
                    fnorm = fn_try
                    atol = max(rtol * i_try, 16 * np.finfo(np.float64).eps * i_scale)
                    saved = True
        if warm and not saved:
            for i in range(m):
                for j in range(n):
                    memo[dst, 1, 0, i, j] = fr[i, j]
                    memo[dst, 1, 1, i, j] = fc[i, j]
        its = 0
        status = 1
        measured = np.inf
        chord = False  # the last step was a full Newton step on fresh factors
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
            if chord and fnorm <= CHORD * atol:
                # a last small residual after a full step: the step's Jacobian (its factors
                # in place, its conductances in dg2) and its preconditioner alone, no CG
                stats[4] += 1
                _chord_step(dg2, lr, ir, lc, ic, fr, fc, dxr, dxc)
                chord = newton = False
            else:
                stats[3] += 1
                if not (_factor_rows(y_row, yrs, yre, dg, lr, ir)
                        and _factor_cols(y_col, ycs, yce, dg, lc, ic, dc)):
                    return it, 3, fnorm, kappa
                # the step's own residual stays a tenth of what the step must (or will)
                # reach: CG bounds the 2-norm (>= the largest node residual) relative to its
                # right-hand side, the column loads with the row loads carried over
                # (2-norm <= |F|_2)
                # (a step predicted to leave the tolerance behind leaves up to a tenth of
                # the chord's range to the chord step that will follow)
                pred = kappa * fnorm * fnorm
                goal = max(0.1 * pred, 0.1 * CHORD * atol) if pred >= atol else atol
                eta = min(max(0.1 * goal / np.sqrt(f2), lin_rtol), 1e-3)
                cg, done = _pcg(y_col, dg, lr, ir, lc, ic, dc, fr, fc, dxc, False, eta,
                                max_iter, dxr, work, work[10], False)
                stats[0] += cg
                if not done:
                    return it, 2, fnorm, kappa
                chord = newton = True
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
            chord = chord and t == 1.0
            if newton and t == 1.0 and fn_try > atol:  # a full step short of the tolerance
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
                if warm:
                    memo[dst, 0, 0, i, j] = vr[i, j] - x0[0, i, j]
                    memo[dst, 0, 1, i, j] = vc[i, j] - x0[1, i, j]
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
    """The work arrays of `sinh_case` on one (M, N) line system, made once, and what each
    warm-start key's last solves learned: the quadratic-convergence ratio and up to two
    start corrections with their starts' residuals (a (2, 2, 2, M, N) memo: slot, D/F)."""

    def __init__(self, m: int, n: int, y_row: FloatArray, y_col: FloatArray,
                 keep: int = 16, budget: float = 32e6) -> None:
        self.shape = (m, n)
        self.nwork = np.empty((14, m, n))
        self.bits = np.empty((2, m, n), dtype=np.int64)
        self.y_wire = float(max(y_row.max(initial=0.0), y_col.max(initial=0.0)))
        #: key -> [ratio, memo, slots filled, newest slot]
        self._keys: OrderedDict[bytes, list[Any]] = OrderedDict()
        #: keys remembered: `keep`, fewer where their memos would pass `budget` bytes
        self.keep = max(2, min(keep, int(budget // (64 * m * n))))

    def recall(self, key: bytes | None) -> list[Any]:
        """[ratio (0: unknown), memo, slots filled, newest slot] of `key` (kept: `store`
        updates it)."""
        hit = self._keys.get(key) if key is not None else None
        if hit is None:
            hit = [0.0, np.empty((2, 2, 2, *self.shape)), 0, 0]
            if key is not None:
                self._keys[key] = hit
                while len(self._keys) > self.keep:
                    self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)  # type: ignore[arg-type]
        return hit

    @staticmethod
    def slot(entry: list[Any]) -> int:
        """The memo slot a warm solve of `entry` writes: the older one."""
        return 0 if entry[2] == 0 else 1 - int(entry[3])

    @staticmethod
    def store(entry: list[Any], kappa: float, warm: bool, ok: bool) -> None:
        """After a solve of `entry`'s key: its ratio, and its warm start's correction."""
        if not ok:
            entry[2] = 0  # a failed solve may have written a slot halfway
            return
        entry[0] = kappa
        if warm:
            entry[3] = NewtonWork.slot(entry)
            entry[2] = min(entry[2] + 1, 2)
