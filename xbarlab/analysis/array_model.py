"""The configured circuit of an array as a predictor, for a write-verify that tracks the array.

`CircuitArrayModel` takes estimated device conductances (never a simulated device's state) and
predicts what the bench measures and delivers through the session's circuit (its `sim:`
section: wire, source and sense resistance, the device preset's I-V law):

- `read_map`: the grounded read of every cell (one solve per driven row: a grounded read of
  row r's cells is row r driven, every other line at 0 V);
- `read_cell`: one cell's grounded read;
- `de_embed`: the conductances whose predicted read map is a measured one (Anderson-accelerated
  fixed point on log G: a grounded read's gain depends on the whole selected row and column);
- `pulse_share`: the share of a pulse's amplitude each cell sees across its terminals;
- `mate_voltages`: what the half-selected devices of a pulse's row and column see per volt
  (linear small-signal circuit: the half-select disturb a device model predicts from it).
"""

from __future__ import annotations

import numpy as np

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme, Cell, FloatArray
from xbarlab.sim.circuit import Circuit
from xbarlab.sim.devices import FixedDevices, make_device_array
from xbarlab.sim.factory import make_circuit
from xbarlab.sim.iv import IVLaw, LinearIV, iv_law_of
from xbarlab.sim.solver import WireCircuit

G_FLOOR, G_CEIL = 1e-7, 1e-2  # S: the range estimates are kept in


def preset_iv(device: str) -> IVLaw:
    """The I-V law of device preset `device` on its read conductance (linear if it has none)."""
    one = make_device_array(device, (1, 1), np.random.default_rng(0), noise=False)
    law = iv_law_of(one)
    return law if law is not None else LinearIV()


class CircuitArrayModel:
    """Reads and pulse delivery of an array's circuit at estimated conductances (S)."""

    def __init__(self, shape: tuple[int, int], circuit: Circuit, iv: IVLaw,
                 v_read: float, pulse_scheme: BiasScheme = BiasScheme.HALF) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.circuit = circuit
        self.iv = iv
        self.v_read = float(v_read)
        self.pulse_scheme = BiasScheme(pulse_scheme)
        if isinstance(circuit, WireCircuit) and circuit.nonlinear:  # small-signal copy
            q = circuit.params
            self._linear: Circuit = WireCircuit(
                r_wire_row=q["r_wire_row"], r_wire_col=q["r_wire_col"], r_source=q["r_source"],
                r_sense=q["r_sense"], row_drive=circuit.row_drive, col_drive=circuit.col_drive,
                nonlinear=False)
        else:
            self._linear = circuit

    @classmethod
    def of_sim(cls, sim: SimConfig, v_read: float,
               pulse_scheme: BiasScheme = BiasScheme.HALF) -> CircuitArrayModel:
        """The model of `sim`'s circuit and device preset (its devices' state is not used)."""
        return cls((sim.rows, sim.cols), make_circuit(sim), preset_iv(sim.device), v_read,
                   pulse_scheme)

    def _devices(self, g: FloatArray) -> FixedDevices:
        g = np.asarray(g, dtype=np.float64)
        if g.shape != self.shape:
            raise ValueError(f"conductances have shape {g.shape}, the model is {self.shape}")
        return FixedDevices(g, self.iv)

    def read_map(self, g: FloatArray) -> FloatArray:
        """Grounded read conductance (I / V_read, S) of every cell at conductances `g`."""
        m, n = self.shape
        _, i_cols = self.circuit.sense(self._devices(g), np.eye(m) * self.v_read,
                                       np.zeros((m, n)))
        return np.asarray(i_cols / self.v_read, dtype=np.float64)

    def read_cell(self, g: FloatArray, cell: Cell) -> float:
        """Grounded read conductance (S) of `cell` at conductances `g`."""
        r, c = int(cell[0]), int(cell[1])
        rows, cols = line_biases(self.shape, (r, c), self.v_read, BiasScheme.GROUNDED)
        _, i_cols = self.circuit.sense(self._devices(g), rows[None], cols[None])
        return float(i_cols[0, c]) / self.v_read

    def de_embed(self, reads: FloatArray, guess: FloatArray, *, rtol: float = 1e-4,
                 max_iter: int = 12, history: int = 5) -> FloatArray:
        """Conductances (S) whose predicted read map matches `reads` (NaN: not measured; that
        cell keeps its `guess`), to `rtol` on every read or after `max_iter` model maps."""
        reads = np.asarray(reads, dtype=np.float64)
        ok = np.isfinite(reads) & (reads > 0)
        log_meas = np.log(np.where(ok, reads, 1.0))
        lo, hi = np.log(G_FLOOR), np.log(G_CEIL)
        x = np.clip(np.log(np.clip(np.asarray(guess, dtype=np.float64), G_FLOOR, G_CEIL)),
                    lo, hi).ravel()
        xs: list[FloatArray] = []
        rs: list[FloatArray] = []
        for _ in range(max_iter):
            pred = self.read_map(np.exp(x).reshape(self.shape))
            good = ok & (pred > 0)
            res = np.where(good, log_meas - np.log(np.where(good, pred, 1.0)), 0.0).ravel()
            if np.abs(res).max() <= rtol:
                break
            xs.append(x.copy())
            rs.append(res)
            del xs[:-history - 1], rs[:-history - 1]
            step = x + res
            if len(xs) > 1:  # Anderson mixing over the last `history` steps
                dx = np.diff(np.array(xs), axis=0).T
                dr = np.diff(np.array(rs), axis=0).T
                coef, *_ = np.linalg.lstsq(dr, res, rcond=None)
                step = x + res - (dx + dr) @ coef
            x = np.clip(step, lo, hi)
        return np.asarray(np.exp(x).reshape(self.shape), dtype=np.float64)

    def pulse_share(self, g: FloatArray, voltage: float, grid: int = 8) -> FloatArray:
        """Share of a `voltage` pulse each cell sees across its terminals under the pulse
        scheme, at conductances `g`: solved on an up-to-`grid` x `grid` lattice of cells,
        bilinear in between (line drops vary smoothly along the lines)."""
        m, n = self.shape
        rows = np.unique(np.linspace(0, m - 1, min(m, grid)).round().astype(int))
        cols = np.unique(np.linspace(0, n - 1, min(n, grid)).round().astype(int))
        cells = [(int(r), int(c)) for r in rows for c in cols]
        rv = np.empty((len(cells), m))
        cv = np.empty((len(cells), n))
        for k, cell in enumerate(cells):
            rv[k], cv[k] = line_biases(self.shape, cell, voltage, self.pulse_scheme)
        sol = self.circuit.solve(self._devices(g), rv, cv)
        share = np.array([sol.v_dev[k][cell] for k, cell in enumerate(cells)]) / voltage
        share = share.reshape(len(rows), len(cols))
        along_r = np.array([np.interp(np.arange(n), cols, share[i]) for i in range(len(rows))])
        full = np.array([np.interp(np.arange(m), rows, along_r[:, j]) for j in range(n)]).T
        return np.asarray(np.clip(full, 1e-3, None), dtype=np.float64)

    def mate_voltages(self, g: FloatArray, cell: Cell) -> tuple[FloatArray, FloatArray]:
        """Device voltages per volt of a pulse on `cell` (small-signal circuit at `g`): along
        its row (N,) and along its column (M,) (the cell itself included)."""
        r, c = int(cell[0]), int(cell[1])
        rows, cols = line_biases(self.shape, (r, c), 1.0, self.pulse_scheme)
        sol = self._linear.solve(self._devices(g), rows[None], cols[None])
        v = sol.v_dev[0]
        return np.array(v[r, :], dtype=np.float64), np.array(v[:, c], dtype=np.float64)
