"""The run engine: safety check before the backend, documents, safe state on every exit."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from xbarlab import __version__
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import Document, Event, EventKind, RunStart, RunStatus, RunStop
from xbarlab.engine import RunEngine, RunFailed
from xbarlab.limits import BenchLimits, LimitViolation
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


# -- abort, second signal, compliance, backend refusals (issue 11) ------------------------------
class _WrappingCrossbar(RecordingCrossbar):
    """A backend whose I/O layer rewraps every Exception, as a transport does."""

    def __init__(self) -> None:
        super().__init__()
        self.signal_in_read: signal.Signals | None = None
        self.signals_in_safe: list[signal.Signals] = []

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        try:
            if self.signal_in_read is not None:
                os.kill(os.getpid(), self.signal_in_read)
            return super().read(cells, v_read, scheme)
        except Exception as exc:  # what VisaTransport does with pyvisa's errors
            raise OSError(f"TransportError: {exc}") from exc

    def safe_state(self) -> None:
        for sig in self.signals_in_safe:
            os.kill(os.getpid(), sig)  # a second Ctrl-C / SIGTERM while cleaning up
        super().safe_state()


def _reads() -> Plan:
    for _ in range(3):
        yield Read(((0, 0),), 0.2)


def test_sigterm_inside_a_rewrapping_transport_is_an_abort() -> None:
    xbar = _WrappingCrossbar()
    xbar.signal_in_read = signal.SIGTERM
    engine, docs = _engine(xbar)
    result = engine.run(_reads(), protocol="p")
    assert result.status is RunStatus.ABORTED and result.reason == "SIGTERM received"
    assert not [e for e in docs if isinstance(e, Event) and e.kind is EventKind.FAULT]
    assert xbar.safe_calls == 1


def test_second_signal_during_cleanup_is_ignored_and_said(
        capfd: pytest.CaptureFixture[str]) -> None:
    xbar = _WrappingCrossbar()
    xbar.signal_in_read = signal.SIGINT
    xbar.signals_in_safe = [signal.SIGTERM, signal.SIGINT]
    engine, docs = _engine(xbar)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    result = engine.run(_reads(), protocol="p")
    assert result.status is RunStatus.ABORTED and "Ctrl-C" in result.reason
    assert xbar.safe_calls == 1 and isinstance(docs[-1], RunStop)
    err = capfd.readouterr().err
    assert "SIGTERM ignored" in err and "SIGINT ignored" in err and "safe state" in err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous


class _SwallowingCrossbar(RecordingCrossbar):
    """The Ctrl-C of the second read arrives while a destructor runs: Python prints its
    KeyboardInterrupt ("Exception ignored in ...") and goes on."""

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        if len(self.calls) == 1:
            class Dying:
                def __del__(self) -> None:
                    signal.raise_signal(signal.SIGINT)  # handled here, inside __del__
                    for _ in range(100):  # the handler runs at the next bytecode check
                        pass

            Dying()
        return super().read(cells, v_read, scheme)


def test_a_ctrl_c_a_destructor_swallowed_still_stops_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def reads() -> Plan:
        for _ in range(10):
            yield Read(((0, 0),), 0.2)

    swallowed: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: swallowed.append(u.exc_type))
    xbar = _SwallowingCrossbar()
    engine, _ = _engine(xbar)
    result = engine.run(reads(), protocol="p")
    assert swallowed == []  # Python would have printed it (a traceback): kept quiet
    assert result.status is RunStatus.ABORTED and "Ctrl-C" in result.reason
    assert len(xbar.calls) == 2 and xbar.safe_calls == 1  # stopped before the third read
    result = engine.run(reads(), protocol="p")  # nothing left over for the next run
    assert result.ok and len(xbar.calls) == 12


class _BrokenByCtrlC(_SwallowingCrossbar):
    """As numba's compiler: the Ctrl-C lands in a callback (swallowed) and the work it cut
    short then fails with an error of its own."""

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        r = super().read(cells, v_read, scheme)
        if len(self.calls) == 2:
            raise RuntimeError("no compiled object yet")
        return r


def test_an_error_a_swallowed_ctrl_c_caused_is_an_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    printed: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: printed.append(u.exc_type))
    xbar = _BrokenByCtrlC()
    engine, docs = _engine(xbar)
    result = engine.run((Read(((0, 0),), 0.2) for _ in range(5)), protocol="p")
    assert result.status is RunStatus.ABORTED and result.reason == "interrupted (Ctrl-C)"
    assert not [d for d in docs if isinstance(d, Event) and d.kind is EventKind.FAULT]
    assert xbar.safe_calls == 1 and printed == []
    assert sys.unraisablehook is not None and engine.run(
        (Read(((0, 0),), 0.2) for _ in range(2)), protocol="p").ok


def test_signals_raise_again_after_the_run() -> None:
    engine, _ = _engine(_WrappingCrossbar())
    engine.run(_reads(), protocol="p")
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            pass


class _ComplianceCrossbar(RecordingCrossbar):
    """Reads of cell (0, 0) and pulses above 1.5 V hit the compliance; the instrument's clamped
    current comes back negative, as the 2600B in the issue reported it."""

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        r = super().read(cells, v_read, scheme)
        hit = (r.cells[:, 0] == 0) & (r.cells[:, 1] == 0)
        return type(r)(r.cells, r.v_read, np.where(hit, -1e-3, r.currents), hit)

    def pulse(self, cell, voltage, width, scheme):  # type: ignore[no-untyped-def]
        p = super().pulse(cell, voltage, width, scheme)
        return type(p)(p.cell, p.voltage, p.width, 1e-3, abs(voltage) > 1.5)


def test_a_read_in_compliance_is_no_conductance_and_is_logged() -> None:
    seen = []

    def plan() -> Plan:
        r = yield Read(((0, 0), (1, 1)), 0.2)
        seen.append(r.conductances)
        yield Pulse((1, 1), 2.0, 1e-6)

    engine, docs = _engine(_ComplianceCrossbar())
    assert engine.run(plan(), protocol="p").ok
    assert np.isnan(seen[0][0]) and seen[0][1] == pytest.approx(150e-6)
    events = [d for d in docs if isinstance(d, Event)]
    # the flags are the record (no separate compliance event: the log's notes rebuild it,
    # tests/log/test_compliance_notes.py)
    assert [e.kind for e in events] == [EventKind.READ, EventKind.PULSE]
    assert np.isnan(events[0].conductances[0]) and events[0].currents[0] == -1e-3
    assert events[0].compliance.tolist() == [True, False]
    assert events[1].compliance.tolist() == [True]
    assert np.isnan(events[1].conductances[0])  # a pulse in compliance gives no G either


class _BackendLimits(RecordingCrossbar):
    def pulse(self, cell, voltage, width, scheme):  # type: ignore[no-untyped-def]
        if voltage > 2.0:
            raise LimitViolation(f"pulse of {voltage:+} V is beyond the bench config's limits")
        return super().pulse(cell, voltage, width, scheme)


def test_a_refusal_by_the_backend_is_a_refused_event_thrown_into_the_plan() -> None:
    caught = []

    def plan() -> Plan:
        try:
            yield Pulse((0, 0), 2.2, 1e-6)
        except LimitViolation as exc:
            caught.append(str(exc))
        yield Pulse((0, 0), 1.2, 1e-6)

    xbar = _BackendLimits()
    engine, docs = _engine(xbar)
    assert engine.run(plan(), protocol="p").ok
    events = [d for d in docs if isinstance(d, Event)]
    assert [e.kind for e in events] == [EventKind.REFUSED, EventKind.PULSE]
    assert "bench config" in events[0].message and caught == [events[0].message]
    assert [c[1][1] for c in xbar.calls] == [1.2]


def test_refusal_messages_keep_the_digits_that_show_the_cause() -> None:
    with pytest.raises(LimitViolation, match=r"\+2\.500000000000001 V .* \[-3\.0, \+2\.5\] V"):
        BenchLimits().check(Pulse((0, 0), 2.500000000000001, 1e-6))


def test_an_mvm_with_clamped_outputs_adds_a_compliance_event() -> None:
    class Clamped(RecordingCrossbar):
        def mvm(self, v_rows):  # type: ignore[no-untyped-def]
            m = super().mvm(v_rows)
            comp = np.zeros(m.currents.shape, dtype=bool)
            comp[0, 1] = True
            return type(m)(m.v_rows, m.currents, comp)

    def plan() -> Plan:
        yield Mvm(np.array([0.1, 0.0, 0.0, 0.2]))

    engine, docs = _engine(Clamped())
    assert engine.run(plan(), protocol="p").ok
    events = [d for d in docs if isinstance(d, Event)]
    assert [e.kind for e in events] == [EventKind.MVM, EventKind.COMPLIANCE]
    assert events[1].data == {"outputs": 1, "compliance_A": BenchLimits().compliance}


class _CutShort:
    """As llvmlite's `ObjectRef`: a constructor the Ctrl-C cut short leaves an object whose
    destructor fails (an AttributeError, not the KeyboardInterrupt) when it is collected."""

    def __del__(self) -> None:
        raise AttributeError("'PassBuilder' object has no attribute '_as_parameter_'")


def test_a_destructor_failing_after_a_ctrl_c_prints_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from xbarlab import interrupts

    printed: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: printed.append(u.exc_type))
    monkeypatch.setattr(interrupts._State, "raised", 0)
    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupts.startup_guard()  # what the console script installs first
        _CutShort()
        assert printed == [AttributeError]  # no signal yet: Python's own report stands
        with pytest.raises(KeyboardInterrupt), interrupts.interruptible(RuntimeError):
            signal.raise_signal(signal.SIGINT)
            for _ in range(100):
                pass
        interrupts.taken()
        _CutShort()  # after the block, collected on the way out
        assert printed == [AttributeError]
        with interrupts.interruptible(RuntimeError):  # a new run: reports are back
            _CutShort()
        assert printed == [AttributeError, AttributeError]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_an_event_is_logged_leaves_a_whole_record() -> None:
    """A Ctrl-C that lands while a subscriber writes an event is raised once every subscriber
    has it: the run stop counts exactly the events the log holds (a closed terminal once cut
    an event in half, and `log verify` called the log damaged: "the run stop counts 3200
    events, /events holds 3199")."""
    first: list[Document] = []
    second: list[Document] = []

    def interrupted_log(doc: Document) -> None:
        if isinstance(doc, Event) and doc.seq == 3:
            signal.raise_signal(signal.SIGINT)  # lands here, halfway through the record
            for _ in range(100):
                pass
        first.append(doc)

    xbar = RecordingCrossbar()
    result = RunEngine(xbar, BenchLimits(), [interrupted_log, second.append]).run(
        (Read(((0, 0),), 0.2) for _ in range(10)), protocol="p")
    assert result.status is RunStatus.ABORTED and result.reason == "interrupted (Ctrl-C)"
    for docs in (first, second):
        stop = docs[-1]
        assert isinstance(stop, RunStop)
        events = [d for d in docs if isinstance(d, Event)]
        assert stop.n_events == len(events) == events[-1].seq
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(xbar.calls) == 3  # stopped before the fourth read


def test_a_suspended_host_is_logged_and_its_time_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bench host suspended between two operations (a laptop lid closed): the bench held its
    state meanwhile. The run logs it, and a wait counts the suspended time (a retention
    measurement's clock is the devices' time, not the process's)."""
    from xbarlab import engine as engine_module
    from xbarlab.messages import Wait

    asleep = {"s": 100.0, "clock": 1000.0}
    monkeypatch.setattr(engine_module, "suspended", lambda: asleep["s"])
    monkeypatch.setattr(engine_module, "host_clock", lambda: asleep["clock"])

    class Sleepy(RecordingCrossbar):  # a bench (no clock of its own)
        def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
            if len(self.calls) == 1:
                asleep["s"] += 1800.0  # the lid closed for half an hour after the 2nd read
                asleep["clock"] += 1800.0
            return super().read(cells, v_read, scheme)

    def plan() -> Plan:
        yield Read(((0, 0),), 0.2)
        yield Read(((0, 0),), 0.2)
        waited = yield Wait(0.0)
        assert waited.clock == pytest.approx(1800.0)  # the suspend counts
        yield Read(((0, 0),), 0.2)

    xbar = Sleepy()
    engine, docs = _engine(xbar)
    assert engine.run(plan(), protocol="p").ok
    noted = [d for d in docs if isinstance(d, Event) and d.step == "suspend"]
    assert len(noted) == 1 and "suspended for 1800.0 s" in noted[0].message
    kinds = [(d.kind, d.step) for d in docs if isinstance(d, Event)]
    assert kinds.index((EventKind.CHECKPOINT, "suspend")) == 2  # before the op after it


def test_a_ctrl_c_while_a_cell_is_streamed_stops_the_operation_after_that_cell() -> None:
    """A Ctrl-C that lands while a measured cell is handed to the log waits for that cell to
    be whole, then stops the operation at once, not after the rest of a long read map."""
    from tests.log.streaming import CellByCellCrossbar

    class Log:
        def __init__(self) -> None:
            self.docs: list[Document] = []
            self.cells: list[object] = []

        def __call__(self, doc: Document) -> None:
            self.docs.append(doc)

        def partial(self, cell: object) -> None:
            if len(self.cells) == 2:
                signal.raise_signal(signal.SIGINT)  # lands while the third cell is taken
                for _ in range(100):
                    pass
            self.cells.append(cell)

    log = Log()
    xbar = CellByCellCrossbar((4, 4))
    result = RunEngine(xbar, BenchLimits(), [log]).run(
        (Read(None, 0.2) for _ in range(1)), protocol="p")
    assert result.status is RunStatus.ABORTED and result.reason == "interrupted (Ctrl-C)"
    assert len(log.cells) == 3 and xbar.measured == 3  # not the 16 of the whole map
    events = [d for d in log.docs if isinstance(d, Event)]
    assert "interrupted after 3 cells" in (events[-1].message or "")
