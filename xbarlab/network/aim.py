"""Write-verify aimed through a circuit model: what a device at its target reads as here.

On a wired array a grounded read of one cell is not that cell's conductance: the selected row
feeds every column through its wire, source and sense resistance drop part of the read voltage,
and the sensed column collects a share of the other cells' currents (on 64 x 64 at 1 ohm per
segment, reads of 100-500 uS devices are off by -60 % to +50 %). A verify that trusts the raw
read programs the read, not the device. `CircuitAim` holds a circuit model of the arrays (the
same wires, source and sense resistance, linear devices; nothing known about stuck devices)
and predicts, for the plan:

- `verify_reads`: the read each cell of a group would give with the group at its targets and
  every other cell at the state last measured (the verify aims at it; cells are programmed
  in groups along the programming order, a column or row of one array, each group with the
  model as the array is while that group is programmed);
- `pulse_gains`: applied / delivered amplitude of a SET at the start amplitude under the
  pulse scheme (solved on a grid of cells, interpolated: line drops vary smoothly); the plan
  scales its amplitudes by it, capped at the pulse limits;
- `deconvolve`: the conductances whose model reads match a measured read map (fixed point
  g <- g x measured / model(g)): what each device holds, the circuit taken out.

The model is the session's ``sim:`` section (on a bench: sized like its array; the wire, source
and sense resistances configured there), evaluated off-line: the plan only sends reads and
pulses, so the same session code runs on the simulator and on a bench. Bank maps: array a
holds bank rows [a M, (a + 1) M) (`xbarlab.network.bank`); arrays do not couple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme, Cell, FloatArray
from xbarlab.sim.circuit import Circuit
from xbarlab.sim.devices import FixedDevices
from xbarlab.sim.factory import make_circuit

G_FLOOR = 1e-6  # S: deconvolved conductances are kept in [G_FLOOR, G_CEIL]
G_CEIL = 1e-2


def wired(sim: SimConfig) -> bool:
    """Whether the circuit model of `sim` has any wire, source or sense resistance."""
    return sim.fidelity != "ideal" and any(
        r > 0 for r in (sim.r_wire_row, sim.r_wire_col, sim.r_source, sim.r_sense))


@dataclass
class CircuitAim:
    """The circuit model of a bank of `n_arrays` arrays of `array_shape` (see module doc)."""

    circuit: Circuit
    array_shape: tuple[int, int]
    n_arrays: int
    v_read: float
    pulse_scheme: BiasScheme
    amplitude: float  # V, the SET start amplitude the pulse share is solved at
    v_max: float  # V, pulse limits the scaled amplitudes are capped at
    v_min: float
    iterations: int = 4  # fixed-point steps of `deconvolve`
    grid: int = 8  # cells per line the pulse share is solved on

    @classmethod
    def of(cls, sim: SimConfig, array_shape: tuple[int, int], n_arrays: int, v_read: float,
           pulse_scheme: BiasScheme, amplitude: float, v_max: float, v_min: float
           ) -> CircuitAim:
        """The model of `sim`'s circuit (linear devices: solved at fidelity 'wires')."""
        model = sim.model_copy(update={"rows": array_shape[0], "cols": array_shape[1],
                                       "fidelity": "wires" if wired(sim) else "ideal"})
        return cls(make_circuit(model), array_shape, n_arrays, v_read, pulse_scheme,
                   amplitude, v_max, v_min)

    # -- one array ----------------------------------------------------------------------------
    def _reads(self, g: FloatArray, rows: Sequence[int] | None = None) -> FloatArray:
        """Model grounded reads (S) of the cells of `rows` (default all) of one array holding
        `g`: one solve per row driven (its batch row r gives the reads of row r's cells)."""
        m, n = g.shape
        rr = np.arange(m) if rows is None else np.asarray(sorted(set(rows)), dtype=np.int64)
        drive = np.zeros((len(rr), m))
        drive[np.arange(len(rr)), rr] = self.v_read
        sol = self.circuit.solve(FixedDevices(g), drive, np.zeros((len(rr), n)))
        out = np.full((m, n), np.nan)
        out[rr] = np.asarray(sol.i_cols) / self.v_read
        return out

    def _share(self, g: FloatArray) -> FloatArray:
        """Share (M, N) of a start-amplitude pulse each cell of one array holding `g` sees."""
        from scipy.interpolate import RegularGridInterpolator

        m, n = g.shape
        rs = np.unique(np.linspace(0, m - 1, min(m, self.grid)).round().astype(int))
        cs = np.unique(np.linspace(0, n - 1, min(n, self.grid)).round().astype(int))
        cells = [(int(r), int(c)) for r in rs for c in cs]
        rv, cv = np.empty((len(cells), m)), np.empty((len(cells), n))
        for k, cell in enumerate(cells):
            rv[k], cv[k] = line_biases((m, n), cell, self.amplitude, self.pulse_scheme)
        sol = self.circuit.solve(FixedDevices(g), rv, cv)
        share = np.array([sol.v_dev[k][cell] for k, cell in enumerate(cells)]).reshape(
            len(rs), len(cs)) / self.amplitude
        if len(rs) < 2 or len(cs) < 2:
            return np.full((m, n), float(share.mean()))
        interp = RegularGridInterpolator((rs, cs), share)
        rr, cc = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        return np.asarray(interp(np.stack([rr.ravel(), cc.ravel()], axis=1)).reshape(m, n))

    def _array(self, bank: FloatArray, a: int) -> FloatArray:
        m = self.array_shape[0]
        return np.asarray(bank[a * m:(a + 1) * m], dtype=np.float64)

    # -- bank maps ----------------------------------------------------------------------------
    def verify_reads(self, g_bank: FloatArray, cells: Sequence[Cell]) -> dict[Cell, float]:
        """Model reads (S) of `cells` (one array) with the array holding `g_bank`."""
        m = self.array_shape[0]
        arrays = {c[0] // m for c in cells}
        if len(arrays) != 1:
            raise ValueError("a verify group lies on one array")
        a = arrays.pop()
        reads = self._reads(self._array(g_bank, a), [c[0] - a * m for c in cells])
        return {c: float(reads[c[0] - a * m, c[1]]) for c in cells}

    def pulse_gains(self, g_bank: FloatArray, arrays: Sequence[int]) -> FloatArray:
        """Bank map of applied / delivered amplitude on `arrays` (1 elsewhere)."""
        out = np.ones(g_bank.shape)
        m = self.array_shape[0]
        for a in arrays:
            out[a * m:(a + 1) * m] = 1.0 / np.clip(self._share(self._array(g_bank, a)), 1e-3,
                                                   None)
        return out

    def deconvolve(self, reads_bank: FloatArray) -> FloatArray:
        """Bank map of the conductances whose model reads match `reads_bank` (a read of
        every cell of every array)."""
        out = np.empty(reads_bank.shape)
        m = self.array_shape[0]
        for a in range(self.n_arrays):
            meas = np.clip(self._array(reads_bank, a), G_FLOOR, None)
            g = meas.copy()
            for _ in range(self.iterations):
                g = np.clip(g * meas / np.clip(self._reads(g), 1e-9, None), G_FLOOR, G_CEIL)
            out[a * m:(a + 1) * m] = g
        return out


def verify_groups(cells: Sequence[Cell], array_rows: int, order: str) -> list[list[Cell]]:
    """`cells` cut into runs of consecutive cells on one array's column (column-major order)
    or row (row-major): the groups whose verify reads share one circuit model."""
    line = 1 if order == "column-major" else 0
    out: list[list[Cell]] = []
    for cell in cells:
        key = (cell[0] // array_rows, cell[line])
        if out and (out[-1][-1][0] // array_rows, out[-1][-1][line]) == key:
            out[-1].append(cell)
        else:
            out.append([cell])
    return out
