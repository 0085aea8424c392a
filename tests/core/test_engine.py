"""The run engine: safety check before the backend, documents, safe state on every exit."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from xbarlab import __version__
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import Document, Event, EventKind, RunStart, RunStatus, RunStop
from xbarlab.engine import RunEngine, RunFailed
from xbarlab.limits import BenchLimits
from xbarlab.messages import Checkpoint, Mvm, Plan, Pulse, Read


def _engine(xbar: RecordingCrossbar | None = None) -> tuple[RunEngine, list[Document]]:
    docs: list[Document] = []
    return RunEngine(xbar or RecordingCrossbar(), BenchLimits(), [docs.append]), docs


def test_run_documents_in_order_with_provenance() -> None:
    def plan() -> Plan:
        r = yield Read(((0, 0), (1, 2)), 0.2)
        yield Pulse((0, 0), 1.5, 1e-6)
        yield Mvm(np.array([0.1, 0.0, 0.0, 0.2]))
        yield Checkpoint("done", {"x": 1})
        return float(r.conductances[0])

    engine, docs = _engine()
    result = engine.run(plan(), protocol="demo", config={"a": 1}, seed=7)
    assert result.ok and result.value == pytest.approx(150e-6)
    start, *events, stop = docs
    assert isinstance(start, RunStart) and isinstance(stop, RunStop)
    assert start.protocol == "demo" and start.seed == 7 and start.config == {"a": 1}
    assert start.version == __version__ and start.backend["backend"] == "recording"
    assert start.limits["pulse_v_max"] == BenchLimits().pulse_v_max
    assert [e.kind for e in events if isinstance(e, Event)] == [
        EventKind.READ, EventKind.PULSE, EventKind.MVM, EventKind.CHECKPOINT,
    ]
    assert [e.seq for e in events if isinstance(e, Event)] == [1, 2, 3, 4]
    read = events[0]
    assert isinstance(read, Event)
    np.testing.assert_array_equal(read.cells, [[0, 0], [1, 2]])
    np.testing.assert_allclose(read.conductances, [150e-6, 150e-6])
    assert stop.status is RunStatus.SUCCESS and stop.n_events == 4


def test_limit_violation_is_refused_before_the_backend_and_logged() -> None:
    xbar = RecordingCrossbar()

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        yield Pulse((0, 0), 2.6, 1e-6)  # above the 2.5 V default SET limit
        yield Pulse((0, 1), 1.2, 1e-6)  # never reached

    engine, docs = _engine(xbar)
    result = engine.run(plan(), protocol="p")
    assert result.status is RunStatus.FAILED and "refused" in result.reason
    assert [c[0] for c in xbar.calls] == ["read"]
    refused = [d for d in docs if isinstance(d, Event) and d.kind is EventKind.REFUSED]
    assert len(refused) == 1 and "2.6" in refused[0].message
    assert xbar.safe_calls == 1
    with pytest.raises(RunFailed, match="refused"):
        result.raise_for_status()


def test_plan_may_handle_a_refusal_and_continue() -> None:
    xbar = RecordingCrossbar()

    def plan() -> Plan:
        try:
            yield Read(((0, 0),), 0.9)  # above the read limit
        except ValueError:
            yield Read(((0, 0),), 0.2)

    engine, _ = _engine(xbar)
    assert engine.run(plan(), protocol="p").ok
    assert len(xbar.calls) == 1 and xbar.calls[0][1][1] == 0.2


def test_backend_error_fails_the_run_with_a_fault_event_and_safe_state() -> None:
    xbar = RecordingCrossbar()
    xbar.fail_on = "pulse"

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        yield Pulse((0, 0), 1.2, 1e-6, BiasScheme.THIRD)

    engine, docs = _engine(xbar)
    result = engine.run(plan(), protocol="p")
    assert result.status is RunStatus.FAILED and "instrument error" in result.reason
    kinds = [d.kind for d in docs if isinstance(d, Event)]
    assert kinds == [EventKind.READ, EventKind.FAULT]
    assert xbar.safe_calls == 1
    assert isinstance(docs[-1], RunStop) and docs[-1].status is RunStatus.FAILED


def test_keyboard_interrupt_aborts_and_reaches_safe_state() -> None:
    xbar = RecordingCrossbar()

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        raise KeyboardInterrupt

    engine, docs = _engine(xbar)
    result = engine.run(plan(), protocol="p")
    assert result.status is RunStatus.ABORTED
    assert xbar.safe_calls == 1 and isinstance(docs[-1], RunStop)


def test_sigterm_aborts_and_reaches_safe_state() -> None:
    xbar = RecordingCrossbar()

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        yield Pulse((0, 0), 1.2, 1e-6)

    engine, _ = _engine(xbar)
    previous = signal.getsignal(signal.SIGTERM)
    result = engine.run(plan(), protocol="p")
    assert result.status is RunStatus.ABORTED and "SIGTERM" in result.reason
    assert [c[0] for c in xbar.calls] == ["read"] and xbar.safe_calls == 1
    assert signal.getsignal(signal.SIGTERM) is previous


def test_failing_subscriber_fails_the_run_rather_than_losing_data() -> None:
    xbar = RecordingCrossbar()

    def broken(doc: Document) -> None:
        if isinstance(doc, Event):
            raise OSError("disk full")

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        yield Pulse((0, 0), 1.2, 1e-6)

    result = RunEngine(xbar, BenchLimits(), [broken]).run(plan(), protocol="p")
    assert result.status is RunStatus.FAILED and "disk full" in result.reason
    assert [c[0] for c in xbar.calls] == ["read"] and xbar.safe_calls == 1
