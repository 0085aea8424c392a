"""End to end: write-verify of a 16x16 pattern on the simulator, logged, reopened, checked.

The reference is what actually reached the backend: a proxy records every call and result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.config import PatternTarget, SimConfig, WriteVerifyParams
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    Crossbar,
    FloatArray,
    IntArray,
    MvmResult,
    PulseResult,
    ReadResult,
)
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.reader import LogReader
from xbarlab.log.writer import HDF5Writer
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.write_verify import ArrayOutcome, write_verify_array
from xbarlab.sim.factory import build_sim_crossbar


class CallRecorder:
    """Forwards to a real backend and records every operation with its result."""

    def __init__(self, inner: Crossbar) -> None:
        self.inner = inner
        self.calls: list[tuple[str, Any]] = []

    @property
    def shape(self) -> tuple[int, int]:
        return self.inner.shape

    def read(self, cells: Sequence[Cell] | IntArray | None, v_read: float,
             scheme: BiasScheme) -> ReadResult:
        r = self.inner.read(cells, v_read, scheme)
        self.calls.append(("read", r))
        return r

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        p = self.inner.pulse(cell, voltage, width, scheme)
        self.calls.append(("pulse", p))
        return p

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        return self.inner.mvm(v_rows)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def safe_state(self) -> None:
        self.inner.safe_state()


def test_write_verify_16x16_pattern_is_fully_logged(tmp_path: Path) -> None:
    backend = CallRecorder(build_sim_crossbar(SimConfig(rows=16, cols=16, seed=2)))
    params = WriteVerifyParams(tolerance=0.02)
    targets = target_map(PatternTarget(pattern="letter_x"), (16, 16))
    path = tmp_path / "demo.h5"
    with HDF5Writer(path) as writer:
        result = RunEngine(backend, BenchLimits(), [writer]).run(
            write_verify_array(targets, params), protocol="write_verify_array", seed=2)
    assert result.ok, result.reason
    outcome: ArrayOutcome = result.value

    # what the backend did, one row per cell measurement, in order
    kinds, cells, volts, widths, currents = [], [], [], [], []
    for name, res in backend.calls:
        if name == "pulse":
            kinds.append("pulse")
            cells.append(res.cell)
            volts.append(res.voltage)
            widths.append(res.width)
            currents.append(res.current)
        else:
            for (r, c), i in zip(res.cells.tolist(), res.currents, strict=True):
                kinds.append("read")
                cells.append((r, c))
                volts.append(res.v_read)
                widths.append(np.nan)
                currents.append(i)
    n_pulses = kinds.count("pulse")
    assert n_pulses == outcome.n_pulses > 0

    with LogReader(path) as log:
        assert log.status in ("programmed", "partial") and log.info.shape == (16, 16)
        m = log.measurements()
        assert list(m["kind"]) == kinds
        assert list(zip(m["row"], m["col"], strict=True)) == cells
        np.testing.assert_array_equal(m["voltage"], volts)
        np.testing.assert_array_equal(m["width"], widths)
        np.testing.assert_array_equal(m["current"], currents)
        assert (np.diff(m["seq"]) >= 0).all() and (np.diff(m["time"]) >= 0).all()
        assert set(m.loc[m["kind"] == "pulse", "step"]) <= {"set", "reset"}

        # progress checkpoints: one per cell, each naming its cell and whether it converged
        notes = log.annotations()
        notes = notes[notes["kind"] == "checkpoint"].reset_index(drop=True)  # not compliance
        assert len(notes) == 256 and set(notes["message"]) == {"cell_done"}
        logged = {tuple(d["cell"]): d for d in notes["data"]}
        for o in outcome.cells:
            assert logged[o.cell]["converged"] == o.converged
            assert logged[o.cell]["n_pulses"] == o.n_pulses

        # final conductances: the log's last read of every cell is the protocol's final map
        final = log.final_conductances()
        np.testing.assert_array_equal(final, outcome.final)
        err = np.abs(final - targets) / targets
        assert int((err <= params.tolerance).sum()) == outcome.in_tolerance_final
        # each cell's last verify read in the log is the value write-verify stopped on:
        # within tolerance for converged cells, reported with a reason for the others
        verify = m[m["step"] == "verify"].groupby(["row", "col"])["conductance"].last()
        for o in outcome.cells:
            g = verify[o.cell]
            assert g == o.g_final
            assert (abs(g - o.target) <= params.tolerance * o.target) == o.converged or (
                not o.converged and o.reason)
