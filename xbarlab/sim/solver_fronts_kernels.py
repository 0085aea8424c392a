"""Compiled loops of the direct engine's first solve: the multifrontal factor's extend-add,
the solve's row gathers and scatters, and the KCL residual check of a direct solve.

Why compiled: these steps are index arithmetic over arrays of tens of megabytes; as numpy
calls each builds its index arrays and temporaries (a pass over memory each), while a loop
reads and writes every value once. numba (a core dependency, see `solver_kernels`) compiles
them once per machine and caches them on disk. No `fastmath`: the arithmetic is the same
IEEE operations as the numpy code they replace, NaN included. Without numba (`AVAILABLE`
False) the callers keep their numpy paths.
"""

from __future__ import annotations

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.solver_kernels import AVAILABLE

if AVAILABLE:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _kcl_grid(  # type: ignore[no-untyped-def]
        vt, i_dev, y_row, y_col, pad_node, pad_y, inj, inj_node, free, all_free, want, f_want
    ):
        m = i_dev.shape[1]
        n = i_dev.shape[2]
        mn = m * n
        bsz = vt.shape[0]
        f = np.empty(2 * mn)
        worst = 0.0
        nan = False
        for b in range(bsz):
            v = vt[b]
            for i in range(m):
                for j in range(n):
                    r = i * n + j
                    x = v[r]
                    s = i_dev[b, i, j]
                    if j > 0:
                        s += y_row[i, j - 1] * (x - v[r - 1])
                    if j < n - 1:
                        s += y_row[i, j] * (x - v[r + 1])
                    f[r] = s
                    c = mn + r
                    x = v[c]
                    s = -i_dev[b, i, j]
                    if i > 0:
                        s += y_col[i - 1, j] * (x - v[c - n])
                    if i < m - 1:
                        s += y_col[i, j] * (x - v[c + n])
                    f[c] = s
            for p in range(pad_node.size):
                if pad_y[p] != 0.0:
                    f[pad_node[p]] += pad_y[p] * v[pad_node[p]]
            for k in range(inj_node.size):
                f[inj_node[k]] -= inj[inj_node[k], b]
            for k in range(2 * mn):
                if all_free or free[k]:
                    a = abs(f[k])
                    if a != a:  # NaN: the check fails, as numpy's max would say
                        nan = True
                    elif a > worst:
                        worst = a
            for k in range(want.size):
                f_want[k, b] = f[want[k]]
        return np.nan if nan else worst

    @njit(cache=True, nogil=True)
    def gather_rows(b, sel, c0, w):  # type: ignore[no-untyped-def]
        """w[i, :] = b[sel[i], c0 : c0 + w.shape[1]]; returns which rows of w are nonzero."""
        nrhs = w.shape[1]
        nz = np.zeros(sel.size, dtype=np.bool_)
        for i in range(sel.size):
            src = b[sel[i]]
            hit = False
            for k in range(nrhs):
                x = src[c0 + k]
                w[i, k] = x
                if x != 0.0:
                    hit = True
            nz[i] = hit
        return nz

    @njit(cache=True, nogil=True)
    def gather_some(b, rows, inv, c0, w):  # type: ignore[no-untyped-def]
        """w[inv[r], :] = b[r, c0 : c0 + w.shape[1]] for the rows r of `rows` (`w` zero
        elsewhere); returns which rows of w are nonzero."""
        nrhs = w.shape[1]
        nz = np.zeros(w.shape[0], dtype=np.bool_)
        for q in range(rows.size):
            r = rows[q]
            i = inv[r]
            hit = False
            for k in range(nrhs):
                x = b[r, c0 + k]
                w[i, k] = x
                if x != 0.0:
                    hit = True
            nz[i] = nz[i] or hit
        return nz

    @njit(cache=True, nogil=True)
    def put_rows(w, inv, out, c0):  # type: ignore[no-untyped-def]
        """out[r, c0 + k] = w[inv[r], k] for every row r of `out`."""
        nrhs = w.shape[1]
        n = inv.size
        for r0 in range(0, n, 256):  # blocks of rows: their rows of `w` stay in cache
            r1 = min(r0 + 256, n)
            for k in range(nrhs):
                for r in range(r0, r1):
                    out[r, c0 + k] = w[inv[r], k]

    @njit(cache=True, nogil=True)
    def scatter_sub(w, idx, upd):  # type: ignore[no-untyped-def]
        """w[idx[t], :] -= upd[t, :], in order (repeated indices accumulate)."""
        nrhs = w.shape[1]
        for t in range(idx.size):
            row = idx[t]
            for k in range(nrhs):
                w[row, k] -= upd[t, k]

    @njit(cache=True, nogil=True)
    def extend_add(buf, f, e, u, rows, slots, fp2, tmpl, target):  # type: ignore[no-untyped-def]
        """Add the lower triangles of the update matrices (the trailing u x u blocks of the
        f x f fronts `rows` of `buf`) into `target`: front q's entry t (row-major lower
        triangle) goes to flat index slots[q] * fp2 + tmpl[t], or, where `slots` is empty,
        to tmpl[q * u (u + 1) / 2 + t]."""
        ntri = u * (u + 1) // 2
        shared = slots.size > 0
        for q in range(rows.size):
            src = rows[q] * f * f + e * f + e
            dst = slots[q] * fp2 if shared else 0
            off = 0 if shared else q * ntri
            t = 0
            for i in range(u):
                row = src + i * f
                for j in range(i + 1):
                    target[dst + tmpl[off + t]] += buf[row + j]
                    t += 1

    @njit(cache=True, nogil=True)
    def backward(w, lo, upd, lue, linv):  # type: ignore[no-untyped-def]
        """One group's backward sweep in place: for every front q of the group (eliminated
        rows lo + q e .. lo + q e + e - 1 of `w`), x = linv[q]^T (x - lue[q]^T w[upd[q]]).
        `upd` (k, u), `lue` (k, u, e), `linv` (k, e, e); the update rows are read where they
        are (no gathered copy)."""
        k, u = upd.shape
        e = linv.shape[1]
        nrhs = w.shape[1]
        tmp = np.empty((e, nrhs))
        for q in range(k):
            base = lo + q * e
            for i in range(e):
                for c in range(nrhs):
                    tmp[i, c] = w[base + i, c]
            for j in range(u):
                row = upd[q, j]
                for i in range(e):
                    lji = lue[q, j, i]
                    for c in range(nrhs):
                        tmp[i, c] -= lji * w[row, c]
            for i in range(e):
                for c in range(nrhs):
                    w[base + i, c] = 0.0
                for m in range(e):
                    lmi = linv[q, m, i]
                    for c in range(nrhs):
                        w[base + i, c] += lmi * tmp[m, c]

    @njit(cache=True, nogil=True)
    def _slot(f, x, mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut):  # type: ignore[no-untyped-def]
        layer = 1 if x >= mn else 0
        site = x - mn * layer
        return lut[front_lut[f] + canvas_hw[f] * layer
                   + (site // n - i0[f] + 1) * canvas_w[f] + (site % n - j0[f] + 1)]

    @njit(cache=True, nogil=True)
    def grid_local(t, node, mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut):  # type: ignore[no-untyped-def]
        """Local slots of grid nodes `node` in fronts `t` by the fronts' class lookup tables
        (see `FrontalPlan.for_grid`): -1 where a node is not in its front."""
        out = np.empty(t.size, dtype=np.int64)
        for q in range(t.size):
            out[q] = _slot(t[q], node[q], mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut)
        return out

    @njit(cache=True, nogil=True)
    def grid_assembly(  # type: ignore[no-untyped-def]
        rows, cols, pos, owner, starts, fsize, slot, group_of, ngroups,
        mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut,
    ):
        """Assembly maps of matrix entries (rows, cols) into the fronts' buffers (see
        `FrontalPlan.for_grid`): which entries are kept (lower triangle by elimination
        position), and, group by group (stable), the flat buffer index of each kept entry
        and its index among the kept ones; `ptr` (ngroups + 1) delimits the groups. `bad`:
        some entry is outside its front (not a crossbar pattern)."""
        nent = rows.size
        keep = np.empty(nent, dtype=np.bool_)
        flat = np.empty(nent, dtype=np.int64)
        grp = np.empty(nent, dtype=np.int64)
        nk = 0
        bad = False
        for q in range(nent):
            pr = pos[rows[q]]
            pc = pos[cols[q]]
            if pr <= pc:
                keep[q] = True
                t = owner[pr]
                loc = _slot(t, cols[q], mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut)
                if loc < 0:
                    bad = True
                f = fsize[t]
                flat[nk] = slot[t] * f * f + loc * f + (pr - starts[t])
                grp[nk] = group_of[t]
                nk += 1
            else:
                keep[q] = False
                t = owner[pc]
                if _slot(t, rows[q], mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut) < 0:
                    bad = True
        ptr = np.zeros(ngroups + 1, dtype=np.int64)
        for i in range(nk):
            ptr[grp[i] + 1] += 1
        for g in range(ngroups):
            ptr[g + 1] += ptr[g]
        fill = ptr[:-1].copy()
        out_flat = np.empty(nk, dtype=np.int64)
        out_which = np.empty(nk, dtype=np.int64)
        for i in range(nk):
            g = grp[i]
            out_flat[fill[g]] = flat[i]
            out_which[fill[g]] = i
            fill[g] += 1
        return keep, out_flat, out_which, ptr, bad

    @njit(cache=True, nogil=True)
    def update_extend_add(  # type: ignore[no-untyped-def]
        buf, f, e, u, l_ue, rows, slots, fp2, tmpl, target
    ):
        """`extend_add` of the update matrices formed on the fly: entry (i, j) of front q's
        update is its buffer entry minus l_ue[q, i] . l_ue[q, j] (lower triangle only, no
        u x u product stored)."""
        ntri = u * (u + 1) // 2
        shared = slots.size > 0
        for q in range(rows.size):
            fq = rows[q]
            src = fq * f * f + e * f + e
            dst = slots[q] * fp2 if shared else 0
            off = 0 if shared else q * ntri
            t = 0
            for i in range(u):
                row = src + i * f
                for j in range(i + 1):
                    s = 0.0
                    for m in range(e):
                        s += l_ue[fq, i, m] * l_ue[fq, j, m]
                    target[dst + tmpl[off + t]] += buf[row + j] - s
                    t += 1

    @njit(cache=True, nogil=True)
    def dense_fronts(buf, e, u, linv, lue):  # type: ignore[no-untyped-def]
        """For every front q of a group (buffer `buf` (k, f, f), lower triangles, f = e + u):
        the Cholesky factor L of its eliminated block, linv[q] = L^-1 (lower triangular,
        zeros above the diagonal) and lue[q] = A_ue L^-T. Returns False if a block is not
        positive definite (a pivot <= 0 or NaN)."""
        k = buf.shape[0]
        chol = np.empty((e, e))
        for q in range(k):
            a = buf[q]
            for j in range(e):  # Cholesky, column by column (lower)
                d = a[j, j]
                for m in range(j):
                    d -= chol[j, m] * chol[j, m]
                if not d > 0.0:
                    return False
                d = np.sqrt(d)
                chol[j, j] = d
                for i in range(j + 1, e):
                    s = a[i, j]
                    for m in range(j):
                        s -= chol[i, m] * chol[j, m]
                    chol[i, j] = s / d
            li = linv[q]
            for j in range(e):  # L^-1 by forward substitution, column j of the identity
                for i in range(j):
                    li[i, j] = 0.0
                li[j, j] = 1.0 / chol[j, j]
                for i in range(j + 1, e):
                    s = 0.0
                    for m in range(j, i):
                        s -= chol[i, m] * li[m, j]
                    li[i, j] = s / chol[i, i]
            lq = lue[q]
            for i in range(u):  # A_ue L^-T: row i of A_ue times row j of L^-1
                for j in range(e):
                    s = 0.0
                    for m in range(j + 1):
                        s += a[e + i, m] * li[j, m]
                    lq[i, j] = s
        return True


def kcl_grid(
    vt: FloatArray, i_dev: FloatArray, y_row: FloatArray, y_col: FloatArray,
    pad_node: np.ndarray, pad_y: FloatArray, inj: FloatArray, inj_node: np.ndarray,
    free: np.ndarray, want: np.ndarray,
) -> tuple[float, FloatArray]:
    """KCL residual of node voltages `vt` (B, 2MN; row-wire nodes, then column-wire nodes,
    as in `solver_network`) on an M x N grid whose taps are its nodes, with device currents
    `i_dev` (B, M, N), segment conductances `y_row` (M, N-1), `y_col` (M-1, N), pad
    conductances `pad_y` at `pad_node`, and injections `inj` (2MN, B), nonzero only on the
    rows `inj_node` (distinct). Returns the largest |net current| leaving a node of `free`
    (bool, 2MN) (NaN if any is NaN), and the net currents (len(want), B) at nodes `want`."""
    f_want = np.zeros((want.size, vt.shape[0]))
    worst = _kcl_grid(
        vt, i_dev, y_row, y_col, np.ascontiguousarray(pad_node, dtype=np.int64), pad_y, inj,
        np.ascontiguousarray(inj_node, dtype=np.int64), free, bool(free.all()),
        np.ascontiguousarray(want, dtype=np.int64), f_want,
    )
    return float(worst), f_want
