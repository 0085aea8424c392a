"""Circuit models: from line potentials to device voltages and terminal currents.

`IdealCircuit` has no wire, source or sense resistance: every device sees its row potential
minus its column potential, except where lines float, whose potentials follow from Kirchhoff's
current law. The wire-resistance solver plugs in behind the same `Circuit` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim import circuit_kernels
from xbarlab.sim.devices import DeviceArray
from xbarlab.sim.iv import LinearIV, SinhIV
from xbarlab.sim.solver_network import CircuitError


@dataclass(frozen=True, slots=True)
class CircuitSolution:
    """A solved batch of B bias cases on an M x N array.

    `v_dev`, `i_dev`: (B, M, N) device voltage (row minus column) and current (row to column).
    `i_rows`: (B, M) current delivered by each row's driver into the array (0 if floating).
    `i_cols`: (B, N) current each column's terminal sinks out of the array (0 if floating):
    at a column held at 0 V by a sense amplifier this is the sensed current.
    """

    v_dev: FloatArray
    i_dev: FloatArray
    i_rows: FloatArray
    i_cols: FloatArray


def line_currents(i_pad: FloatArray, shape: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """Row currents delivered (B, M) and column currents sunk (B, N) from pad currents
    (B, 2M + 2N; row starts, row ends, column starts, column ends; delivered into the array)."""
    m, n = shape
    i_rows = i_pad[:, :m] + i_pad[:, m : 2 * m]
    i_cols = -(i_pad[:, 2 * m : 2 * m + n] + i_pad[:, 2 * m + n :])
    return i_rows, i_cols


def check_conductances(g: FloatArray, what: str = "device") -> None:
    """Raise `CircuitError` naming the first device whose conductance is NaN, infinite or
    negative (a circuit answer from such a state would be meaningless)."""
    g = np.asarray(g)
    if np.isfinite(g.sum()) and g.min(initial=0.0) >= 0.0:
        return  # a finite sum of values >= 0: the common case in two reductions
    bad = ~np.isfinite(g) | (g < 0)
    i, j = (int(k) for k in np.argwhere(bad)[0])
    raise CircuitError(
        f"{what} ({i}, {j}) has conductance {g[i, j]!r} S ({int(bad.sum())} bad in all); "
        "conductances must be finite and >= 0 S"
    )


class Circuit(Protocol):
    """Solves the array for given line potentials (NaN = floating line)."""

    def solve(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray) -> CircuitSolution:
        """`row_v` (B, M) and `col_v` (B, N) line potentials at the drivers, NaN = floating."""
        ...

    def sense(
        self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Only the line currents (`i_rows`, `i_cols` of `solve`): what a read measures."""
        ...

    def describe(self) -> dict[str, Any]: ...


class IdealCircuit:
    """Zero wire, source and sense resistance. Floating lines with nonlinear devices are
    solved by the nodal solver (`xbarlab.sim.solver`, Newton on the lumped lines).

    A single case with every line driven (a single-cell read or pulse) evaluates the I-V law
    only where a device sees a voltage (a device at 0 V carries no current, exactly), when
    the array's law is known elementwise (`SinhIV` or `LinearIV` with scalar parameters)."""

    def __init__(self, *, compiled: bool = True, min_cells: int = 1024) -> None:
        #: compiled single-case kernels (False: the numpy path, the reference)
        self.compiled = compiled
        #: smallest array (cells) the kernels are used for: loading them costs a process
        #: about 0.25 s of CPU once (numba's disk cache), and on small arrays the numpy
        #: path is about as fast (an emulated 8 x 8 bench, a short CLI run)
        self.min_cells = min_cells
        self._checked: FloatArray | None = None  # last read-only state found valid
        self._law_of: object = None  # the I-V law object `_law_const` was found for
        self._law_const: tuple[float, float, bool] | None = None

    def _law(self, devices: DeviceArray) -> tuple[float, float, bool] | None:
        """The compiled kernels' form of the array's law (None: use `devices.current`)."""
        if not (circuit_kernels.AVAILABLE and self.compiled):
            return None
        m, n = devices.shape
        if m * n < self.min_cells:
            return None
        law = getattr(devices, "iv", None)
        if law is not self._law_of or law is None:
            self._law_of, self._law_const = law, _elementwise_law(law)
        return self._law_const

    def _check(self, devices: DeviceArray) -> FloatArray:
        g = devices.g
        if g is not self._checked:  # a read-only state is checked once (TiO2Devices.g)
            if not (self.compiled and circuit_kernels.AVAILABLE and type(g) is np.ndarray
                    and g.ndim == 2 and g.dtype == np.float64 and g.size >= self.min_cells
                    and circuit_kernels.valid_conductances(g)):
                check_conductances(g)  # raises if a conductance is bad
            if not g.flags.writeable:
                self._checked = g
        return g

    def solve(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray) -> CircuitSolution:
        row_v, col_v = _lines(row_v), _lines(col_v)
        g = self._check(devices)
        law = self._law(devices) if row_v.shape[0] == 1 == col_v.shape[0] else None
        if law is not None and row_v.shape[1] == g.shape[0] and col_v.shape[1] == g.shape[1]:
            m, n = g.shape
            v_dev, i_dev = np.empty((1, m, n)), np.empty((1, m, n))
            i_rows, i_cols = np.empty((1, m)), np.empty((1, n))
            if circuit_kernels.ideal_case(row_v[0], col_v[0], g, law[0], law[1], law[2],
                                          v_dev[0], i_dev[0], i_rows[0], i_cols[0]):
                return CircuitSolution(v_dev, i_dev, i_rows, i_cols)
        if np.isnan(row_v).any() or np.isnan(col_v).any():
            row_v, col_v = self._float_lines(devices, row_v, col_v)
        v_dev = row_v[:, :, None] - col_v[:, None, :]
        i_dev = devices.current(v_dev)
        return CircuitSolution(v_dev, i_dev, i_dev.sum(axis=2), i_dev.sum(axis=1))

    def sense(
        self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        row_v, col_v = _lines(row_v), _lines(col_v)
        law = self._law(devices)
        if law is not None and row_v.shape[0] == col_v.shape[0]:
            g = self._check(devices)
            if row_v.shape[1] == g.shape[0] and col_v.shape[1] == g.shape[1]:
                i_rows = np.empty(row_v.shape)
                i_cols = np.empty(col_v.shape)
                if circuit_kernels.ideal_sense(row_v, col_v, g, law[0], law[1], law[2],
                                               i_rows, i_cols):
                    return i_rows, i_cols
        sol = self.solve(devices, row_v, col_v)
        return sol.i_rows, sol.i_cols

    def column(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray, col: int,
               v_dev: FloatArray | None = None) -> float | None:
        """One case with every line driven, row_v (M,), col_v (N,): the current column `col`
        sinks (`solve`'s ``i_cols[0, col]``, the same float), and the device voltages into
        `v_dev` (M, N) if given. None when the compiled kernels do not apply (a floating
        line, an array law they do not know, no numba): then use `solve` / `sense`."""
        law = self._law(devices)
        if law is None:
            return None
        g = self._check(devices)
        if row_v.shape != (g.shape[0],) or col_v.shape != (g.shape[1],):
            return None
        out = circuit_kernels.column_case(row_v, col_v, g, law[0], law[1], law[2], col,
                                          _NO_MAP if v_dev is None else v_dev)
        return None if out != out else float(out)

    @staticmethod
    def _float_lines(
        devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Fill floating line potentials by KCL (no current leaves a floating line)."""
        if not devices.linear:
            from xbarlab.sim.solver import lumped_line_potentials  # solver imports this module

            return lumped_line_potentials(devices, row_v, col_v)
        g = devices.g
        m, n = g.shape
        row_v, col_v = row_v.copy(), col_v.copy()
        for b in range(row_v.shape[0]):
            v = np.concatenate([row_v[b], col_v[b]])
            free = np.isnan(v)
            if not free.any():
                continue
            lap = np.zeros((m + n, m + n))
            lap[:m, m:] = -g
            lap[m:, :m] = -g.T
            lap[np.arange(m), np.arange(m)] = g.sum(axis=1)
            lap[m + np.arange(n), m + np.arange(n)] = g.sum(axis=0)
            fixed = ~free
            a = lap[np.ix_(free, free)]
            rhs = -lap[np.ix_(free, fixed)] @ v[fixed]
            try:
                v[free] = np.linalg.solve(a, rhs)
            except np.linalg.LinAlgError:
                raise CircuitError(_isolated_lines(g, free)) from None
            row_v[b], col_v[b] = v[:m], v[m:]
        return row_v, col_v

    def describe(self) -> dict[str, Any]:
        return {"circuit": "ideal"}


_NO_MAP = np.empty((0, 0))


def _lines(v: FloatArray) -> FloatArray:
    """Line potentials as a float64 array (B, K)."""
    if type(v) is np.ndarray and v.ndim == 2 and v.dtype == np.float64:
        return v
    return np.atleast_2d(np.asarray(v, dtype=np.float64))


def _elementwise_law(law: object) -> tuple[float, float, bool] | None:
    """(a, b, True) for a scalar `SinhIV` law, (1, 1, False) for `LinearIV`, else None (the
    array's own `current` is then used)."""
    if type(law) is SinhIV and np.ndim(law.a) == 0 and np.ndim(law.b) == 0:
        return float(law.a), float(law.b), True
    if type(law) is LinearIV:
        return 1.0, 1.0, False
    return None


def _isolated_lines(g: FloatArray, free: np.ndarray) -> str:
    """Message naming the floating lines that no conducting device joins to a driven line."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, n = g.shape
    ii, jj = np.nonzero(g > 0)
    src = m + n  # every driven line joins this node
    fixed = np.flatnonzero(~free)
    a = np.concatenate([ii, fixed])
    b = np.concatenate([m + jj, np.full(fixed.size, src)])
    adj = coo_matrix((np.ones(a.size), (a, b)), (src + 1, src + 1))
    _, lab = connected_components(adj, directed=False)
    cut = np.flatnonzero(lab[:src] != lab[src])
    what = [f"row {k}" if k < m else f"column {k - m}" for k in cut]
    more = f" (and {len(what) - 3} more)" if len(what) > 3 else ""
    return (
        f"{', '.join(what[:3])}{more}: floating and isolated (no conducting device joins it "
        "to a driven line), its potential is undefined; drive it or give its devices g > 0"
    )
