"""`SimCrossbar`: the physics simulator behind the `Crossbar` interface.

Thin and stateful on top of two pure parts: a `DeviceArray` (device state and physics) and a
`Circuit` (line potentials -> device voltages and terminal currents). Replacing either one
(calibrated TiO2 devices, wire-resistance solver) changes nothing for protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xbarlab.biasing import line_biases
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    FloatArray,
    IntArray,
    MvmResult,
    PulseResult,
    ReadResult,
    all_cells,
    as_cells,
    check_cells,
)
from xbarlab.sim.circuit import Circuit, IdealCircuit
from xbarlab.sim.devices import DeviceArray


def _check_cells(idx: IntArray, shape: tuple[int, int]) -> None:
    """`check_cells`, with one cell checked without array operations."""
    if len(idx) == 1:
        r, c = idx[0].tolist()
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            return
    check_cells(idx, shape)


class SimCrossbar:
    """A simulated passive crossbar. Reads sense the selected column at 0 V (sneaks included)."""

    def __init__(
        self,
        devices: DeviceArray,
        circuit: Circuit | None = None,
        *,
        seed: int = 0,
        compliance: float = 1e-3,
        description: dict[str, Any] | None = None,
    ) -> None:
        self.devices = devices
        self.circuit: Circuit = circuit if circuit is not None else IdealCircuit()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.compliance = compliance
        self._extra = description or {}
        self.n_pulses = 0
        self.n_reads = 0
        self.clock = 0.0  # s of simulated time: pulse widths and waits
        self._bias_base: dict[tuple[float, BiasScheme], tuple[FloatArray, FloatArray]] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.devices.shape

    @property
    def g(self) -> FloatArray:
        """The true conductance state (S): what no bench can see directly."""
        return self.devices.g

    def _biases(self, r: int, c: int, voltage: float, scheme: BiasScheme
                ) -> tuple[FloatArray, FloatArray]:
        """`line_biases` for cell (r, c): copies of the unselected lines' potentials, kept
        per (voltage, scheme), with the selected row and column set (the same arrays)."""
        key = (voltage, scheme)
        base = self._bias_base.get(key)
        if base is None:
            if len(self._bias_base) >= 256:
                self._bias_base.clear()
            base = self._bias_base[key] = line_biases(self.shape, (0, 0), voltage, scheme,
                                                      unselected_only=True)
        row_v, col_v = base[0].copy(), base[1].copy()
        row_v[r] = voltage
        col_v[c] = 0.0
        return row_v, col_v

    def _bias_batch(
        self, cells: IntArray, voltage: float, scheme: BiasScheme
    ) -> tuple[FloatArray, FloatArray]:
        m, n = self.shape
        row_v = np.empty((len(cells), m))
        col_v = np.empty((len(cells), n))
        for b, (r, c) in enumerate(cells):
            row_v[b], col_v[b] = line_biases(self.shape, (int(r), int(c)), voltage, scheme)
        return row_v, col_v

    def read(
        self, cells: Sequence[Cell] | IntArray | None, v_read: float, scheme: BiasScheme
    ) -> ReadResult:
        if type(cells) is tuple and len(cells) == 1:  # a verify read: no array needed
            cell = cells[0]
            if type(cell) is tuple and len(cell) == 2 and type(cell[0]) is type(cell[1]) is int:
                r, c = cell
                if 0 <= r < self.shape[0] and 0 <= c < self.shape[1]:
                    return self._read_one(np.array([cell], dtype=np.int64), r, c, v_read,
                                          scheme)
        idx = all_cells(self.shape) if cells is None else as_cells(cells)
        _check_cells(idx, self.shape)
        if len(idx) == 1:
            r, c = idx[0].tolist()
            return self._read_one(idx, r, c, v_read, scheme)
        row_v, col_v = self._bias_batch(idx, v_read, scheme)
        _, i_cols = self.circuit.sense(self.devices, row_v, col_v)
        sensed = i_cols[np.arange(len(idx)), idx[:, 1]]
        sensed = self.devices.read_noise(sensed, self.rng)
        tripped = np.abs(sensed) > self.compliance
        sensed = np.where(tripped, np.sign(sensed) * self.compliance, sensed)
        self.n_reads += len(idx)
        return ReadResult(idx, float(v_read), sensed, tripped)

    def _read_one(self, idx: IntArray, r: int, c: int, v_read: float, scheme: BiasScheme
                  ) -> ReadResult:
        """`read` of one cell `idx` = [(r, c)] (the verify read of a write-verify): the same
        steps on scalars."""
        m, n = self.shape
        row_v, col_v = self._biases(r, c, v_read, scheme)
        column = getattr(self.circuit, "column", None)
        cur = column(self.devices, row_v, col_v, c) if column is not None else None
        if cur is None:
            _, i_cols = self.circuit.sense(self.devices, row_v.reshape(1, m),
                                           col_v.reshape(1, n))
            cur = float(i_cols[0, c])
        noise_one = getattr(self.devices, "read_noise_one", None)
        if noise_one is not None:
            cur = noise_one(cur, self.rng)
        else:
            cur = float(self.devices.read_noise(np.array([cur]), self.rng)[0])
        tripped = abs(cur) > self.compliance
        if tripped:
            cur = float(np.sign(cur) * self.compliance)
        self.n_reads += 1
        return ReadResult(idx, float(v_read), np.array([cur]), np.array([tripped]))

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        if type(cell) is tuple and len(cell) == 2 and type(cell[0]) is type(cell[1]) is int:
            r, c = cell  # the usual form: no array needed
            m, n = self.shape
            if not (0 <= r < m and 0 <= c < n):
                check_cells(as_cells([cell]), self.shape)  # raises, naming the cell
        else:
            idx = as_cells([cell])
            check_cells(idx, self.shape)
            r, c = int(idx[0, 0]), int(idx[0, 1])
        row_v, col_v = self._biases(r, c, voltage, scheme)
        column = getattr(self.circuit, "column", None)
        v_dev = np.empty(self.shape)
        cur = column(self.devices, row_v, col_v, c, v_dev) if column is not None else None
        if cur is None:
            sol = self.circuit.solve(self.devices, row_v[None], col_v[None])
            cur, v_dev = float(sol.i_cols[0, c]), sol.v_dev[0]
        current = cur
        self.devices.apply_voltage(v_dev, width, self.rng)
        self.n_pulses += 1
        self.clock += float(width)
        tripped = abs(current) > self.compliance
        if tripped:  # the instrument reports its limit, as a read does (and as a bench does)
            current = float(np.sign(current) * self.compliance)
        return PulseResult((r, c), float(voltage), float(width), current, tripped)

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != self.shape[0]:
            raise ValueError(f"MVM input has {v.shape[1]} rows, the array has {self.shape[0]}")
        sol = self.circuit.solve(self.devices, v, np.zeros((v.shape[0], self.shape[1])))
        out = self.devices.read_noise(sol.i_cols, self.rng)
        tripped = np.abs(out) > self.compliance
        return MvmResult(v, np.where(tripped, np.sign(out) * self.compliance, out), tripped)

    def wait(self, seconds: float) -> float:
        """Advance simulated time by `seconds` (no sleeping): devices relax and drift."""
        advance = getattr(self.devices, "advance", None)
        if callable(advance):
            advance(float(seconds))
        self.clock += float(seconds)
        return self.clock

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "sim",
            "shape": list(self.shape),
            "seed": self.seed,
            "compliance": self.compliance,
            "devices": self.devices.describe(),
            "circuit": self.circuit.describe(),
            **self._extra,
        }

    def safe_state(self) -> None:
        """Nothing is ever left energised in the simulator."""
