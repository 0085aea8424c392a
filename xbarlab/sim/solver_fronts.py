"""Multifrontal Cholesky on a nested-dissection tree: dense fronts, batched by shape.

A crossbar's nodal matrix is symmetric positive definite and lives on a grid, so a geometric
nested dissection gives an elimination tree whose fronts (the nodes eliminated together plus
the later nodes they touch) are small dense matrices. Fronts of one shape (same height in the
tree, same numbers of eliminated and update nodes) are eliminated next to each other and
factored together with stacked LAPACK/BLAS calls. Each front keeps the inverse of its
Cholesky block, so solving many right-hand sides is a sequence of batched matrix products
instead of one triangular sweep per input: that is what makes a batch of inputs on a large
array cheap once the factor exists. Only lower triangles of fronts are ever formed.

`FrontalPlan` is the symbolic part (tree, update sets, scatter maps), built once per sparsity
pattern: `FrontalPlan.for_grid` from the grid's templates (`solver_grid`: fronts of one class
are translates, so the maps are one template per class plus offsets), the constructor from
any list of fronts (per-front work; used where fixed nodes break the grid's regularity).
`FrontalFactor` is the numeric factor of one matrix with that pattern; each front's own
buffer becomes its update matrix, and no transposed copy of any block is stored.

Where numba loads, the index work runs as compiled loops (`solver_fronts_kernels`): the
grid's assembly maps, the extend-add (small fronts form their update entries there), the
dense work of fronts below `BLAS_FRONTS` eliminated nodes, and the solve's row gathers,
scatters and backward sweep over those fronts; larger fronts stay with batched BLAS calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np
import scipy.sparse as sp

from xbarlab.crossbar import FloatArray, IntArray
from xbarlab.sim import solver_fronts_kernels as kernels
from xbarlab.sim import solver_kernels
from xbarlab.sim.blas import one_blas_thread
from xbarlab.sim.solver_grid import grid_classes


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


#: values (float64) a job must have handled before its freed heap is handed back: a trim
#: walks the whole heap (milliseconds), which only pays after large analyses and solves
TRIM_AFTER = 1 << 22


def release_freed_memory(size: int = TRIM_AFTER) -> None:
    """Hand the heap's free pages back to the system (glibc; elsewhere nothing) after a job
    of `size` values, if that is at least `TRIM_AFTER`. The symbolic analysis and the
    factorization free many mid-sized temporaries; without this their pages stay with the
    process and add to the peak of the large solves after them."""
    fn = _malloc_trim()
    if fn is not None and size >= TRIM_AFTER:
        fn(0)


def _compact(idx: IntArray) -> IntArray:
    """Non-negative indices as int32 where they fit (index maps dominate the symbolic
    analysis' memory)."""
    if idx.size and int(idx.max()) >= 2**31:
        return idx
    return idx.astype(np.int32)


def grid_fronts(
    site_i: IntArray, site_j: IntArray, row_layer: np.ndarray, leaf_sites: int = 4
) -> list[IntArray]:
    """Nested-dissection fronts (node-id arrays, children before parents) of crossbar nodes.

    Node k sits at cell (`site_i[k]`, `site_j[k]`) on the row-wire layer (`row_layer[k]`) or
    the column-wire layer. Row-wire nodes only join their row neighbours, column-wire nodes
    their column neighbours, and the two layers meet at the same cell: cutting between cell
    columns, the row-wire nodes of the first column right of the cut separate the halves;
    cutting between cell rows, the column-wire nodes of the first row below the cut.
    """
    fronts: list[IntArray] = []

    def build(nodes: IntArray, i0: int, i1: int, j0: int, j1: int) -> None:
        if nodes.size == 0:
            return
        h, w = i1 - i0, j1 - j0
        if h * w <= leaf_sites or (h <= 1 and w <= 1):
            fronts.append(nodes)
            return
        ni, nj = site_i[nodes], site_j[nodes]
        if w >= h:
            k = (j0 + j1) // 2
            sep = row_layer[nodes] & (nj == k)
            build(nodes[nj < k], i0, i1, j0, k)
            build(nodes[(nj >= k) & ~sep], i0, i1, k, j1)
        else:
            k = (i0 + i1) // 2
            sep = ~row_layer[nodes] & (ni == k)
            build(nodes[ni < k], i0, k, j0, j1)
            build(nodes[(ni >= k) & ~sep], k, i1, j0, j1)
        if sep.any():
            fronts.append(nodes[sep])

    if site_i.size:
        build(
            np.arange(site_i.size, dtype=np.int64),
            int(site_i.min()), int(site_i.max()) + 1, int(site_j.min()), int(site_j.max()) + 1,
        )
    return fronts


#: where a group's update matrices go in one parent group: (parent group, child slots, flat
#: targets per child) or, for translates, (parent group, child slots, parent slots, one
#: flat template shared by them)
_Target = tuple[int, IntArray, IntArray] | tuple[int, IntArray, IntArray, IntArray]


@dataclass(frozen=True, slots=True)
class _Group:
    """Fronts of one height in the tree with `e` eliminated and `u` update nodes each."""

    fronts: IntArray  # front indices (k,)
    e: int
    u: int
    lo: int  # the group eliminates positions lo..hi-1, front by front
    hi: int
    upd: IntArray  # (k, u) positions
    # positions that receive updates from this group, and the (touched, k*u) matrix that
    # sums update slots into them: the numpy sweep's scatter (None where compiled loops
    # scatter, `solver_fronts_kernels`)
    touched: IntArray | None
    scatter: sp.csr_matrix | None


def _group_of_fronts(
    members: IntArray, e: int, lo: int, updi: IntArray, n: int | None = None
) -> _Group:
    """A group's record from its fronts (contiguous, `e` eliminated positions each from
    `lo`) and their update positions (k, u) among `n` unknowns."""
    k, u = updi.shape
    flat = updi.ravel()
    if kernels.AVAILABLE:
        return _Group(members, e, u, lo, lo + k * e, updi.astype(np.int64), None, None)
    if n is not None:  # mark instead of sorting
        mark = np.zeros(n, dtype=bool)
        mark[flat] = True
        touched = np.flatnonzero(mark)
        rank = np.cumsum(mark) - 1
        row = rank[flat]
    else:
        touched, row = np.unique(flat, return_inverse=True)
    scatter = sp.csr_matrix((np.ones(k * u), (row, np.arange(k * u))), (touched.size, k * u))
    return _Group(members, e, u, lo, lo + k * e, updi.astype(np.int64), touched, scatter)


def _split_by_group(
    flat: IntArray, grp: IntArray, ngroups: int
) -> list[tuple[IntArray, IntArray]]:
    """Assembly maps per group: flat buffer indices and the indices of their values."""
    # few groups: 16-bit keys, which numpy's stable sort orders by radix
    sort = np.argsort(grp.astype(np.int16) if ngroups < 2**15 else grp, kind="stable")
    cut = np.searchsorted(grp[sort], np.arange(ngroups + 1))
    return [(_compact(flat[sort[cut[g] : cut[g + 1]]]), _compact(sort[cut[g] : cut[g + 1]]))
            for g in range(ngroups)]


class FrontalPlan:
    """Symbolic analysis: elimination order, update sets, front groups, assembly maps.

    `fronts` in postorder over `n` unknowns (node ids 0..n-1); `rows`, `cols` the entries of
    the (symmetric) matrix over those ids, duplicates allowed (they are summed).
    """

    def __init__(self, fronts: list[IntArray], n: int, rows: IntArray, cols: IntArray) -> None:
        order = np.concatenate(fronts).astype(np.int64) if fronts else np.empty(0, np.int64)
        if order.size != n or np.unique(order).size != n:
            raise ValueError("the fronts must eliminate every unknown exactly once")
        upd, parent, height = self._structure(fronts, order, n, rows, cols)
        # Eliminate fronts of one shape next to each other (children stay before parents:
        # they are lower in the tree), so each group's nodes are one contiguous block.
        sizes = np.array([f.size for f in fronts], dtype=np.int64)
        usizes = np.array([x.size for x in upd], dtype=np.int64)
        forder = np.lexsort((usizes, sizes, height))
        rank = np.empty_like(forder)
        rank[forder] = np.arange(forder.size)
        new_order = (
            np.concatenate([fronts[t] for t in forder]).astype(np.int64)
            if fronts else order
        )
        pos = np.empty(n, dtype=np.int64)
        pos[new_order] = np.arange(n)
        old_to_new = pos[order]
        self.n, self.order, self.pos = n, new_order, pos
        self.starts = np.concatenate([[0], np.cumsum(sizes[forder])]).astype(np.int64)
        self.owner = np.repeat(np.arange(forder.size), sizes[forder])
        self.updates: list[IntArray] = [np.sort(old_to_new[upd[t]]) for t in forder]
        par = parent[forder]
        self.parent = np.where(par >= 0, rank[np.maximum(par, 0)], -1)
        self.height = height[forder]
        self._e, self._u = sizes[forder], usizes[forder]
        self._upd_start = np.concatenate([[0], np.cumsum(self._u)]).astype(np.int64)
        self._upd_keys = np.concatenate(
            [np.empty(0, np.int64)] + [t * (n + 1) + x for t, x in enumerate(self.updates)]
        )
        keys = np.stack([self.height, self._e, self._u], 1)
        cuts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
        bounds = np.concatenate([[0], cuts, [forder.size]]) if forder.size else np.zeros(1, int)
        self.groups: list[_Group] = []
        self.group_of = np.empty(forder.size, dtype=np.int64)
        self.slot_in_group = np.empty(forder.size, dtype=np.int64)
        for lo, hi in pairwise(bounds):
            self.group_of[lo:hi] = len(self.groups)
            self.slot_in_group[lo:hi] = np.arange(hi - lo)
            self.groups.append(self._group(np.arange(lo, hi)))
        pr, pc = pos[rows], pos[cols]
        self._keep = pr <= pc
        self._assembly = self._assembly_maps(pr[self._keep], pc[self._keep])
        self._extend_add: list[list[_Target]] = [
            [*self._extend_add_map(g)] for g in range(len(self.groups))
        ]
        # the per-front update sets live on in the groups' stacks (`_Group.upd`); the
        # lists and search keys only served to build the maps above
        self.updates = []
        self._upd_keys = np.empty(0, np.int64)

    @classmethod
    def for_grid(
        cls, m: int, n: int, rows: IntArray, cols: IntArray, leaf_sites: int = 4
    ) -> FrontalPlan:
        """Symbolic analysis of an M x N crossbar whose 2MN nodes are all unknowns (node ids
        as in `grid_fronts`), from the grid's templates (`solver_grid`): fronts of one class
        are translates, so update sets, assembly slots and extend-add maps come from one
        template per class plus offsets. Same fronts and groups as the general constructor
        on `grid_fronts`; `rows`, `cols` as there."""
        classes = sorted(grid_classes(m, n, leaf_sites),
                         key=lambda c: (c.height, c.elim.size, c.struct.size))
        self = cls.__new__(cls)
        nn = 2 * m * n
        counts = np.array([c.i0.size for c in classes], dtype=np.int64)
        nfront = int(counts.sum())
        cls_of = np.repeat(np.arange(len(classes)), counts)
        e_c = np.array([c.elim.size for c in classes], dtype=np.int64)
        u_c = np.array([c.struct.size for c in classes], dtype=np.int64)
        self.n = nn
        self._e, self._u = e_c[cls_of], u_c[cls_of]
        self.height = np.array([c.height for c in classes], dtype=np.int64)[cls_of]
        self.starts = np.concatenate([[0], np.cumsum(self._e)]).astype(np.int64)
        self.owner = np.repeat(np.arange(nfront), self._e)
        i0 = np.concatenate([c.i0 for c in classes]) if classes else np.empty(0, np.int64)
        j0 = np.concatenate([c.j0 for c in classes]) if classes else np.empty(0, np.int64)
        base = i0 * n + j0
        # eliminated nodes: front by front, template order
        pos = np.full(nn, -1, dtype=np.int64)
        cstart = np.concatenate([[0], np.cumsum(counts)])
        for ci, c in enumerate(classes):
            nodes = base[cstart[ci] : cstart[ci + 1], None] + c.elim[None, :]
            lo = self.starts[cstart[ci]]
            pos[nodes.ravel()] = np.arange(lo, lo + nodes.size)
        if int(self.starts[-1]) != nn or (pos < 0).any():  # nn slots, each node placed
            raise AssertionError("grid templates must cover every node once")
        order = np.empty(nn, dtype=np.int64)
        order[pos] = np.arange(nn)
        self.order, self.pos = order, pos
        # local slots: one lookup table per class, indexed relative to each front's box
        lut = np.concatenate([c.lut.ravel() for c in classes]) if classes else np.empty(0)
        lut_off = np.concatenate([[0], np.cumsum([c.lut.size for c in classes])])[:-1]
        canvas_w = np.array([c.w + 2 for c in classes], dtype=np.int64)[cls_of]
        canvas_hw = np.array([(c.h + 2) * (c.w + 2) for c in classes], np.int64)[cls_of]
        front_lut = np.asarray(lut_off, dtype=np.int64)[cls_of]
        mn = m * n

        def local(t: IntArray, node: IntArray) -> IntArray:
            if kernels.AVAILABLE:
                out: IntArray = kernels.grid_local(
                    np.asarray(t, np.int64), np.asarray(node, np.int64), mn, n, front_lut,
                    canvas_hw, canvas_w, i0, j0, lut)
                return out
            layer = node >= mn
            site = node - mn * layer
            idx = (front_lut[t] + canvas_hw[t] * layer
                   + (site // n - i0[t] + 1) * canvas_w[t] + (site % n - j0[t] + 1))
            return np.asarray(lut[idx], dtype=np.int64)

        keys = np.stack([self.height, self._e, self._u], 1)
        cuts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
        bounds = np.concatenate([[0], cuts, [nfront]]) if nfront else np.zeros(1, np.int64)
        self.groups, self.group_of = [], np.empty(nfront, dtype=np.int64)
        self.slot_in_group = np.empty(nfront, dtype=np.int64)
        self.parent = np.full(nfront, -1, dtype=np.int64)
        upds: list[IntArray] = []
        for lo, hi in pairwise(bounds):
            self.group_of[lo:hi] = len(self.groups)
            self.slot_in_group[lo:hi] = np.arange(hi - lo)
            cs = range(int(cls_of[lo]), int(cls_of[hi - 1]) + 1)  # classes are contiguous
            updi = np.concatenate(
                [pos[base[cstart[ci] : cstart[ci + 1], None] + classes[ci].struct[None, :]]
                 for ci in cs]
            )
            if updi.shape[1]:
                self.parent[lo:hi] = self.owner[updi.min(axis=1)]
            upds.append(updi)
            self.groups.append(_group_of_fronts(np.arange(lo, hi), int(self._e[lo]),
                                                int(self.starts[lo]), updi, nn))
        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.size and (min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= nn):
            raise ValueError(f"matrix entries outside the grid's {nn} nodes")
        if kernels.AVAILABLE:  # the same maps in one compiled pass and a counting sort
            keep, aflat, awhich, ptr, bad = kernels.grid_assembly(
                np.asarray(rows, np.int64), np.asarray(cols, np.int64), pos, self.owner,
                self.starts, self._e + self._u, self.slot_in_group, self.group_of,
                len(self.groups), mn, n, front_lut, canvas_hw, canvas_w, i0, j0, lut)
            if bad:
                raise ValueError("matrix entries outside the grid's pattern (not a crossbar)")
            self._keep = keep
            self._assembly = [(_compact(aflat[a:b]), _compact(awhich[a:b]))
                              for a, b in pairwise(ptr)]
        else:
            pr, pc = pos[rows], pos[cols]
            self._keep = pr <= pc
            t = self.owner[pr[self._keep]]
            loc_c = local(t, cols[self._keep])
            if (loc_c < 0).any() or (
                local(self.owner[pc[~self._keep]], rows[~self._keep]) < 0
            ).any():
                raise ValueError("matrix entries outside the grid's pattern (not a crossbar)")
            f = self._e[t] + self._u[t]
            flat = self.slot_in_group[t] * f * f + loc_c * f + (pr[self._keep] - self.starts[t])
            self._assembly = _split_by_group(flat, self.group_of[t], len(self.groups))
        # extend-add: children of one class with parents of one class at one offset share
        # their local slots in the parent: one template each
        self._extend_add = []
        for gi, g in enumerate(self.groups):
            par = self.parent[g.fronts]
            out: list[_Target] = []
            self._extend_add.append(out)
            if g.u == 0 or not (par >= 0).any():
                continue
            have = np.flatnonzero(par >= 0)
            p = par[have]
            child = g.fronts[have]
            key = (cls_of[child] * len(classes) + cls_of[p]) * (2 * nn + 1) + (
                base[p] - base[child] + nn
            )
            sort = np.argsort(key, kind="stable")
            ks = key[sort]
            cut = np.concatenate([[0], np.flatnonzero(ks[1:] != ks[:-1]) + 1, [ks.size]])
            il, jl = np.tril_indices(g.u)
            for a, b in pairwise(cut):
                sel = sort[a:b]
                row0 = int(sel[0])
                pp = p[row0]
                loc = local(np.full(g.u, pp), order[upds[gi][have[row0]]])
                fp = int(self._e[pp] + self._u[pp])
                # update slots are in template order, not sorted: keep to the lower triangle
                tmpl = _compact(np.maximum(loc[il], loc[jl]) * fp + np.minimum(loc[il], loc[jl]))
                out.append((int(self.group_of[pp]), _compact(have[sel]),
                            _compact(self.slot_in_group[p[sel]]), tmpl))
        release_freed_memory(16 * nn)
        return self

    @staticmethod
    def _structure(
        fronts: list[IntArray], order: IntArray, n: int, rows: IntArray, cols: IntArray
    ) -> tuple[list[IntArray], IntArray, IntArray]:
        """Update sets (positions in `order`), parent and height of every front."""
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        pr, pc = pos[rows], pos[cols]
        keep = pr <= pc
        adj = sp.csr_matrix((np.ones(int(keep.sum())), (pr[keep], pc[keep])), (n, n))
        starts = np.cumsum([0] + [f.size for f in fronts])
        if solver_kernels.AVAILABLE and fronts:  # the same loop, compiled
            flat, ptr, parent, height = solver_kernels.update_sets(
                adj.indptr, adj.indices, starts
            )
            return list(np.split(flat, ptr[1:-1])), parent, height
        owner = np.repeat(np.arange(len(fronts)), np.diff(starts))
        upd: list[IntArray] = []
        height = np.zeros(len(fronts), dtype=np.int64)
        parent = np.full(len(fronts), -1, dtype=np.int64)
        children: list[list[int]] = [[] for _ in fronts]
        for t in range(len(fronts)):
            s, e = starts[t], starts[t + 1]
            parts = [adj.indices[adj.indptr[s] : adj.indptr[e]]]
            for c in children[t]:
                parts.append(upd[c])
                height[t] = max(height[t], height[c] + 1)
            cand = np.unique(np.concatenate(parts))
            mine = cand[cand >= e].astype(np.int64)
            upd.append(mine)
            if mine.size:  # the parent eliminates the first node this front updates
                parent[t] = owner[mine[0]]
                children[parent[t]].append(t)
        return upd, parent, height

    def _group(self, members: IntArray) -> _Group:
        e, u = int(self._e[members[0]]), int(self._u[members[0]])
        k = members.size
        lo = int(self.starts[members[0]])
        updi = np.stack([self.updates[t] for t in members]) if u else np.empty((k, 0), np.int64)
        return _group_of_fronts(members, e, lo, updi)

    def active_fronts(self, positions: IntArray) -> np.ndarray:
        """Mask of the fronts owning `positions` and all their ancestors."""
        active = np.zeros(self.parent.size, dtype=bool)
        todo = np.unique(self.owner[positions])
        while todo.size:
            todo = todo[~active[todo]]
            active[todo] = True
            todo = np.unique(self.parent[todo])
            todo = todo[todo >= 0]
        return active

    def _local(self, t: IntArray, p: IntArray) -> IntArray:
        """Local slots of positions `p` in fronts `t` (eliminated slots first, then the
        update slots in order); every p must belong to front t's eliminated or update set."""
        inside = p < self.starts[t + 1]
        rank = np.searchsorted(self._upd_keys, t * (self.n + 1) + p) - self._upd_start[t]
        return np.where(inside, p - self.starts[t], self._e[t] + rank)

    def _assembly_maps(self, pr: IntArray, pc: IntArray) -> list[tuple[IntArray, IntArray]]:
        """Per group: flat buffer indices (lower triangles of the fronts) and the indices of
        the values they take. Only lower triangles are ever formed: the dense kernels read
        nothing else."""
        t = self.owner[pr]
        f = self._e[t] + self._u[t]
        flat = self.slot_in_group[t] * f * f + self._local(t, pc) * f + (pr - self.starts[t])
        return _split_by_group(flat, self.group_of[t], len(self.groups))

    def _extend_add_map(self, gi: int) -> list[tuple[int, IntArray, IntArray]]:
        """Where the lower triangles of group gi's update matrices go: per parent group, the
        fronts of gi concerned and the flat indices into the parent group's buffer of their
        lower-triangle entries (front by front, row-major lower triangle)."""
        g = self.groups[gi]
        u = g.u
        par = self.parent[g.fronts]
        if u == 0 or not (par >= 0).any():
            return []
        il, jl = np.tril_indices(u)
        out = []
        tgroup = np.where(par >= 0, self.group_of[np.maximum(par, 0)], -1)
        for tg in np.unique(tgroup[tgroup >= 0]):
            rows = np.flatnonzero(tgroup == tg)
            p = par[rows]
            loc = self._local(np.repeat(p, u), g.upd[rows].ravel()).reshape(-1, u)
            f = self._e[p] + self._u[p]
            flat = self.slot_in_group[p][:, None] * f[:, None] ** 2 + (
                loc[:, il] * f[:, None] + loc[:, jl]
            )
            # the source slots follow from `rows` (rebuilt when factoring): only the targets
            # are stored, as 32-bit indices where they fit
            out.append((int(tg), rows, _compact(flat.ravel())))
        return out

    def factor(self, values: FloatArray) -> FrontalFactor:
        """Numeric factorization; `values` aligned with the `rows`, `cols` given at
        construction (duplicates are summed; both triangles may be listed, the lower one is
        ignored). Raises `np.linalg.LinAlgError` if the matrix is not positive definite."""
        with one_blas_thread():
            fac = self._factor(values)
        release_freed_memory(16 * self.n)
        return fac

    def _factor(self, values: FloatArray) -> FrontalFactor:
        values = np.asarray(values, dtype=np.float64)[self._keep]
        buffers: list[FloatArray | None] = [None] * len(self.groups)
        linv: list[FloatArray] = []
        lue: list[FloatArray] = []
        for gi, g in enumerate(self.groups):
            k, f = g.fronts.size, g.e + g.u
            flat, which = self._assembly[gi]
            buf = buffers[gi]
            if buf is None:
                buf = np.asarray(
                    np.bincount(flat, weights=values[which], minlength=k * f * f),
                    dtype=np.float64,
                )
            else:  # the children's updates are in already: add the matrix entries in place
                buffers[gi] = None
                np.add.at(buf, flat, values[which])
            fm = buf.reshape(k, f, f)
            fused = kernels.AVAILABLE and g.e < BLAS_FRONTS  # small fronts: compiled loops
            if fused:
                li, l_ue = np.empty((k, g.e, g.e)), np.empty((k, g.u, g.e))
                if not kernels.dense_fronts(fm, g.e, g.u, li, l_ue):
                    raise np.linalg.LinAlgError("frontal Cholesky: matrix not positive definite")
            else:
                try:
                    chol = np.linalg.cholesky(fm[:, : g.e, : g.e])
                except np.linalg.LinAlgError as exc:
                    raise np.linalg.LinAlgError(
                        "frontal Cholesky: matrix not positive definite"
                    ) from exc
                li = np.asarray(np.linalg.inv(chol), dtype=np.float64)
                del chol
                l_ue = fm[:, g.e :, : g.e] @ li.transpose(0, 2, 1)
            linv.append(li)
            lue.append(l_ue)
            if g.u == 0:
                continue
            fused = kernels.AVAILABLE and g.e < FUSED_UPDATE
            if not fused:  # (small fronts: no u x u product, see the extend-add below)
                update = fm[:, g.e :, g.e :]  # the front's own buffer becomes its update
                update -= l_ue @ l_ue.transpose(0, 2, 1)
                del update
            il, jl = np.tril_indices(g.u)
            tri = (g.e + il) * f + (g.e + jl)  # lower triangle of the update, in the buffer
            for item in self._extend_add[gi]:
                pg = self.groups[item[0]]
                fp2 = (pg.e + pg.u) ** 2
                target = buffers[item[0]]
                if target is None:
                    target = buffers[item[0]] = np.zeros(pg.fronts.size * fp2)
                if kernels.AVAILABLE:  # one pass, no index arrays
                    slots = item[2] if len(item) == 4 else item[1][:0]
                    if fused:
                        kernels.update_extend_add(buf, f, g.e, g.u, l_ue, item[1], slots, fp2,
                                                  item[-1], target)
                    else:
                        kernels.extend_add(buf, f, g.e, g.u, item[1], slots, fp2, item[-1],
                                           target)
                    continue
                src = (item[1][:, None] * (f * f) + tri[None, :]).ravel()
                if len(item) == 4:  # a template: one slot map shared by fronts `rows`
                    dst = (item[2][:, None] * fp2 + item[3][None, :]).ravel()
                    target[dst] += buf[src]  # one front per parent: no index repeats
                else:
                    np.add.at(target, item[2], buf[src])
            del fm, buf
        return FrontalFactor(self, linv, lue)


#: fronts eliminating at least this many nodes go through BLAS in the compiled backward
#: sweep (smaller ones: one compiled loop per group, no gathered copies of the update rows)
BLAS_FRONTS = 32
#: fronts eliminating fewer nodes form their update matrices inside the compiled extend-add
#: (lower triangles only); larger ones by one BLAS product per group
FUSED_UPDATE = 16


class FrontalFactor:
    """Numeric factor: per group the inverse Cholesky blocks and the update blocks. The
    backward sweep multiplies by their transposes as views (BLAS takes the transposed layout
    directly): no transposed copies are stored."""

    def __init__(self, plan: FrontalPlan, linv: list[FloatArray], lue: list[FloatArray]) -> None:
        self.plan, self.linv, self.lue = plan, linv, lue

    def solve(
        self,
        b: FloatArray,
        *,
        rows: IntArray | None = None,
        out: FloatArray | None = None,
        chunk: int | None = None,
        nonzero_rows: IntArray | None = None,
    ) -> FloatArray:
        """Solve K x = b; `b` (n, B) in unknown order, or, with `rows`, a larger node-major
        array whose rows `rows[i]` hold unknown i (the solution is then written to those
        rows of `out`, other rows untouched). Returns x (n, B), or `out`. `nonzero_rows`
        (distinct rows of `b`), if given: every other row of `b` is zero and is not read
        (a crossbar's pad injections: the rest of `b` is never touched).

        Right-hand sides go through in chunks of `chunk` columns (default: 32, fewer where
        n is so large that a chunk's working arrays would pass 32 MB; the working arrays then
        stay small enough to be cached and reused by the allocator, and peak memory low).
        The forward sweep skips fronts whose subtree has no right-hand side (a crossbar's
        inputs enter at its edge pads, so most of the tree is skipped).
        """
        plan = self.plan
        if chunk is None:
            chunk = max(4, min(32, (1 << 22) // max(plan.n, 1)))
        sel = plan.order if rows is None else np.asarray(rows)[plan.order]
        if out is None:
            out = np.empty((plan.n, b.shape[1])) if rows is None else np.zeros(b.shape)
        # every row of `out` is an unknown: gather by the inverse order instead of scattering
        whole = out.shape[0] == plan.n
        inv = plan.pos if rows is None else sel
        if whole and rows is not None:
            inv = np.empty_like(sel)
            inv[sel] = np.arange(sel.size)
        compiled = (kernels.AVAILABLE and whole and b.dtype == np.float64
                    and b.flags.c_contiguous and out.dtype == np.float64)
        with one_blas_thread():
            for c in range(0, b.shape[1], chunk):
                if compiled:  # gather, find the nonzero rows, put back: one pass each
                    width = min(chunk, b.shape[1] - c)
                    if nonzero_rows is None:
                        w = np.empty((plan.n, width))
                        nz = kernels.gather_rows(b, sel, c, w)
                    else:
                        w = np.zeros((plan.n, width))
                        nz = kernels.gather_some(b, np.asarray(nonzero_rows, np.int64), inv,
                                                 c, w)
                    kernels.put_rows(self._solve(w, nz), inv, out, c)
                    continue
                w = self._solve(np.take(b[:, c : c + chunk], sel, axis=0))
                if whole:
                    out[:, c : c + chunk] = np.take(w, inv, axis=0)
                else:
                    out[sel, c : c + chunk] = w
        release_freed_memory(plan.n * b.shape[1])
        return out

    def _solve(self, w: FloatArray, nonzero: np.ndarray | None = None) -> FloatArray:
        """Solve in place for `w` (n, B) in elimination order (C-contiguous); `nonzero`:
        which rows of `w` are nonzero, if known."""
        plan = self.plan
        compiled = kernels.AVAILABLE
        if compiled:
            w = np.ascontiguousarray(w)
        nrhs = w.shape[1]
        if nonzero is None:
            nonzero = np.any(w != 0.0, axis=1)
        active = plan.active_fronts(np.flatnonzero(nonzero))
        for gi, g in enumerate(plan.groups):
            on = active[g.fronts]
            k = int(on.sum())
            if k == 0:
                continue
            if k == on.size:
                y = self.linv[gi] @ w[g.lo : g.hi].reshape(k, g.e, nrhs)
                w[g.lo : g.hi] = y.reshape(-1, nrhs)
                if g.u:
                    upd = (self.lue[gi] @ y).reshape(-1, nrhs)
                    if compiled:
                        kernels.scatter_sub(w, g.upd.reshape(-1), upd)
                    elif g.touched is None or g.scatter is None:  # plan made for kernels
                        np.subtract.at(w, g.upd.reshape(-1), upd)
                    else:
                        w[g.touched] = np.take(w, g.touched, axis=0) - g.scatter @ upd
                continue
            rows = (g.lo + g.e * np.flatnonzero(on)[:, None] + np.arange(g.e)).ravel()
            y = self.linv[gi][on] @ np.take(w, rows, axis=0).reshape(k, g.e, nrhs)
            w[rows] = y.reshape(-1, nrhs)
            if g.u:
                upd = (self.lue[gi][on] @ y).reshape(-1, nrhs)
                if compiled:
                    kernels.scatter_sub(w, g.upd[on].reshape(-1), upd)
                else:
                    np.subtract.at(w, g.upd[on].ravel(), upd)
        for gi in range(len(plan.groups) - 1, -1, -1):
            g = plan.groups[gi]
            k = g.fronts.size
            if compiled and g.e < BLAS_FRONTS:  # small fronts: no gathered copies
                kernels.backward(w, g.lo, g.upd, self.lue[gi], self.linv[gi])
                continue
            rhs = w[g.lo : g.hi].reshape(k, g.e, nrhs)
            if g.u:
                wu = np.take(w, g.upd.ravel(), axis=0).reshape(k, g.u, nrhs)
                rhs = rhs - self.lue[gi].transpose(0, 2, 1) @ wu
            w[g.lo : g.hi] = (self.linv[gi].transpose(0, 2, 1) @ rhs).reshape(-1, nrhs)
        return w
