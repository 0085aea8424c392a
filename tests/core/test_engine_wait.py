"""`Wait` in the engine: a clocked backend (the simulator) advances its clock, any other backend
(the bench) is waited on for real; both are logged; a bad wait is refused."""

from __future__ import annotations

import time

import pytest

from tests.fakes import RecordingCrossbar
from xbarlab.config import SimConfig
from xbarlab.documents import Document, Event, EventKind, RunStatus
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Plan, Wait, WaitResult
from xbarlab.sim.factory import build_sim_crossbar


def _waits(*seconds: float) -> Plan:
    clocks = []
    for s in seconds:
        r: WaitResult = yield Wait(s)
        clocks.append(r.clock)
    return clocks


def _logged(docs: list[Document]) -> list[dict]:
    return [dict(d.data or {}) for d in docs
            if isinstance(d, Event) and d.kind is EventKind.CHECKPOINT and d.message == "wait"]


def test_simulator_clock_advances_without_sleeping() -> None:
    docs: list[Document] = []
    xbar = build_sim_crossbar(SimConfig(rows=2, cols=2))
    t0 = time.monotonic()
    res = RunEngine(xbar, BenchLimits(), [docs.append]).run(_waits(3600.0, 86400.0),
                                                            protocol="w")
    assert time.monotonic() - t0 < 2.0
    assert res.ok and res.value == pytest.approx([3600.0, 90000.0])
    assert [d["seconds"] for d in _logged(docs)] == [3600.0, 86400.0]


def test_other_backends_really_wait() -> None:
    docs: list[Document] = []
    t0 = time.monotonic()
    res = RunEngine(RecordingCrossbar(), BenchLimits(), [docs.append]).run(
        _waits(0.05, 0.05), protocol="w")
    elapsed = time.monotonic() - t0
    assert res.ok and elapsed >= 0.1
    assert res.value[1] >= res.value[0] + 0.05 and res.value[1] <= elapsed + 0.01
    assert len(_logged(docs)) == 2


def test_negative_wait_is_refused() -> None:
    res = RunEngine(RecordingCrossbar(), BenchLimits()).run(_waits(-1.0), protocol="w")
    assert res.status is RunStatus.FAILED and "wait" in res.reason
