"""Test doubles shared by the tests: a scripted crossbar that records every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

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
)


class RecordingCrossbar:
    """Ideal linear crossbar whose pulses move G by a fixed fraction per volt over 1 V.

    Records every call in `calls` and whether `safe_state` ran, so tests can assert what
    reached the backend.
    """

    def __init__(self, shape: tuple[int, int] = (4, 4), g0: float = 150e-6) -> None:
        self._shape = shape
        self.g = np.full(shape, g0)
        self.calls: list[tuple[str, Any]] = []
        self.safe_calls = 0
        self.fail_on: str | None = None
        self.stuck = False  # pulses change nothing
        self.disturb = 0.0  # relative drop of the selected row's other cells per pulse

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def read(
        self, cells: Sequence[Cell] | IntArray | None, v_read: float, scheme: BiasScheme
    ) -> ReadResult:
        if self.fail_on == "read":
            raise OSError("instrument timed out")
        idx = all_cells(self._shape) if cells is None else as_cells(cells)
        self.calls.append(("read", (idx.copy(), v_read, scheme)))
        i = self.g[idx[:, 0], idx[:, 1]] * v_read
        return ReadResult(idx, v_read, i, np.zeros(len(idx), dtype=bool))

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        if self.fail_on == "pulse":
            raise OSError("instrument error -113")
        self.calls.append(("pulse", (cell, voltage, width, scheme)))
        over = 0.0 if self.stuck else max(abs(voltage) - 1.0, 0.0)
        if self.disturb:
            row = self.g[cell[0]].copy()
            self.g[cell[0]] *= 1.0 - self.disturb
            self.g[cell[0], cell[1]] = row[cell[1]]
        self.g[cell] *= 1.0 + np.sign(voltage) * 0.5 * over
        return PulseResult(cell, voltage, width)

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(v_rows)
        self.calls.append(("mvm", v.copy()))
        return MvmResult(v, v @ self.g)

    def describe(self) -> dict[str, Any]:
        return {"backend": "recording", "shape": list(self._shape)}

    def safe_state(self) -> None:
        self.safe_calls += 1
