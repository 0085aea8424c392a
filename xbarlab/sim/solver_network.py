"""The resistive network of a passive crossbar: geometry, validation and the linear engines.

Topology (shared by the solvers and the SPICE exporter). An M x N array has a row-wire node
``r[i, j]`` and a column-wire node ``c[i, j]`` at every cell; device ``(i, j)`` joins them.
Row i has N + 1 wire segments: segment 0 joins its start pad to ``r[i, 0]``, segment k joins
``r[i, k-1]`` to ``r[i, k]`` and segment N joins ``r[i, N-1]`` to its end pad. Column j has M + 1
segments the same way (start pad before row 0, end pad after row M-1). A driven pad connects
to its driver through the terminal resistance (``r_source`` for rows, ``r_sense`` for columns);
an open pad (NaN voltage) connects to nothing. A zero total resistance from a driver to a node
holds that node at the driver's voltage; zero-resistance segments merge nodes.

Two engines solve ``K v = b`` for given device (small-signal) conductances:
`DirectEngine` (multifrontal Cholesky with dense fronts on a nested-dissection tree; sparse
LU where zero-resistance segments merge nodes; any configuration) and `LineEngine`
(reduced system on the column nodes with the row lines eliminated exactly by tridiagonal
solves, conjugate gradients preconditioned by the column-line tridiagonals; no factorization
of the whole array, batch-friendly; needs every segment resistance > 0).
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import lapack
from scipy.sparse.csgraph import connected_components

from xbarlab.crossbar import BoolArray, FloatArray, IntArray
from xbarlab.sim import solver_fronts_kernels, solver_kernels
from xbarlab.sim.solver_case_kernels import LineFactors
from xbarlab.sim.solver_fronts import (
    FrontalFactor,
    FrontalPlan,
    grid_fronts,
    release_freed_memory,
)


class CircuitError(ValueError):
    """The circuit cannot be solved as given (names the offending part)."""


class NonConvergenceError(RuntimeError):
    """An iterative solve did not converge; carries the final residual (A)."""

    def __init__(self, message: str, residual: float) -> None:
        super().__init__(f"{message} (residual {residual:.3e} A)")
        self.residual = residual


@dataclass(frozen=True, slots=True)
class Wires:
    """Per-segment wire resistances (ohm) and terminal resistances (ohm) of an M x N array.

    `r_row` has shape (M, N + 1), `r_col` (M + 1, N) (see the module docstring for the
    segment numbering). `r_source` is each row driver's output resistance, `r_sense` each
    column terminal's input resistance (TIA or SMU).
    """

    r_row: FloatArray
    r_col: FloatArray
    r_source: float
    r_sense: float

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        r_row: float | FloatArray = 0.0,
        r_col: float | FloatArray = 0.0,
        r_source: float = 0.0,
        r_sense: float = 0.0,
    ) -> Wires:
        """Validated wires; scalars broadcast to every segment."""
        m, n = shape
        rr = _resistances("r_row", r_row, (m, n + 1))
        rc = _resistances("r_col", r_col, (m + 1, n))
        rs = float(_resistances("r_source", r_source, ()))
        rt = float(_resistances("r_sense", r_sense, ()))
        return cls(rr, rc, rs, rt)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.r_row.shape[0], self.r_col.shape[1])

    @property
    def all_positive(self) -> bool:
        """Every segment has resistance > 0 (the line engine's requirement)."""
        return bool(np.all(self.r_row > 0) and np.all(self.r_col > 0))

    @property
    def zero(self) -> bool:
        """No wire resistance at all (each line is one node)."""
        return bool(np.all(self.r_row == 0) and np.all(self.r_col == 0))


def _resistances(name: str, value: float | FloatArray, shape: tuple[int, ...]) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 0 and arr.shape != shape:
        raise CircuitError(f"{name} must be a scalar or have shape {shape}, got {arr.shape}")
    if np.any(np.isnan(arr)):
        raise CircuitError(f"{name} contains NaN; resistances must be finite and >= 0 ohm")
    if np.any(arr < 0) or np.any(np.isinf(arr)):
        bad = arr[(arr < 0) | np.isinf(arr)].ravel()[0]
        raise CircuitError(f"{name} must be finite and >= 0 ohm, got {bad}")
    return np.array(np.broadcast_to(arr, shape), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Terminals:
    """Driver voltages (V) at the four pad sets for a batch of B cases; NaN = open pad.

    `row_start`, `row_end`: (B, M); `col_start`, `col_end`: (B, N).
    """

    row_start: FloatArray
    row_end: FloatArray
    col_start: FloatArray
    col_end: FloatArray

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        row_start: FloatArray | None = None,
        row_end: FloatArray | None = None,
        col_start: FloatArray | None = None,
        col_end: FloatArray | None = None,
    ) -> Terminals:
        """Validated terminals; ``None`` means every pad of that set is open."""
        m, n = shape
        given = [x for x in (row_start, row_end, col_start, col_end) if x is not None]
        if not given:
            raise CircuitError("no terminal voltages given: at least one pad must be driven")
        b = np.atleast_2d(np.asarray(given[0], dtype=np.float64)).shape[0]

        def one(name: str, x: FloatArray | None, size: int) -> FloatArray:
            if x is None:
                return np.full((b, size), np.nan)
            arr = np.atleast_2d(np.asarray(x, dtype=np.float64))
            if arr.shape != (b, size):
                raise CircuitError(f"{name} must have shape ({b}, {size}), got {arr.shape}")
            if np.any(np.isinf(arr)):
                raise CircuitError(f"{name} contains an infinite voltage")
            return arr

        return cls(
            one("row_start", row_start, m),
            one("row_end", row_end, m),
            one("col_start", col_start, n),
            one("col_end", col_end, n),
        )

    @property
    def batch(self) -> int:
        return int(self.row_start.shape[0])

    def stacked(self) -> FloatArray:
        """(B, 2M + 2N) voltages in the order row_start, row_end, col_start, col_end."""
        return np.concatenate([self.row_start, self.row_end, self.col_start, self.col_end], 1)


@dataclass(frozen=True, slots=True)
class Pads:
    """Static pad geometry: tap node, series resistance and terminal kind of every pad.

    Pad order: row starts (M), row ends (M), column starts (N), column ends (N).
    """

    tap: IntArray  # tap-node index (row taps 0..MN-1, column taps MN..2MN-1)
    r_series: FloatArray  # terminal resistance + end segment (ohm)

    @classmethod
    def of(cls, wires: Wires) -> Pads:
        m, n = wires.shape
        i, j = np.arange(m), np.arange(n)
        tap = np.concatenate([i * n, i * n + n - 1, m * n + j, m * n + (m - 1) * n + j])
        r = np.concatenate(
            [
                wires.r_source + wires.r_row[:, 0],
                wires.r_source + wires.r_row[:, n],
                wires.r_sense + wires.r_col[0, :],
                wires.r_sense + wires.r_col[m, :],
            ]
        )
        return cls(tap.astype(np.int64), r)


def pad_names(shape: tuple[int, int]) -> list[str]:
    """Human names of the pads in `Pads` order (for error messages)."""
    m, n = shape
    return (
        [f"row {i} start" for i in range(m)]
        + [f"row {i} end" for i in range(m)]
        + [f"column {j} start" for j in range(n)]
        + [f"column {j} end" for j in range(n)]
    )


def wire_edges(wires: Wires) -> tuple[IntArray, IntArray, FloatArray]:
    """Internal wire segments as (tap a, tap b, resistance) over the 2MN tap nodes."""
    m, n = wires.shape
    idx = np.arange(m * n).reshape(m, n)
    ra, rb = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    ca, cb = m * n + idx[:-1, :].ravel(), m * n + idx[1:, :].ravel()
    a = np.concatenate([ra, ca])
    b = np.concatenate([rb, cb])
    r = np.concatenate([wires.r_row[:, 1:n].ravel(), wires.r_col[1:m, :].ravel()])
    return a, b, r


@lru_cache(maxsize=8)
def nested_dissection(m: int, n: int) -> IntArray:
    """A nested-dissection elimination order of the 2MN tap nodes (geometric bisection).

    Cutting between cell columns leaves the row nodes of the middle column as separator (the
    column line there only touches them); cutting between cell rows, the column nodes.
    """
    mn = m * n
    idx = np.arange(mn).reshape(m, n)
    out: list[IntArray] = []

    def rec(i0: int, i1: int, j0: int, j1: int) -> None:
        h, w = i1 - i0, j1 - j0
        if h <= 0 or w <= 0:
            return
        if h * w <= 16:
            blk = idx[i0:i1, j0:j1].ravel()
            out.append(np.stack([blk, mn + blk], 1).ravel())
            return
        if w >= h:
            k = (j0 + j1) // 2
            rec(i0, i1, j0, k)
            rec(i0, i1, k + 1, j1)
            out.append(mn + idx[i0:i1, k])
            out.append(idx[i0:i1, k])
        else:
            k = (i0 + i1) // 2
            rec(i0, k, j0, j1)
            rec(k + 1, i1, j0, j1)
            out.append(idx[k, j0:j1])
            out.append(mn + idx[k, j0:j1])

    rec(0, m, 0, n)
    order = np.concatenate(out).astype(np.int64)
    order.setflags(write=False)
    return order


_PLANS: OrderedDict[tuple[tuple[int, int], bytes, bool], FrontalPlan] = OrderedDict()
_PLANS_KEPT = 8
#: symbolic analysis of arrays without fixed nodes from the grid's templates
#: (`FrontalPlan.for_grid`); False: the general per-front analysis (benchmarks compare them)
USE_GRID_TEMPLATES = True


def forget_symbolic_analyses() -> None:
    """Drop the shared symbolic analyses (benchmarks time building them)."""
    _PLANS.clear()


def _scattered_zeros(shape: tuple[int, int]) -> FloatArray:
    """Zeros for an array of which only a few scattered rows are written (pad injections).
    Large ones come from an anonymous memory map: numpy asks for transparent huge pages on
    its own large arrays, so a row written every 256 KiB would make the whole array
    resident; here it costs one 4 KiB page."""
    nbytes = shape[0] * shape[1] * 8
    private = getattr(mmap, "MAP_PRIVATE", None)  # not on Windows
    if nbytes < (1 << 24) or private is None:
        return np.zeros(shape)
    # private: pages never written stay the shared zero page when read
    buf = mmap.mmap(-1, nbytes, flags=private | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=np.float64).reshape(shape)


def _branch_entries(
    a: IntArray, b: IntArray, y: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Matrix entries of two-terminal conductances `y` between nodes `a` and `b`."""
    return (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]),
            np.concatenate([y, y, -y, -y]))


class DirectEngine:
    """Direct factorization of the free-node system of one pad pattern; any wires, merges and
    fixed nodes. Without merged nodes: multifrontal Cholesky on the grid's nested-dissection
    tree (`solver_fronts`), whose batched dense solves make many inputs cheap; with merged
    nodes (zero-resistance segments): SuperLU with a minimum-degree order."""

    def __init__(self, wires: Wires, driven: BoolArray) -> None:
        m, n = wires.shape
        self.shape = (m, n)
        self.wires = wires
        pads = Pads.of(wires)
        ntap = 2 * m * n
        a, b, r = wire_edges(wires)
        zero = r == 0
        merged = bool(zero.any())
        if merged:
            adj = sp.coo_matrix((np.ones(int(zero.sum())), (a[zero], b[zero])), (ntap, ntap))
            _, node_of_tap = connected_components(adj, directed=False)
        else:
            node_of_tap = np.arange(ntap)
        self.node_of_tap = node_of_tap.astype(np.int64)
        self.taps_are_nodes = not merged
        nnode = int(self.node_of_tap.max()) + 1
        self.pad_node = self.node_of_tap[pads.tap]
        self.driven = driven
        self.pad_y = np.zeros(len(pads.tap))
        fixed_pad = driven & (pads.r_series == 0)
        self.pad_y[driven & ~fixed_pad] = 1.0 / pads.r_series[driven & ~fixed_pad]
        self.fixed_pad = fixed_pad
        fixed = np.zeros(nnode, dtype=bool)
        fixed[self.pad_node[fixed_pad]] = True
        self.fixed = fixed
        self.nnode = nnode
        keep = ~zero
        self.e_a = self.node_of_tap[a[keep]]
        self.e_b = self.node_of_tap[b[keep]]
        self.e_y = 1.0 / r[keep]
        mn = m * n
        self.dev_r = self.node_of_tap[:mn]
        self.dev_c = self.node_of_tap[mn:]
        if merged:
            free_order = np.flatnonzero(~fixed)
            self._permc = "MMD_AT_PLUS_A"
        elif not fixed.any() and USE_GRID_TEMPLATES:  # all nodes unknown: templates order them
            free_order = np.arange(nnode, dtype=np.int64)
            self._permc = "NATURAL"
        else:
            nd = nested_dissection(m, n)
            free_order = nd[~fixed[nd]]
            self._permc = "NATURAL"
        self.free = free_order
        #: unknowns are the nodes in node order (the template analysis)
        self._identity = bool(free_order.size == nnode and (free_order == np.arange(nnode)).all())
        self.pos = np.full(nnode, -1, dtype=np.int64)
        self.pos[free_order] = np.arange(len(free_order))
        self._k_wire_csr: sp.csr_matrix | None = None  # built when first needed
        self._lu_key: FloatArray | None = None
        self._lu: spla.SuperLU | FrontalFactor | None = None
        self._k_fd: sp.csr_matrix = sp.csr_matrix((self.nnode, 0))
        self._plan: FrontalPlan | None = None if merged else self._frontal_plan()
        release_freed_memory(16 * nnode)  # the analysis' temporaries: not kept for solves

    def _coo(self, dg: FloatArray | None) -> tuple[IntArray, IntArray, FloatArray]:
        """Entries (rows, cols, values; duplicates summed) of the node matrix: wires, pads,
        then devices (values only when `dg` is given; the order never changes)."""
        wr, wc, wv = _branch_entries(self.e_a, self.e_b, self.e_y)
        g = np.zeros(self.dev_r.size) if dg is None else dg.ravel()
        dr, dc, dv = _branch_entries(self.dev_r, self.dev_c, g)
        rows = np.concatenate([wr, self.pad_node, dr])
        cols = np.concatenate([wc, self.pad_node, dc])
        if dg is None:
            return rows, cols, np.empty(0)
        return rows, cols, np.concatenate([wv, self.pad_y, dv])

    def _values(self, dg: FloatArray) -> FloatArray:
        """The values of `_coo(dg)` alone."""
        g = dg.ravel()
        return np.concatenate([self.e_y, self.e_y, -self.e_y, -self.e_y, self.pad_y,
                               g, g, -g, -g])

    def _frontal_plan(self) -> FrontalPlan:
        """Symbolic analysis; it depends only on the shape and the fixed nodes (unmerged
        arrays), so engines of one shape and pad pattern share it (a few kept)."""
        m, n = self.shape
        rows, cols, _ = self._coo(None)
        keep = ~self.fixed[rows] & ~self.fixed[cols]
        self._frontal_keep = keep
        grid = not self.fixed.any() and USE_GRID_TEMPLATES
        key = (self.shape, self.fixed.tobytes(), grid)
        plan = _PLANS.get(key)
        if plan is None and grid:
            plan = FrontalPlan.for_grid(m, n, rows[keep], cols[keep])
            _PLANS[key] = plan
        elif plan is None:
            site = self.free % (m * n)
            fronts = grid_fronts(site // n, site % n, self.free < m * n)
            plan = FrontalPlan(fronts, self.free.size, self.pos[rows[keep]], self.pos[cols[keep]])
            _PLANS[key] = plan
        while len(_PLANS) > _PLANS_KEPT:
            _PLANS.popitem(last=False)
        _PLANS.move_to_end(key)
        return plan

    def check_connected(self, devices: BoolArray) -> None:
        """Every node needs a path to a driven pad (else its potential is undefined);
        `devices` (M, N) marks the devices that conduct."""
        m, n = self.shape
        driven = self.driven
        src = self.nnode
        on = devices.ravel()
        ea = np.concatenate([self.e_a, self.dev_r[on], self.pad_node[driven]])
        eb = np.concatenate([self.e_b, self.dev_c[on], np.full(int(driven.sum()), src)])
        adj = sp.coo_matrix((np.ones(len(ea)), (ea, eb)), (src + 1, src + 1))
        _, lab = connected_components(adj, directed=False)
        cut = lab[self.node_of_tap] != lab[src]
        if cut.any():
            rows = sorted({int(t) // n for t in np.flatnonzero(cut[: m * n])})
            cols = sorted({int(t) % n for t in np.flatnonzero(cut[m * n :])})
            what = [f"row {i}" for i in rows] + [f"column {j}" for j in cols]
            more = f" (and {len(what) - 3} more)" if len(what) > 3 else ""
            raise CircuitError(
                f"{', '.join(what[:3])}{more}: no path to any driven terminal "
                "(line floating and isolated); drive it or give its devices g > 0"
            )

    def _assemble_wire(self) -> sp.csr_matrix:
        """Wire segments + pad conductances over all nodes (devices excluded)."""
        rows, cols, vals = _branch_entries(self.e_a, self.e_b, self.e_y)
        rows = np.concatenate([rows, self.pad_node])
        cols = np.concatenate([cols, self.pad_node])
        vals = np.concatenate([vals, self.pad_y])
        return sp.coo_matrix((vals, (rows, cols)), (self.nnode, self.nnode)).tocsr()

    def matrix(self, dg: FloatArray) -> sp.csr_matrix:
        """Full node matrix with device conductances `dg` (M, N)."""
        rows, cols, vals = _branch_entries(self.dev_r, self.dev_c, dg.ravel())
        kd = sp.coo_matrix((vals, (rows, cols)), (self.nnode, self.nnode))
        return (self._k_wire + kd).tocsr()

    @property
    def _k_wire(self) -> sp.csr_matrix:
        """Wire segments + pad conductances (`_assemble_wire`), built on first use: the
        frontal path of a grid never needs it."""
        if self._k_wire_csr is None:
            self._k_wire_csr = self._assemble_wire()
        return self._k_wire_csr

    def has_factor(self, dg: FloatArray) -> bool:
        """Whether the cached LU is for exactly these device conductances."""
        return self._lu_key is not None and np.array_equal(self._lu_key, dg)

    def factor(self, dg: FloatArray) -> tuple[spla.SuperLU | FrontalFactor, sp.csr_matrix]:
        """Factor of the free-node block for device conductances `dg`, reused while
        unchanged, and the free-to-fixed coupling block."""
        if self._lu is not None and self.has_factor(dg):
            return self._lu, self._k_fd
        if self._plan is not None:
            vals = self._values(dg)[self._frontal_keep]
            try:
                fac = self._plan.factor(vals)
            except np.linalg.LinAlgError as exc:
                raise CircuitError(
                    "unsolvable circuit: node matrix not positive definite (check for g < 0)"
                ) from exc
            self._lu, self._lu_key = fac, np.array(dg, copy=True)
            if self.fixed.any():
                self._k_fd = self.matrix(dg)[:, np.flatnonzero(self.fixed)].tocsr()
            return fac, self._k_fd
        k = self.matrix(dg)
        kf = k[self.free][:, self.free].tocsc()
        try:
            lu = spla.splu(
                kf, permc_spec=self._permc, diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        except RuntimeError as exc:  # singular: should be caught by the path check
            raise CircuitError(f"unsolvable circuit: {exc}") from exc
        self._lu, self._lu_key = lu, np.array(dg, copy=True)
        self._k_fd = k[:, np.flatnonzero(self.fixed)].tocsr()
        return lu, self._k_fd

    def pad_rhs(self, volts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Node injections from resistive pads and fixed node values, node-major
        (nnode, B) each."""
        bsz = volts.shape[0]
        inj = _scattered_zeros((self.nnode, bsz))
        res = self.driven & ~self.fixed_pad
        v = np.where(np.isnan(volts), 0.0, volts)
        np.add.at(inj, self.pad_node[res], (self.pad_y[res] * v[:, res]).T)
        fixed_v = _scattered_zeros((self.nnode, bsz))
        fp = np.flatnonzero(self.fixed_pad)
        for p in fp:  # few pads; check shorts between different voltages
            node = self.pad_node[p]
            other = fp[(self.pad_node[fp] == node) & (fp != p)]
            tol = 1e-12 * max(1.0, float(np.abs(v[:, [p, *other]]).max(initial=0.0)))
            for q in other:
                if np.any(np.abs(v[:, p] - v[:, q]) > tol):
                    names = pad_names(self.shape)
                    raise CircuitError(
                        f"unsolvable: {names[p]} and {names[q]} are joined without resistance "
                        "but driven at different voltages"
                    )
            fixed_v[node] = v[:, p]
        return inj, fixed_v

    def solve(
        self, dg: FloatArray, rhs: FloatArray, fixed_v: FloatArray, *, pads_only: bool = False
    ) -> FloatArray:
        """Node voltages (nnode, B) of K(dg) v = rhs with fixed nodes held at `fixed_v`
        (both (nnode, B), node-major like the result). `pads_only`: `rhs` is zero except on
        pad nodes (`pad_rhs`'s injections), and only those rows of it are read."""
        lu, k_fd = self.factor(dg)
        fixed = np.flatnonzero(self.fixed)
        r = rhs
        if fixed.size:
            r = rhs - k_fd @ fixed_v[fixed]
        # batch-major storage: the tap voltages of every case are then views, not copies
        if isinstance(lu, FrontalFactor) and self._identity:  # the solve writes every row
            v = np.empty(fixed_v.shape, order="F")
        else:
            v = np.array(fixed_v, order="F", copy=True)
        if isinstance(lu, FrontalFactor):
            hint = None
            if pads_only and not fixed.size:
                hint = np.unique(self.pad_node)
            lu.solve(np.ascontiguousarray(r), rows=None if self._identity else self.free, out=v,
                     nonzero_rows=hint)
            return v
        rf = np.ascontiguousarray(r[self.free].T)
        for b in range(rf.shape[0]):  # SuperLU's multi-RHS solve is slower than a loop
            v[self.free, b] = lu.solve(rf[b])
        return v

    def taps(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Row and column tap voltages (B, M, N) from node voltages (nnode, B)."""
        m, n = self.shape
        bsz = v.shape[1]
        if self.taps_are_nodes:  # row taps are nodes 0..MN-1, column taps MN..2MN-1
            # views where `v` is stored batch-major (see `solve`), copies otherwise
            return v[: m * n].T.reshape(bsz, m, n), v[m * n :].T.reshape(bsz, m, n)
        return (
            np.ascontiguousarray(v[self.dev_r].T).reshape(bsz, m, n),
            np.ascontiguousarray(v[self.dev_c].T).reshape(bsz, m, n),
        )

    def _wire_currents(self, v: FloatArray) -> FloatArray:
        """Current (nnode, B) leaving every node through the wires and resistive pads. Where
        taps are nodes and `v` is stored batch-major, by differences along the lines (no
        sparse product and its copies of `v`), in the same layout as `v`."""
        m, n = self.shape
        mn = m * n
        vt = v.T
        if not (self.taps_are_nodes and vt.flags.c_contiguous and v.shape[0] == 2 * mn):
            out: FloatArray = self._k_wire @ v
            return out
        bsz = vt.shape[0]
        res = np.zeros_like(vt)
        vr, vc = vt[:, :mn].reshape(bsz, m, n), vt[:, mn:].reshape(bsz, m, n)
        fr, fc = res[:, :mn].reshape(bsz, m, n), res[:, mn:].reshape(bsz, m, n)
        nr = m * (n - 1)
        d = self.e_y[:nr].reshape(m, n - 1) * (vr[:, :, :-1] - vr[:, :, 1:])
        fr[:, :, :-1] += d
        fr[:, :, 1:] -= d
        d = self.e_y[nr:].reshape(m - 1, n) * (vc[:, :-1, :] - vc[:, 1:, :])
        fc[:, :-1, :] += d
        fc[:, 1:, :] -= d
        del d
        on = self.pad_y != 0
        np.add.at(res.T, self.pad_node[on], self.pad_y[on, None] * v[self.pad_node[on]])
        return res.T

    def kcl(self, v: FloatArray, i_dev: FloatArray, inj: FloatArray) -> FloatArray:
        """Net current (nnode, B) leaving every node: wires, resistive pads and devices
        (`i_dev` (B, M, N), row to column) minus the pad injections `inj`."""
        mn = self.shape[0] * self.shape[1]
        out = self._wire_currents(v)
        out -= inj
        i_nm = i_dev.reshape(i_dev.shape[0], mn).T
        if self.taps_are_nodes:
            out[:mn] += i_nm
            out[mn:] -= i_nm
        else:
            np.add.at(out, self.dev_r, i_nm)
            np.subtract.at(out, self.dev_c, i_nm)
        return out


    def kcl_check(
        self, v: FloatArray, i_dev: FloatArray, inj: FloatArray, want: IntArray
    ) -> tuple[float, FloatArray]:
        """The KCL check of a solve: the largest |net current| leaving a free node (wires,
        resistive pads, devices `i_dev` (B, M, N), injections `inj`; see `kcl`), and the
        net currents (len(want), B) at nodes `want`. Compiled in one pass over `v` where taps
        are nodes and `v` is batch-major (`solver_fronts_kernels`), else `kcl` a few cases
        at a time (a whole batch's residual would double the memory)."""
        m, n = self.shape
        mn = m * n
        free = ~self.fixed
        vt = v.T
        f_want = np.zeros((want.size, v.shape[1]))
        if (solver_fronts_kernels.AVAILABLE and self.taps_are_nodes
                and vt.flags.c_contiguous and v.shape[0] == 2 * mn and inj.shape == v.shape):
            nr = m * (n - 1)
            res = self.driven & ~self.fixed_pad
            return solver_fronts_kernels.kcl_grid(
                vt, np.ascontiguousarray(i_dev), self.e_y[:nr].reshape(m, n - 1),
                self.e_y[nr:].reshape(m - 1, n), self.pad_node, self.pad_y, inj,
                np.unique(self.pad_node[res]), free, want,
            )
        resid = 0.0
        step_b = max(1, (1 << 22) // max(self.nnode, 1))
        for b0 in range(0, v.shape[1], step_b):
            cut = slice(b0, b0 + step_b)
            f = self.kcl(v[:, cut], i_dev[cut], inj[:, cut])
            f_want[:, cut] = f[want]
            if free.any():
                resid = max(resid, float(np.abs(f if free.all() else f[free]).max()))
        return resid, f_want


def _tridiag_chains(
    y_seg: FloatArray, y_start: FloatArray, y_end: FloatArray, diag_extra: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Diagonal and off-diagonal of chains (..., L) with internal segment conductances
    `y_seg` (..., L-1), end conductances (...), plus `diag_extra` (..., L)."""
    d = np.array(diag_extra, dtype=np.float64, copy=True)
    d[..., 1:] += y_seg
    d[..., :-1] += y_seg
    d[..., 0] += y_start
    d[..., -1] += y_end
    e = np.zeros(d.shape)
    e[..., :-1] = -y_seg
    return d, e


class LineEngine:
    """Reduced-system conjugate gradients with exact row-line elimination.

    For node voltages vr (row taps) and vc (column taps) the network equations read
    ``T_r vr - D vc = b_r`` and ``T_c vc - D vr = b_c`` with T_r, T_c block-tridiagonal (one
    chain per line) and D = diag(device conductances). Eliminating vr exactly leaves
    ``(T_c - D T_r^-1 D) vc = b_c + D T_r^-1 b_r``, symmetric positive definite and, since lines
    are far more conductive than devices, close to T_c: CG preconditioned by T_c converges in a
    handful of iterations. Needs every segment resistance > 0.
    """

    def __init__(self, wires: Wires, pad_y: FloatArray) -> None:
        """`pad_y` (B or 1, 2M + 2N): pad conductances (0 for open pads)."""
        m, n = wires.shape
        self.shape = (m, n)
        self.y_row = 1.0 / wires.r_row[:, 1:n]  # (M, N-1)
        self.y_col = 1.0 / wires.r_col[1:m, :].T  # (N, M-1), column-major chains
        self.y_col_rows = np.ascontiguousarray(self.y_col.T)  # (M-1, N), for the kernel
        self.pad_y = pad_y
        #: the compiled kernel (`solver_kernels`) solves shared pad patterns where numba loads
        self.compiled = solver_kernels.AVAILABLE and pad_y.shape[0] == 1
        self._key: FloatArray | None = None
        self._fac: tuple[FloatArray, ...] | None = None
        #: chain factors and work arrays of single-case solves (`CrossbarSolver._line_case`)
        self.case: LineFactors | None = None

    def _factor(self, dg: FloatArray) -> tuple[FloatArray, ...]:
        if self._fac is not None and self._key is not None and np.array_equal(self._key, dg):
            return self._fac
        m, n = self.shape
        py = self.pad_y
        dg3 = dg.reshape(-1, m, n)
        bsz = max(py.shape[0], dg3.shape[0])
        dgb = np.broadcast_to(dg3, (bsz, m, n))
        dr, er = _tridiag_chains(self.y_row, py[:, :m], py[:, m : 2 * m], dgb)
        dc, ec = _tridiag_chains(
            self.y_col, py[:, 2 * m : 2 * m + n], py[:, 2 * m + n :], dgb.transpose(0, 2, 1)
        )
        dr_f, er_f, info_r = lapack.dpttrf(dr.ravel(), er.ravel()[:-1])
        dc_f, ec_f, info_c = lapack.dpttrf(dc.ravel(), ec.ravel()[:-1])
        if info_r != 0 or info_c != 0:
            raise CircuitError("line matrix not positive definite (check for g < 0)")
        self._fac = (dr_f, er_f, dc_f, ec_f, dc.reshape(bsz, -1), ec.reshape(bsz, -1))
        self._key = np.array(dg, copy=True)
        return self._fac

    def solve(
        self,
        dg: FloatArray,
        b_r: FloatArray,
        b_c: FloatArray,
        *,
        rtol: float = 1e-11,
        max_iter: int = 60,
        x0: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, int, BoolArray]:
        """Solve for (vr, vc) (B, M, N); `dg` (M, N) shared or (B, M, N) per case; `x0`
        (B, M, N): a start for the column-node voltages (compiled kernel only).

        Returns vr, vc, iterations used, and a per-case flag of convergence.
        """
        m, n = self.shape
        bsz = b_r.shape[0]
        if self.compiled:
            warm = None if x0 is None else np.ones(bsz, dtype=np.bool_)
            vr, vc, its, ok = solver_kernels.line_pcg(
                self.y_row, self.y_col_rows, self.pad_y[0], dg, b_r, b_c, x0=x0, warm=warm,
                rtol=rtol, max_iter=max_iter,
            )
            if (its < 0).any():
                raise CircuitError("line matrix not positive definite (check for g < 0)")
            return vr, vc, int(its.max()), ok
        dr_f, er_f, dc_f, ec_f, dc, ec = self._factor(dg)
        shared = dr_f.size == m * n
        if not shared and dr_f.size != bsz * m * n:
            raise CircuitError("per-case line factors do not match the batch size")
        dgb = np.broadcast_to(dg.reshape(-1, m, n), (bsz, m, n))
        dcm = dgb.transpose(0, 2, 1).reshape(bsz, -1)

        def tr_solve(x: FloatArray) -> FloatArray:  # x (B, M, N) row-major chains
            if shared:
                out = lapack.dpttrs(dr_f, er_f, x.reshape(bsz, -1).T)[0].T
            else:
                out = lapack.dpttrs(dr_f, er_f, x.ravel())[0]
            return np.asarray(out).reshape(bsz, m, n)

        def tc_solve(x: FloatArray) -> FloatArray:  # x (B, N*M) column-major
            if shared:
                out = lapack.dpttrs(dc_f, ec_f, x.T)[0].T
            else:
                out = lapack.dpttrs(dc_f, ec_f, x.ravel())[0]
            return np.asarray(out).reshape(bsz, -1)

        def tc_mul(x: FloatArray) -> FloatArray:
            y = dc * x
            y[:, :-1] += ec[:, :-1] * x[:, 1:]
            y[:, 1:] += ec[:, :-1] * x[:, :-1]
            return y

        def to_cm(x: FloatArray) -> FloatArray:
            return x.transpose(0, 2, 1).reshape(bsz, -1)

        def to_rm(x: FloatArray) -> FloatArray:
            return x.reshape(bsz, n, m).transpose(0, 2, 1)

        def schur(x: FloatArray) -> FloatArray:
            return tc_mul(x) - dcm * to_cm(tr_solve(dgb * to_rm(x)))

        tr_br = tr_solve(b_r)
        rhs = to_cm(b_c) + dcm * to_cm(tr_br)
        x = tc_solve(rhs)
        r = rhs - schur(x)
        z = tc_solve(r)
        p = z.copy()
        rz = np.einsum("bi,bi->b", r, z)
        norm_b = np.sqrt(np.einsum("bi,bi->b", rhs, rhs))
        tiny = np.finfo(np.float64).tiny
        done = np.sqrt(np.einsum("bi,bi->b", r, r)) <= rtol * norm_b + tiny
        it = 0
        while not done.all() and it < max_iter:
            it += 1
            q = schur(p)
            pq = np.einsum("bi,bi->b", p, q)
            alpha = np.where(done | (pq == 0), 0.0, rz / np.where(pq == 0, 1.0, pq))
            x += alpha[:, None] * p
            r -= alpha[:, None] * q
            done = np.sqrt(np.einsum("bi,bi->b", r, r)) <= rtol * norm_b + tiny
            if done.all():
                break
            z = tc_solve(r)
            rz_new = np.einsum("bi,bi->b", r, z)
            beta = np.where(rz == 0, 0.0, rz_new / np.where(rz == 0, 1.0, rz))
            p = z + beta[:, None] * p
            rz = rz_new
        vc = to_rm(x)
        vr = tr_br + tr_solve(dgb * vc)
        return vr, np.ascontiguousarray(vc), it, done
