"""Several arrays of one shape seen as one `Crossbar`: what a network larger than one array
is programmed on (each array its own chip: its own devices and wires, no coupling between them).

Array a holds bank rows [a M, (a + 1) M). Reads and pulses go to the array of their cell (the
other arrays are untouched: separate chips); an MVM drives every array whose rows carry a
non-zero voltage and returns the column currents summed over them (drive one array at a time
to read its own columns; `xbarlab.network.inference` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    Crossbar,
    FloatArray,
    IntArray,
    MvmResult,
    PulseResult,
    ReadResult,
    all_cells,
    as_cells,
    check_cells,
)


class ArrayBank:
    """Arrays of equal shape stacked by rows into one `Crossbar`."""

    def __init__(self, arrays: Sequence[Crossbar]) -> None:
        if not arrays:
            raise ValueError("a bank needs at least one array")
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"the arrays of a bank must share one shape, got {sorted(shapes)}")
        self.arrays = list(arrays)
        self.array_shape: tuple[int, int] = tuple(arrays[0].shape)  # type: ignore[assignment]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.arrays) * self.array_shape[0], self.array_shape[1])

    def _split(self, cell: Cell) -> tuple[int, Cell]:
        m = self.array_shape[0]
        return int(cell[0]) // m, (int(cell[0]) % m, int(cell[1]))

    def read(self, cells: Sequence[Cell] | IntArray | None, v_read: float,
             scheme: BiasScheme) -> ReadResult:
        idx = all_cells(self.shape) if cells is None else as_cells(cells)
        check_cells(idx, self.shape)
        m = self.array_shape[0]
        which = idx[:, 0] // m
        currents = np.empty(len(idx))
        comp = np.zeros(len(idx), dtype=bool)
        for a in np.unique(which):
            sel = np.flatnonzero(which == a)
            local = np.stack([idx[sel, 0] % m, idx[sel, 1]], axis=1)
            r = self.arrays[int(a)].read(local, v_read, scheme)
            currents[sel] = r.currents
            comp[sel] = np.asarray(r.compliance, dtype=bool)
        return ReadResult(idx, float(v_read), currents, comp)

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        check_cells(as_cells([cell]), self.shape)
        a, local = self._split(cell)
        p = self.arrays[a].pulse(local, voltage, width, scheme)
        return PulseResult((int(cell[0]), int(cell[1])), p.voltage, p.width, p.current,
                           p.compliance)

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != self.shape[0]:
            raise ValueError(f"MVM input has {v.shape[1]} rows, the bank has {self.shape[0]}")
        m, n = self.array_shape
        out = np.zeros((v.shape[0], n))
        comp = np.zeros((v.shape[0], n), dtype=bool)
        for a, arr in enumerate(self.arrays):
            part = v[:, a * m:(a + 1) * m]
            if not part.any():
                continue
            r = arr.mvm(part)
            out += r.currents
            if np.size(r.compliance):
                comp |= np.asarray(r.compliance, dtype=bool).reshape(comp.shape)
        return MvmResult(v, out, comp)

    def wait(self, seconds: float) -> float:
        clock = 0.0
        for arr in self.arrays:
            wait = getattr(arr, "wait", None)
            clock = float(wait(seconds)) if callable(wait) else clock
        return clock

    def set_g(self, g: FloatArray, mask: np.ndarray) -> int:
        """Simulated arrays only: set the healthy devices of `mask` (bank map) to `g`; returns
        how many cells were set (0 on arrays that cannot be set: a bench)."""
        m = self.array_shape[0]
        n_set = 0
        for a, arr in enumerate(self.arrays):
            setter = getattr(getattr(arr, "devices", None), "set_g", None)
            sub = np.asarray(mask[a * m:(a + 1) * m], dtype=bool)
            if callable(setter) and sub.any():
                setter(np.where(sub, g[a * m:(a + 1) * m], 1.0), sub)
                n_set += int(sub.sum())
        return n_set

    def describe(self) -> dict[str, Any]:
        return {"backend": "bank", "shape": list(self.shape),
                "array_shape": list(self.array_shape),
                "arrays": [a.describe() for a in self.arrays]}

    def safe_state(self) -> None:
        errors = []
        for arr in self.arrays:
            try:
                arr.safe_state()
            except Exception as exc:  # try every array, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        for arr in self.arrays:
            close = getattr(arr, "close", None)
            close() if callable(close) else arr.safe_state()
