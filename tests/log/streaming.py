"""A backend that measures reads and MVMs one cell at a time and reports each cell through
its ``on_cell`` hook, as `BenchCrossbar` does (optionally slowly, or failing midway)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tests.fakes import RecordingCrossbar
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    CellSink,
    FloatArray,
    IntArray,
    MvmResult,
    PulseResult,
    ReadResult,
    all_cells,
    as_cells,
)


class CellByCellCrossbar:
    """Ideal linear crossbar (conductances `g`) measured cell by cell."""

    def __init__(self, shape: tuple[int, int] = (4, 4), delay: float = 0.0,
                 fail_after: int | None = None) -> None:
        self.inner = RecordingCrossbar(shape)
        self.inner.g = 100e-6 + 10e-6 * np.arange(shape[0] * shape[1]).reshape(shape)
        self.delay = delay
        self.fail_after = fail_after
        self.on_cell: CellSink | None = None
        self.measured = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    def _cell(self, cell: Cell, v: float, i: float) -> None:
        if self.fail_after is not None and self.measured >= self.fail_after:
            raise OSError(f"instrument timed out after {self.measured} cells")
        if self.delay:
            time.sleep(self.delay)
        self.measured += 1
        if self.on_cell is not None:
            self.on_cell(cell, v, i, False)

    def read(self, cells: Sequence[Cell] | IntArray | None, v_read: float,
             scheme: BiasScheme) -> ReadResult:
        idx = all_cells(self.shape) if cells is None else as_cells(cells)
        currents = self.inner.g[idx[:, 0], idx[:, 1]] * v_read
        for (r, c), i in zip(idx.tolist(), currents.tolist(), strict=True):
            self._cell((r, c), v_read, i)
        return ReadResult(idx, v_read, currents, np.zeros(len(idx), dtype=bool))

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        out = np.zeros((len(v), self.shape[1]))
        for b, vec in enumerate(v):
            for r, x in enumerate(vec.tolist()):
                if x == 0.0:
                    continue
                for c in range(self.shape[1]):
                    share = float(self.inner.g[r, c] * x)
                    out[b, c] += share
                    self._cell((r, c), x, share)
        return MvmResult(v, out, np.zeros(out.shape, dtype=bool))

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        return self.inner.pulse(cell, voltage, width, scheme)

    def describe(self) -> dict[str, Any]:
        return {"backend": "cell-by-cell fake", "shape": list(self.shape)}

    def safe_state(self) -> None:
        self.inner.safe_state()
