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
from xbarlab.sim.devices import DeviceArray
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
    solved by the nodal solver (`xbarlab.sim.solver`, Newton on the lumped lines)."""

    def solve(self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray) -> CircuitSolution:
        row_v = np.atleast_2d(np.asarray(row_v, dtype=np.float64))
        col_v = np.atleast_2d(np.asarray(col_v, dtype=np.float64))
        check_conductances(devices.g)
        floating = np.isnan(row_v).any() or np.isnan(col_v).any()
        if floating:
            row_v, col_v = self._float_lines(devices, row_v, col_v)
        v_dev = row_v[:, :, None] - col_v[:, None, :]
        i_dev = devices.current(v_dev)
        return CircuitSolution(v_dev, i_dev, i_dev.sum(axis=2), i_dev.sum(axis=1))

    def sense(
        self, devices: DeviceArray, row_v: FloatArray, col_v: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        sol = self.solve(devices, row_v, col_v)
        return sol.i_rows, sol.i_cols

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
