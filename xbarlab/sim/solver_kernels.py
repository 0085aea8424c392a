"""Compiled kernel of the line engine: preconditioned CG on the column nodes, one case at a
time, with the row lines eliminated by tridiagonal solves (the algorithm of
`solver_network.LineEngine`, see there).

Why compiled: a single-cell operation on a 64 x 64 array solves one right-hand side on 8192
nodes; as numpy calls that is about 200 calls of a few microseconds each, while the
arithmetic itself takes a few tens of microseconds. numba (a well-kept LLVM JIT, wheels
on PyPI for every platform numpy supports) compiles the loop once per machine and caches
it on disk. Without numba the numpy `LineEngine` does the same work (`AVAILABLE` is False).

Shapes: M x N cells; `y_row` (M, N-1) and `y_col` (M-1, N) are the internal segment
conductances; `yrs`, `yre` (M) and `ycs`, `yce` (N) the pad conductances at row starts, row
ends, column starts and column ends (0 = open); `dg` (1 or B, M, N) device conductances.
"""

from __future__ import annotations

import numpy as np

from xbarlab.crossbar import BoolArray, FloatArray

try:  # numba is a core dependency; the numpy engine stands in where it cannot load
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    AVAILABLE = False
else:
    AVAILABLE = True

IntVec = np.ndarray


if AVAILABLE:

    @njit(cache=True, nogil=True, fastmath=True)
    def _factor_rows(y_row, yrs, yre, g, lr, ir):  # type: ignore[no-untyped-def]
        """LDL^T of every row chain, transposed layout: multipliers `lr` (N-1, M), inverse
        pivots `ir` (N, M); the recurrence runs along j, vectorised across rows."""
        m, n = g.shape
        dprev = np.empty(m)
        for j in range(n):
            for i in range(m):
                d = g[i, j]
                d += yrs[i] if j == 0 else y_row[i, j - 1]
                d += yre[i] if j == n - 1 else y_row[i, j]
                if j > 0:
                    e = -y_row[i, j - 1]
                    lj = e / dprev[i]
                    lr[j - 1, i] = lj
                    d -= lj * e
                if not d > 0.0:
                    return False
                ir[j, i] = 1.0 / d
                dprev[i] = d
        return True

    @njit(cache=True, nogil=True, fastmath=True)
    def _factor_cols(y_col, ycs, yce, g, lc, ic, dc):  # type: ignore[no-untyped-def]
        """LDL^T of every column chain (along i): `lc` (M-1, N), inverse pivots `ic` (M, N);
        `dc` (M, N) gets the diagonal of T_c (devices included)."""
        m, n = g.shape
        dprev = np.empty(n)
        for i in range(m):
            for j in range(n):
                d = g[i, j]
                d += ycs[j] if i == 0 else y_col[i - 1, j]
                d += yce[j] if i == m - 1 else y_col[i, j]
                dc[i, j] = d
                if i > 0:
                    e = -y_col[i - 1, j]
                    li = e / dprev[j]
                    lc[i - 1, j] = li
                    d -= li * e
                if not d > 0.0:
                    return False
                ic[i, j] = 1.0 / d
                dprev[j] = d
        return True

    @njit(cache=True, nogil=True, fastmath=True)
    def _solve_chains(lc, ic, x):  # type: ignore[no-untyped-def]
        """x <- T^-1 x in place for chains along axis 0, vectorised along axis 1."""
        m, n = x.shape
        for i in range(1, m):
            for j in range(n):
                x[i, j] -= lc[i - 1, j] * x[i - 1, j]
        for i in range(m):
            for j in range(n):
                x[i, j] *= ic[i, j]
        for i in range(m - 2, -1, -1):
            for j in range(n):
                x[i, j] -= lc[i, j] * x[i + 1, j]

    @njit(cache=True, nogil=True, fastmath=True)
    def _schur(y_col, dc, g, lr, ir, x, tmp, out):  # type: ignore[no-untyped-def]
        """out <- (T_c - D T_r^-1 D) x, with T_c including D on its diagonal; `tmp` (N, M)."""
        m, n = x.shape
        for i in range(m):
            for j in range(n):
                tmp[j, i] = g[i, j] * x[i, j]
        _solve_chains(lr, ir, tmp)
        for i in range(m):
            for j in range(n):
                out[i, j] = dc[i, j] * x[i, j] - g[i, j] * tmp[j, i]
        for i in range(m - 1):
            for j in range(n):
                out[i, j] -= y_col[i, j] * x[i + 1, j]
                out[i + 1, j] -= y_col[i, j] * x[i, j]

    @njit(cache=True, nogil=True, fastmath=True)
    def _dot(a, b):  # type: ignore[no-untyped-def]
        m, n = a.shape
        s = 0.0
        for i in range(m):
            for j in range(n):
                s += a[i, j] * b[i, j]
        return s

    @njit(cache=True, nogil=True, fastmath=True)
    def _pcg_batch(  # type: ignore[no-untyped-def]
        y_row, y_col, yrs, yre, ycs, yce, dg, b_r, b_c, x0, warm, rtol, max_iter,
        vr, vc, iters, ok,
    ):
        bsz, m, n = b_r.shape
        shared = dg.shape[0] == 1
        lr = np.empty((max(n - 1, 0), m))
        ir = np.empty((n, m))
        lc = np.empty((max(m - 1, 0), n))
        ic = np.empty((m, n))
        dc = np.empty((m, n))
        rhs = np.empty((m, n))
        r = np.empty((m, n))
        z = np.empty((m, n))
        p = np.empty((m, n))
        q = np.empty((m, n))
        tmp = np.empty((n, m))
        trb = np.empty((n, m))
        tiny = np.finfo(np.float64).tiny
        for b in range(bsz):
            g = dg[0] if shared else dg[b]
            refactor = b == 0 or not shared
            if refactor and not (_factor_rows(y_row, yrs, yre, g, lr, ir)
                                 and _factor_cols(y_col, ycs, yce, g, lc, ic, dc)):
                iters[b:] = -1  # a chain is not positive definite
                return
            for i in range(m):
                for j in range(n):
                    trb[j, i] = b_r[b, i, j]
            _solve_chains(lr, ir, trb)  # T_r^-1 b_r, kept for the back-substitution
            for i in range(m):
                for j in range(n):
                    rhs[i, j] = b_c[b, i, j] + g[i, j] * trb[j, i]
            x = vc[b]
            if warm[b]:
                for i in range(m):
                    for j in range(n):
                        x[i, j] = x0[b, i, j]
            else:
                for i in range(m):
                    for j in range(n):
                        x[i, j] = rhs[i, j]
                _solve_chains(lc, ic, x)
            _schur(y_col, dc, g, lr, ir, x, tmp, q)
            for i in range(m):
                for j in range(n):
                    r[i, j] = rhs[i, j] - q[i, j]
            stop = rtol * np.sqrt(_dot(rhs, rhs)) + tiny
            done = np.sqrt(_dot(r, r)) <= stop
            for i in range(m):
                for j in range(n):
                    z[i, j] = r[i, j]
            _solve_chains(lc, ic, z)
            for i in range(m):
                for j in range(n):
                    p[i, j] = z[i, j]
            rz = _dot(r, z)
            it = 0
            while not done and it < max_iter:
                it += 1
                _schur(y_col, dc, g, lr, ir, p, tmp, q)
                pq = _dot(p, q)
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
                _solve_chains(lc, ic, z)
                rz_new = _dot(r, z)
                beta = 0.0 if rz == 0.0 else rz_new / rz
                for i in range(m):
                    for j in range(n):
                        p[i, j] = z[i, j] + beta * p[i, j]
                rz = rz_new
            iters[b] = it
            ok[b] = done
            # vr = T_r^-1 (b_r + D vc)
            for i in range(m):
                for j in range(n):
                    tmp[j, i] = g[i, j] * x[i, j]
            _solve_chains(lr, ir, tmp)
            for i in range(m):
                for j in range(n):
                    vr[b, i, j] = trb[j, i] + tmp[j, i]


def line_pcg(
    y_row: FloatArray,
    y_col: FloatArray,
    pad_y: FloatArray,
    dg: FloatArray,
    b_r: FloatArray,
    b_c: FloatArray,
    *,
    x0: FloatArray | None = None,
    warm: BoolArray | None = None,
    rtol: float = 1e-11,
    max_iter: int = 60,
) -> tuple[FloatArray, FloatArray, IntVec, BoolArray]:
    """(vr, vc) (B, M, N), iterations and convergence flag per case, compiled.

    `y_row` (M, N-1), `y_col` (M-1, N) segment conductances; `pad_y` (2M + 2N,) pad
    conductances in `Pads` order; `dg` (M, N) or (B, M, N); `x0` (B, M, N) warm starts of the
    column-node voltages used where `warm` (B,) is set. Iterations are -1 where a line
    chain is not positive definite (negative conductances).
    """
    bsz, m, n = b_r.shape
    dg3 = np.ascontiguousarray(dg.reshape(-1, m, n), dtype=np.float64)
    vr = np.empty((bsz, m, n))
    vc = np.empty((bsz, m, n))
    iters = np.zeros(bsz, dtype=np.int64)
    ok = np.zeros(bsz, dtype=np.bool_)
    if x0 is None or warm is None:
        x0 = np.empty((bsz, 0, 0))
        warm = np.zeros(bsz, dtype=np.bool_)
    py = np.ascontiguousarray(pad_y, dtype=np.float64)
    _pcg_batch(
        np.ascontiguousarray(y_row), np.ascontiguousarray(y_col),
        py[:m], py[m : 2 * m], py[2 * m : 2 * m + n], py[2 * m + n :],
        dg3, np.ascontiguousarray(b_r), np.ascontiguousarray(b_c),
        np.ascontiguousarray(x0), np.ascontiguousarray(warm), float(rtol), int(max_iter),
        vr, vc, iters, ok,
    )
    return vr, vc, iters, ok
