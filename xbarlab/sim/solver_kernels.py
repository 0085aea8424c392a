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

# numba is a core dependency; the numpy engine stands in where it cannot load
from xbarlab.sim.jit import AVAILABLE

if AVAILABLE:
    from numba import njit

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
        for j in range(n):
            x[m - 1, j] *= ic[m - 1, j]
        for i in range(m - 2, -1, -1):
            for j in range(n):
                x[i, j] = x[i, j] * ic[i, j] - lc[i, j] * x[i + 1, j]

    @njit(cache=True, nogil=True, fastmath=True)
    def _schur(y_col, dc, g, lr, ir, x, tmp, out):  # type: ignore[no-untyped-def]
        """out <- (T_c - D T_r^-1 D) x, with T_c including D on its diagonal; `tmp` (N, M).
        Returns x . out."""
        m, n = x.shape
        for i in range(m):
            for j in range(n):
                tmp[j, i] = g[i, j] * x[i, j]
        _solve_chains(lr, ir, tmp)
        s = 0.0
        for i in range(m):
            for j in range(n):
                v = dc[i, j] * x[i, j] - g[i, j] * tmp[j, i]
                if i > 0:
                    v -= y_col[i - 1, j] * x[i - 1, j]
                if i < m - 1:
                    v -= y_col[i, j] * x[i + 1, j]
                out[i, j] = v
                s += v * x[i, j]
        return s

    @njit(cache=True, nogil=True, fastmath=True)
    def _dot(a, b):  # type: ignore[no-untyped-def]
        m, n = a.shape
        s = 0.0
        for i in range(m):
            for j in range(n):
                s += a[i, j] * b[i, j]
        return s

    @njit(cache=True, nogil=True, fastmath=True)
    def _pcg_one(  # type: ignore[no-untyped-def]
        y_col, g, lr, ir, lc, ic, dc, b_r, b_c, x, warm, rtol, max_iter, vr, work, trb, tmp
    ):
        """One case: column-node voltages `x` (M, N; start values if `warm`) and row-node
        voltages `vr` for loads `b_r`, `b_c`; returns (iterations, converged)."""
        m, n = x.shape
        rhs, r, z, p, q = work[0], work[1], work[2], work[3], work[4]
        for i in range(m):
            for j in range(n):
                trb[j, i] = b_r[i, j]
        _solve_chains(lr, ir, trb)  # T_r^-1 b_r, kept for the back-substitution
        for i in range(m):
            for j in range(n):
                rhs[i, j] = b_c[i, j] + g[i, j] * trb[j, i]
        if not warm:
            for i in range(m):
                for j in range(n):
                    x[i, j] = rhs[i, j]
            _solve_chains(lc, ic, x)
        _schur(y_col, dc, g, lr, ir, x, tmp, q)
        rr = 0.0
        for i in range(m):
            for j in range(n):
                ri = rhs[i, j] - q[i, j]
                r[i, j] = ri
                z[i, j] = ri
                rr += ri * ri
        stop = rtol * np.sqrt(_dot(rhs, rhs)) + np.finfo(np.float64).tiny
        done = np.sqrt(rr) <= stop
        _solve_chains(lc, ic, z)
        for i in range(m):
            for j in range(n):
                p[i, j] = z[i, j]
        rz = _dot(r, z)
        it = 0
        while not done and it < max_iter:
            it += 1
            pq = _schur(y_col, dc, g, lr, ir, p, tmp, q)
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
            rz_new = 0.0
            for i in range(m):
                for j in range(n):
                    rz_new += r[i, j] * z[i, j]
            beta = 0.0 if rz == 0.0 else rz_new / rz
            for i in range(m):
                for j in range(n):
                    p[i, j] = z[i, j] + beta * p[i, j]
            rz = rz_new
        # vr = T_r^-1 (b_r + D vc)
        for i in range(m):
            for j in range(n):
                tmp[j, i] = g[i, j] * x[i, j]
        _solve_chains(lr, ir, tmp)
        for i in range(m):
            for j in range(n):
                vr[i, j] = trb[j, i] + tmp[j, i]
        return it, done

    @njit(cache=True, nogil=True)
    def _padded(rows, cols):  # type: ignore[no-untyped-def]
        """An uninitialised (rows, cols) array whose rows are 8 doubles longer than needed:
        transposed writes with a power-of-two stride would thrash the cache's sets."""
        return np.empty((rows, cols + 8))[:, :cols]

    @njit(cache=True, nogil=True)
    def _factors(y_row, y_col, yrs, yre, ycs, yce, g, lr, ir, lc, ic, dc):  # type: ignore[no-untyped-def]
        return (_factor_rows(y_row, yrs, yre, g, lr, ir)
                and _factor_cols(y_col, ycs, yce, g, lc, ic, dc))

    @njit(cache=True, nogil=True)
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
        work = np.empty((5, m, n))
        trb = _padded(n, m)
        tmp = _padded(n, m)
        for b in range(bsz):
            g = dg[0] if shared else dg[b]
            refactor = b == 0 or not shared
            if refactor and not _factors(y_row, y_col, yrs, yre, ycs, yce, g, lr, ir, lc, ic,
                                         dc):
                iters[b:] = -1  # a chain is not positive definite
                return
            if warm[b]:
                vc[b] = x0[b]
            it, done = _pcg_one(y_col, g, lr, ir, lc, ic, dc, b_r[b], b_c[b], vc[b], warm[b],
                                rtol, max_iter, vr[b], work, trb, tmp)
            iters[b] = it
            ok[b] = done


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


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _kcl_batch(  # type: ignore[no-untyped-def]
        y_row, y_col, yrs, yre, ycs, yce, vr, vc, i_dev, b_r, b_c, f
    ):
        bsz, m, n = vr.shape
        for b in range(bsz):
            for i in range(m):
                for j in range(n):
                    d = i_dev[b, i, j]
                    f[b, 0, i, j] = d - b_r[b, i, j]
                    f[b, 1, i, j] = -d - b_c[b, i, j]
            for i in range(m):
                f[b, 0, i, 0] += yrs[i] * vr[b, i, 0]
                f[b, 0, i, n - 1] += yre[i] * vr[b, i, n - 1]
                for j in range(n - 1):
                    c = y_row[i, j] * (vr[b, i, j] - vr[b, i, j + 1])
                    f[b, 0, i, j] += c
                    f[b, 0, i, j + 1] -= c
            for j in range(n):
                f[b, 1, 0, j] += ycs[j] * vc[b, 0, j]
                f[b, 1, m - 1, j] += yce[j] * vc[b, m - 1, j]
            for i in range(m - 1):
                for j in range(n):
                    c = y_col[i, j] * (vc[b, i, j] - vc[b, i + 1, j])
                    f[b, 1, i, j] += c
                    f[b, 1, i + 1, j] -= c


def line_kcl(
    y_row: FloatArray,
    y_col: FloatArray,
    pad_y: FloatArray,
    vr: FloatArray,
    vc: FloatArray,
    i_dev: FloatArray,
    b_r: FloatArray,
    b_c: FloatArray,
) -> FloatArray:
    """KCL residual (B, 2, M, N) at the row (0) and column (1) taps: current leaving each
    tap through wires, pads and devices minus the pad injections `b_r`, `b_c`."""
    bsz, m, n = vr.shape
    f = np.empty((bsz, 2, m, n))
    py = np.ascontiguousarray(pad_y, dtype=np.float64)
    _kcl_batch(
        np.ascontiguousarray(y_row), np.ascontiguousarray(y_col),
        py[:m], py[m : 2 * m], py[2 * m : 2 * m + n], py[2 * m + n :],
        np.ascontiguousarray(vr), np.ascontiguousarray(vc), np.ascontiguousarray(i_dev),
        np.ascontiguousarray(b_r), np.ascontiguousarray(b_c), f,
    )
    return f


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _case(  # type: ignore[no-untyped-def]
        y_row, y_col, py, v, g, x0, warm, rtol, max_iter, vr, vc, i_dev, i_pad, f
    ):
        m, n = g.shape
        yrs, yre = py[:m], py[m : 2 * m]
        ycs, yce = py[2 * m : 2 * m + n], py[2 * m + n :]
        lr = np.empty((max(n - 1, 0), m))
        ir = np.empty((n, m))
        lc = np.empty((max(m - 1, 0), n))
        ic = np.empty((m, n))
        dc = np.empty((m, n))
        if not _factors(y_row, y_col, yrs, yre, ycs, yce, g, lr, ir, lc, ic, dc):
            return -1, False, 0.0
        b_r = np.zeros((1, m, n))
        b_c = np.zeros((1, m, n))
        for i in range(m):
            b_r[0, i, 0] += yrs[i] * v[i]
            b_r[0, i, n - 1] += yre[i] * v[m + i]
        for j in range(n):
            b_c[0, 0, j] += ycs[j] * v[2 * m + j]
            b_c[0, m - 1, j] += yce[j] * v[2 * m + n + j]
        if warm:
            vc[:, :] = x0
        work = np.empty((5, m, n))
        trb = _padded(n, m)
        tmp = _padded(n, m)
        it, done = _pcg_one(y_col, g, lr, ir, lc, ic, dc, b_r[0], b_c[0], vc, warm, rtol,
                            max_iter, vr, work, trb, tmp)
        for i in range(m):
            for j in range(n):
                i_dev[i, j] = g[i, j] * (vr[i, j] - vc[i, j])
        _kcl_batch(y_row, y_col, yrs, yre, ycs, yce, vr.reshape(1, m, n),
                   vc.reshape(1, m, n), i_dev.reshape(1, m, n), b_r, b_c, f)
        resid = np.abs(f).max()
        # pad currents from each tap's KCL (see `line_case`)
        for i in range(m):
            t0 = yrs[i] + (yre[i] if n == 1 else 0.0)
            t1 = yre[i] + (yrs[i] if n == 1 else 0.0)
            i_pad[i] = yrs[i] * (v[i] - vr[i, 0]) + (
                yrs[i] / t0 * f[0, 0, i, 0] if t0 > 0 else 0.0)
            i_pad[m + i] = yre[i] * (v[m + i] - vr[i, n - 1]) + (
                yre[i] / t1 * f[0, 0, i, n - 1] if t1 > 0 else 0.0)
        for j in range(n):
            t0 = ycs[j] + (yce[j] if m == 1 else 0.0)
            t1 = yce[j] + (ycs[j] if m == 1 else 0.0)
            i_pad[2 * m + j] = ycs[j] * (v[2 * m + j] - vc[0, j]) + (
                ycs[j] / t0 * f[0, 1, 0, j] if t0 > 0 else 0.0)
            i_pad[2 * m + n + j] = yce[j] * (v[2 * m + n + j] - vc[m - 1, j]) + (
                yce[j] / t1 * f[0, 1, m - 1, j] if t1 > 0 else 0.0)
        return it, done, resid


def line_case(
    y_row: FloatArray,
    y_col: FloatArray,
    pad_y: FloatArray,
    volts: FloatArray,
    g: FloatArray,
    x0: FloatArray | None,
    *,
    rtol: float = 1e-11,
    max_iter: int = 60,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, int, bool, float]:
    """One linear case end to end, compiled: (vr, vc, i_dev (M, N), i_pad (P,), iterations,
    converged, largest KCL residual). `volts` (P,) pad voltages (any value where open);
    `x0` (M, N) a start for the column-node voltages. Pad currents come from each tap's
    KCL (wires and device), not from y_pad (V - v): with a tiny terminal resistance the
    latter would multiply the node error by 1/R. Iterations are -1 where a line chain is not
    positive definite."""
    m, n = g.shape
    vr = np.empty((m, n))
    vc = np.empty((m, n))
    i_dev = np.empty((m, n))
    i_pad = np.empty(2 * m + 2 * n)
    f = np.empty((1, 2, m, n))
    warm = x0 is not None
    it, done, resid = _case(
        y_row, y_col, pad_y, volts, g, x0 if x0 is not None else vc, warm, float(rtol),
        int(max_iter), vr, vc, i_dev, i_pad, f,
    )
    return vr, vc, i_dev, i_pad, int(it), bool(done), float(resid)


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _update_sets(indptr, indices, starts):  # type: ignore[no-untyped-def]
        nfront = starts.size - 1
        n = starts[-1]
        stamp = np.full(n, -1, dtype=np.int64)
        parent = np.full(nfront, -1, dtype=np.int64)
        height = np.zeros(nfront, dtype=np.int64)
        first_child = np.full(nfront, -1, dtype=np.int64)
        next_sib = np.full(nfront, -1, dtype=np.int64)
        cap = max(16, 8 * n)
        flat = np.empty(cap, dtype=np.int64)
        ptr = np.zeros(nfront + 1, dtype=np.int64)
        owner = np.empty(n, dtype=np.int64)
        for t in range(nfront):
            for k in range(starts[t], starts[t + 1]):
                owner[k] = t
        buf = np.empty(n, dtype=np.int64)
        for t in range(nfront):
            s, e = starts[t], starts[t + 1]
            cnt = 0
            for r in range(s, e):
                for q in range(indptr[r], indptr[r + 1]):
                    x = indices[q]
                    if x >= e and stamp[x] != t:
                        stamp[x] = t
                        buf[cnt] = x
                        cnt += 1
            c = first_child[t]
            while c >= 0:
                height[t] = max(height[t], height[c] + 1)
                for q in range(ptr[c], ptr[c + 1]):
                    x = flat[q]
                    if x >= e and stamp[x] != t:
                        stamp[x] = t
                        buf[cnt] = x
                        cnt += 1
                c = next_sib[c]
            mine = np.sort(buf[:cnt])
            if ptr[t] + cnt > flat.size:
                grown = np.empty(2 * flat.size + cnt, dtype=np.int64)
                grown[: ptr[t]] = flat[: ptr[t]]
                flat = grown
            flat[ptr[t] : ptr[t] + cnt] = mine
            ptr[t + 1] = ptr[t] + cnt
            if cnt:  # the parent eliminates the first node this front updates
                p = owner[mine[0]]
                parent[t] = p
                next_sib[t] = first_child[p]
                first_child[p] = t
        return flat[: ptr[nfront]], ptr, parent, height


def update_sets(
    indptr: IntVec, indices: IntVec, starts: IntVec
) -> tuple[IntVec, IntVec, IntVec, IntVec]:
    """Update sets of fronts eliminated in order: front t eliminates positions
    starts[t]..starts[t+1]-1 of a matrix whose upper triangle is the CSR (`indptr`,
    `indices`) over positions. Returns the sets concatenated (sorted each) with their
    offsets, the parent and the height of every front."""
    flat, ptr, parent, height = _update_sets(
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(indices, dtype=np.int64),
        np.ascontiguousarray(starts, dtype=np.int64),
    )
    return flat, ptr, parent, height
