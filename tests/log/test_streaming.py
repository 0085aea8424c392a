"""Multi-cell operations log each cell as it is measured (engine `on_cell` hook -> writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.log.streaming import CellByCellCrossbar
from xbarlab.documents import RunStatus
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.reader import LogReader
from xbarlab.log.verify import verify
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Mvm, Plan, Pulse, Read
from xbarlab.protocols.read_map import read_map


def _mixed() -> Plan:
    yield Read(((0, 0),), 0.2, tag="verify")
    yield Pulse((0, 1), 1.2, 1e-6)
    yield from read_map((4, 4), 0.2)
    yield Mvm(np.array([[0.1, 0.0, 0.2, 0.0]]))
    yield Read(((3, 3), (1, 2)), 0.2, tag="verify")


def _run(path: Path, xbar: CellByCellCrossbar, plan: Plan, **kw: object) -> RunStatus:
    with HDF5Writer(path, block_rows=kw.pop("block_rows", 8), **kw) as writer:  # type: ignore[arg-type]
        return RunEngine(xbar, BenchLimits(), [writer]).run(plan, protocol="mix").status


def test_streamed_cells_belong_to_their_event(tmp_path: Path) -> None:
    path = tmp_path / "mix.h5"
    xbar = CellByCellCrossbar()
    assert _run(path, xbar, _mixed()) is RunStatus.SUCCESS
    with LogReader(path) as log:
        ev = log.events_array()
        m = log.measurements_array()
        kinds = [str(k) for k in log.events()["kind"]]
    assert kinds == ["read", "pulse", "read", "mvm", "read"]
    assert list(ev["meas_count"]) == [1, 1, 16, 8, 2]  # the MVM: 2 driven rows x 4 columns
    assert list(ev["meas_start"]) == [0, 1, 2, 18, 26]
    assert list(m["event"]) == [0, 1, *[2] * 16, *[3] * 8, 4, 4]
    g = xbar.inner.g
    read = m[2:18]
    np.testing.assert_allclose(read["conductance"], g[read["row"], read["col"]])
    mvm = m[18:26]
    np.testing.assert_array_equal(mvm["row"], [0] * 4 + [2] * 4)
    np.testing.assert_allclose(mvm["current"], g[mvm["row"], mvm["col"]] * mvm["voltage"])
    assert verify(path).exit_code == 0


def test_an_operation_that_fails_midway_keeps_its_measured_cells(tmp_path: Path) -> None:
    path = tmp_path / "fail.h5"
    xbar = CellByCellCrossbar(fail_after=7)
    assert _run(path, xbar, read_map((4, 4), 0.2), block_rows=4) is RunStatus.FAILED
    with LogReader(path) as log:
        ev = log.events()
        m = log.measurements_array()
    assert list(ev["kind"].astype(str)) == ["read", "fault"]
    assert ev["message"][0].startswith("interrupted after 7 cells: instrument timed out")
    assert ev["meas_count"][0] == 7 and len(m) == 7
    np.testing.assert_array_equal(m["col"], [0, 1, 2, 3, 0, 1, 2])
    assert verify(path).exit_code == 0


def test_streamed_cells_reach_the_file_during_the_operation(tmp_path: Path) -> None:
    """With flush_interval 0 each cell is in the file before the next one is measured."""
    path = tmp_path / "live.h5"
    seen: list[int] = []

    class Watching(CellByCellCrossbar):
        def _cell(self, cell: tuple[int, int], v: float, i: float) -> None:
            if self.measured:
                with LogReader(path) as log:
                    seen.append(log.counts()["measurements"])
            super()._cell(cell, v, i)

    assert _run(path, Watching(), read_map((4, 4), 0.2), block_rows=1024,
                flush_interval=0) is RunStatus.SUCCESS
    assert seen == list(range(1, 16))
