"""The run engine: executes a plan's messages on a backend, safety first, documents out.

For every message a plan yields, the engine
1. checks it against the bench limits (a refusal is logged and thrown into the plan: nothing is
   applied),
2. executes it on the `Crossbar` backend,
3. emits an `Event` to every subscriber, then sends the result back into the plan.

A run starts with a `RunStart` (config, seed, package version, git revision, backend
description, limits) and always ends with a `RunStop` (success, failed or aborted, with the
reason; a plan value with a ``verdict()`` method, such as a write-verify `ArrayOutcome`, turns
a success into programmed, partial or failed: see `judge`) after the backend has been put
in its safe state, whatever happened: an exception, a refused operation, Ctrl-C or SIGTERM.
Once that cleanup begins, a second Ctrl-C or SIGTERM is ignored (said so on stderr) until the
safe state and the run stop are done (`xbarlab.interrupts`). A backend's safe state that
failed after a fault is not tried again.

Compliance is an outcome, not a number: a read or pulse that hit the current compliance is
logged with its cells' compliance flags set (a read's conductance NaN); the plan decides what
to do. (Earlier engines also emitted a separate ``compliance`` event after it: a V/2 pulse
on a large array hits the compliance every time, and that event cost as much to log as the
pulse. `LogReader.annotations` rebuilds the note from the flags, `xbarlab.log.notes`.) An
MVM with clamped outputs is followed by a ``compliance`` event.
A refusal by the backend's own limits is logged as a ``refused`` event and thrown into the plan
like the engine's own refusals. Backends that report notices (`ReportsNotices`: the bench) get
their reopened links and their confirmed safe state logged as events.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from xbarlab import __version__
from xbarlab.cells import CellMeasurement
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    Clocked,
    Crossbar,
    FloatArray,
    MvmResult,
    PulseResult,
    ReadResult,
    ReportsNotices,
    SafeStateFailure,
)
from xbarlab.documents import Document, Event, EventKind, RunStart, RunStatus, RunStop, Subscriber
from xbarlab.interrupts import (
    begin_cleanup,
    hold_signals,
    interruptible,
    no_suspend,
    raise_swallowed,
    release_signals,
    signal_reason,
    swallowed,
    taken,
)
from xbarlab.limits import BenchLimits, LimitViolation
from xbarlab.messages import Checkpoint, Message, Mvm, Plan, Pulse, Read, Result, Wait, WaitResult


class RunAborted(BaseException):
    """The run was stopped from outside (SIGTERM). A BaseException, like KeyboardInterrupt, so
    no ``except Exception`` on the way (a transport wrapping its errors) can turn it into a
    failure."""


class RunFailed(RuntimeError):
    """Raised by `RunResult.raise_for_status` for a run that did not succeed."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended and what the plan returned."""

    run_id: str
    status: RunStatus
    reason: str
    value: Any
    n_events: int

    @property
    def ok(self) -> bool:
        """The run went to its end (success, programmed or partial): no fault, no abort."""
        return self.status in (RunStatus.SUCCESS, RunStatus.PROGRAMMED, RunStatus.PARTIAL)

    @property
    def done(self) -> bool:
        """The run did its whole job (success, or programmed: every cell in tolerance)."""
        return self.status in (RunStatus.SUCCESS, RunStatus.PROGRAMMED)

    def raise_for_status(self) -> RunResult:
        """Return self if the run went to its end (`ok`), else raise `RunFailed`."""
        if not self.ok:
            raise RunFailed(f"run {self.run_id} {self.status.value}: {self.reason}")
        return self


@functools.cache
def git_revision() -> str | None:
    """The git revision of the source tree xbarlab runs from, if it is a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def judge(value: Any) -> tuple[RunStatus, str] | None:
    """The verdict of a plan's return value on its own job, if it gives one.

    A value with a ``verdict()`` method returning ``(status, reason)`` (status one of
    "programmed", "partial", "failed", "success") decides how a run that went to its end is
    recorded; any other value gives no verdict (the run stays a success)."""
    verdict = getattr(value, "verdict", None)
    if not callable(verdict):
        return None
    status, reason = verdict()
    return RunStatus(status), str(reason)


class RunEngine:
    """Runs plans on one backend under one set of bench limits."""

    def __init__(
        self,
        backend: Crossbar,
        limits: BenchLimits,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.subscribers: list[Subscriber] = list(subscribers)
        self._seq = 0
        self._t0 = host_clock()
        self._asleep = 0.0  # s the host had been suspended at the last check (`_woken`)
        self._protocol = ""
        self._safe_failed = ""
        self._notice_backend: object = None  # the backend `_reports` was answered for
        self._reports_notices = False
        self._hook_backend: object = None  # the backend `_streams` was answered for
        self._has_hook = False

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)

    def _emit(self, doc: Document) -> None:
        hold_signals()  # every subscriber gets the whole document, or (an error) the run ends
        try:
            for sub in self.subscribers:
                sub(doc)
        finally:
            release_signals()

    def _send(self, doc: Document) -> None:
        """`_emit` inside a `hold_signals` block of the caller's."""
        for sub in self.subscribers:
            sub(doc)

    def run(
        self,
        plan: Plan,
        *,
        protocol: str,
        config: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> RunResult:
        """Execute `plan` to the end; never leaves the backend outside its safe state."""
        run_id = uuid.uuid4().hex
        self._seq = 0
        self._t0 = host_clock()
        self._asleep = suspended()
        self._protocol = protocol
        self._emit(
            RunStart(
                run_id=run_id,
                time=time.time(),
                protocol=protocol,
                config=dict(config or {}),
                seed=seed,
                version=__version__,
                git_revision=git_revision(),
                backend=self.backend.describe(),
                limits=self.limits.model_dump(),
                shape=tuple(self.backend.shape),  # type: ignore[arg-type]
            )
        )
        status, reason, value = RunStatus.SUCCESS, "", None
        retry_safe, self._safe_failed = True, ""
        # (Ctrl-Z would stop a bench with its outputs on; a simulator may well be paused)
        bench = not isinstance(self.backend, Clocked)
        hold = no_suspend() if bench else contextlib.nullcontext()
        with interruptible(RunAborted), hold:
            try:
                value = self._drive(plan, bench)
                status, reason = judge(value) or (status, reason)
            except KeyboardInterrupt:
                taken()
                status, reason = RunStatus.ABORTED, "interrupted (Ctrl-C)"
            except RunAborted as exc:
                taken()
                status, reason = RunStatus.ABORTED, str(exc) or type(exc).__name__
            except LimitViolation as exc:
                status, reason = RunStatus.FAILED, f"refused: {exc}"
            except Exception as exc:  # every failure ends the run the same way
                signum = swallowed()
                if signum:  # a Ctrl-C / SIGTERM broke what it landed in: that is the cause
                    taken()
                    status, reason = RunStatus.ABORTED, signal_reason(signum)
                else:
                    status, reason = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
                    self._fault(reason)
                retry_safe = not isinstance(exc, SafeStateFailure)
            finally:
                begin_cleanup()  # a second Ctrl-C / SIGTERM now waits for the safe state
                plan.close()
                if retry_safe:
                    self._safe_state_step()
                elif "safe state" not in reason:
                    reason += "; the safe state was not confirmed"
                self._notices()
                if self._safe_failed:  # an unsafe bench outweighs how the run ended
                    status = RunStatus.FAILED
                reason = "; ".join(filter(None, [reason, self._safe_failed]))
                unrecorded = self._emit_stop(RunStop(run_id, time.time(), status, reason,
                                                     self._seq))
                if unrecorded:  # the run's record is incomplete: it did not succeed
                    status = RunStatus.FAILED
                    reason = "; ".join(filter(None, [reason, unrecorded]))
        return RunResult(run_id, status, reason, value, self._seq)

    def _emit_stop(self, stop: RunStop) -> str:
        """The run stop to every subscriber, each on its own: one that fails (a log the disk
        refuses) neither keeps it from the others nor hides how the run ended. Returns what
        failed."""
        failed = []
        for sub in self.subscribers:
            try:
                sub(stop)
            except Exception as exc:
                failed.append(f"the run stop was not recorded: {exc}")
        return "; ".join(failed)

    def _safe_state_step(self) -> None:
        self._safe_failed = ""
        try:
            self.backend.safe_state()
        except BaseException as exc:  # reported in the run stop, never raised
            self._safe_failed = f"safe state failed: {exc}"
            self._fault(self._safe_failed)
            return
        if self._reports():
            with contextlib.suppress(Exception):
                self._event(EventKind.SAFE_STATE, "safe_state",
                            message="safe state confirmed by the instruments: outputs off at "
                                    "0 V, relays open")

    def _reports(self) -> bool:
        """Whether the backend reports notices (a runtime protocol check is slow: asked once
        per backend, not once per operation)."""
        backend = self.backend
        if backend is not self._notice_backend:
            self._notice_backend = backend
            self._reports_notices = isinstance(backend, ReportsNotices)
        return self._reports_notices

    def _notices(self) -> None:
        if not self._reports():
            return
        for kind, message in cast(ReportsNotices, self.backend).drain_notices():
            with contextlib.suppress(Exception):
                self._event(EventKind(kind), "link" if kind == "reconnect" else "notice",
                            message=message)

    def _woken(self) -> None:
        """Log a suspend of the host (a laptop lid closed) since the last operation: the bench
        held its last state meanwhile, and a retention or disturb analysis must know."""
        gap = suspended() - self._asleep
        if gap > SUSPEND_NOTED:
            self._asleep += gap
            self._event(EventKind.CHECKPOINT, "suspend", message=(
                f"the host was suspended for {gap:.1f} s before this operation; the bench held "
                "its last state meanwhile"), data={"seconds": gap})

    def _fault(self, message: str) -> None:
        # A broken subscriber must not hide the original fault.
        with contextlib.suppress(Exception):
            self._event(EventKind.FAULT, "fault", message=message)

    def _drive(self, plan: Plan, bench: bool) -> Any:
        result: Result = None
        pending: BaseException | None = None
        while True:
            raise_swallowed(RunAborted)  # a Ctrl-C whose exception a destructor swallowed
            try:
                msg = plan.throw(pending) if pending is not None else plan.send(result)
            except StopIteration as stop:  # (a signal noted in the last event: done anyway)
                return stop.value
            pending = None
            if bench:
                self._woken()
            try:
                self.limits.check(msg)
                result = self._execute(msg)
            except LimitViolation as exc:  # ours, or the backend's own limits: nothing applied
                self._event(EventKind.REFUSED, msg.tag, message=str(exc))
                pending = exc
            # (after a failure the notices follow the fault event, in the run's cleanup)
            self._notices()

    def _execute(self, msg: Message) -> Result:
        backend = self.backend
        if isinstance(msg, Read):
            r: ReadResult
            if self._streams():
                with self._streamed(EventKind.READ, msg.tag, msg.scheme.value):
                    r = backend.read(msg.cells, msg.v_read, msg.scheme)
            else:  # no cell-by-cell hook: nothing to stream (the usual simulator case)
                r = backend.read(msg.cells, msg.v_read, msg.scheme)
            one = _one_read(r)
            if one is not None:  # the verify read of a write-verify: the same on scalars
                voltages, conductances = one
                hold_signals()  # the number and its event go together (see `_event`)
                try:
                    self._seq += 1
                    self._send(Event(self._seq, _now(), _READ, self._protocol, msg.tag,
                                     _scheme(msg.scheme), _NAN, r.cells, voltages, r.currents,
                                     conductances, r.compliance))
                finally:
                    release_signals()
                return r
            self._event(
                EventKind.READ, msg.tag, scheme=msg.scheme.value, cells=r.cells,
                voltages=np.full(len(r.cells), r.v_read), currents=r.currents,
                conductances=r.conductances, compliance=r.compliance,
            )
            return r
        if isinstance(msg, Pulse):
            p: PulseResult = backend.pulse(msg.cell, msg.voltage, msg.width, msg.scheme)
            v, i, tripped = p.voltage, p.current, p.compliance
            g = i / v if v and not tripped else _NAN
            # one array of V, I, G: the event's three columns are views of it
            vig = np.array([v, i, g], dtype=np.float64)
            hold_signals()
            try:
                self._seq += 1
                self._send(Event(self._seq, _now(), _PULSE, self._protocol, msg.tag,
                                 _scheme(msg.scheme), p.width,
                                 np.array([p.cell], dtype=np.int64), vig[0:1], vig[1:2],
                                 vig[2:3], np.array([tripped], dtype=bool)))
            finally:
                release_signals()
            return p
        if isinstance(msg, Mvm):
            with self._streamed(EventKind.MVM, msg.tag, "grounded"):
                m: MvmResult = backend.mvm(msg.v_rows)
            tripped_out = np.asarray(m.compliance, dtype=bool).ravel()
            self._event(EventKind.MVM, msg.tag, mvm_in=m.v_rows, mvm_out=m.currents,
                        compliance=tripped_out)
            if tripped_out.any():
                n = int(tripped_out.sum())
                self._event(EventKind.COMPLIANCE, msg.tag,
                            message=f"current compliance ({self.limits.compliance:g} A) reached "
                                    f"on {n} column output(s) of an MVM (clamped currents)",
                            data={"outputs": n, "compliance_A": self.limits.compliance})
            return m
        if isinstance(msg, Checkpoint):
            self._event(EventKind.CHECKPOINT, msg.tag, message=msg.label, data=msg.data)
            return None
        if isinstance(msg, Wait):
            return self._wait(msg)
        raise TypeError(f"a plan yielded {msg!r}, which is not a message")

    def _streams(self) -> bool:
        """Whether the backend has a cell-by-cell hook (asked once per backend)."""
        backend = self.backend
        if backend is not self._hook_backend:
            self._hook_backend = backend
            self._has_hook = hasattr(backend, "on_cell")
        return self._has_hook

    def _wait(self, msg: Wait) -> WaitResult:
        """Advance a clocked backend (simulator), or sleep for real (bench); logged as a
        checkpoint "wait" with the seconds and the clock after it."""
        if isinstance(self.backend, Clocked):
            clock = float(self.backend.wait(msg.seconds))
        else:  # by the host's clock: a suspend of the host is part of the wait, not added to it
            deadline = host_clock() + msg.seconds
            while (left := deadline - host_clock()) > 0:
                time.sleep(min(left, 1.0))
            clock = host_clock() - self._t0
        self._event(EventKind.CHECKPOINT, msg.tag, message="wait",
                    data={"seconds": msg.seconds, "clock": clock})
        return WaitResult(msg.seconds, clock)

    @contextlib.contextmanager
    def _streamed(self, kind: EventKind, step: str, scheme: str) -> Iterator[None]:
        """Let a backend that measures cell by cell (``on_cell`` hook, `xbarlab.crossbar.CellSink`)
        hand each cell to the subscribers with a ``partial`` method as it is measured.

        If the operation fails (or is interrupted) after some cells, those cells still get
        their event: of this kind, with the message "interrupted after k cells: ...".
        """
        backend = self.backend
        takers = [t for t in (getattr(s, "partial", None) for s in self.subscribers)
                  if callable(t)]
        if not takers or not hasattr(backend, "on_cell"):
            yield
            return
        seq, protocol = self._seq + 1, self._protocol
        got: list[tuple[Cell, float, float, bool]] = []

        def on_cell(cell: Cell, voltage: float, current: float, compliance: bool) -> None:
            hold_signals()  # a cell is streamed whole to every taker
            try:
                got.append((cell, voltage, current, compliance))
                doc = CellMeasurement(seq, time.time(), kind, protocol, step, scheme,
                                      float("nan"), cell, voltage, current, compliance)
                for take in takers:
                    take(doc)
            finally:
                release_signals()
            # a signal noted meanwhile: now, not after the rest of a long multi-cell operation
            raise_swallowed(RunAborted)

        backend.on_cell = on_cell
        try:
            yield
        except BaseException as exc:
            if got:
                v = np.array([g[1] for g in got])
                i = np.array([g[2] for g in got])
                comp = np.array([g[3] for g in got], dtype=bool)  # clamped: no G
                with contextlib.suppress(Exception):  # the operation's error is the one raised
                    self._event(
                        kind, step, scheme=scheme,
                        cells=np.array([g[0] for g in got], dtype=np.int64).reshape(-1, 2),
                        voltages=v, currents=i,
                        conductances=np.divide(i, v, out=np.full_like(i, np.nan),
                                               where=(v != 0) & ~comp),
                        compliance=comp,
                        message=f"interrupted after {len(got)} cells: "
                                f"{str(exc) or type(exc).__name__}",
                    )
            raise
        finally:
            backend.on_cell = None

    def _event(self, kind: EventKind, step: str, **fields: Any) -> None:
        """The next event to every subscriber. A signal meanwhile is raised after it
        (`hold_signals`): a sequence number counted without its event would make the run
        stop count an event the log does not hold."""
        hold_signals()
        try:
            self._seq += 1
            self._send(Event(self._seq, _now(), kind, self._protocol, step, **fields))
        finally:
            release_signals()


_now = time.time
SUSPEND_NOTED = 1.0
"""s: a longer suspend of the host between two bench operations is logged (`_woken`)."""


def host_clock() -> float:
    """Seconds on a clock that keeps running while the host is suspended (Linux
    CLOCK_BOOTTIME; elsewhere the monotonic clock): a bench's waits and its clock count the
    time its devices really spent."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


def suspended() -> float:
    """Seconds the host has been suspended since it booted (0 where that is not known)."""
    if _BOOTTIME is None:
        return 0.0
    return time.clock_gettime(_BOOTTIME) - time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)
_NAN = float("nan")
_READ, _PULSE = EventKind.READ, EventKind.PULSE
_F8, _BOOL = np.dtype(np.float64), np.dtype(np.bool_)
_SCHEMES = {s: s.value for s in BiasScheme}


def _scheme(scheme: BiasScheme) -> str:
    """``scheme.value`` (an enum's ``value`` is a property: a dict lookup is cheaper)."""
    value = _SCHEMES.get(scheme)
    return scheme.value if value is None else value


def _one_read(r: ReadResult) -> tuple[FloatArray, FloatArray] | None:
    """(voltages, conductances) of a plain 1-cell read, computed on scalars
    exactly as `ReadResult.conductances` computes them on arrays (the same IEEE division);
    None for any other read (the array path)."""
    cells, cur, comp = r.cells, r.currents, r.compliance
    if (type(cur) is not np.ndarray or type(comp) is not np.ndarray
            or type(cells) is not np.ndarray or cells.shape != (1, 2) or cur.shape != (1,)
            or comp.shape != (1,) or cur.dtype != _F8 or comp.dtype != _BOOL
            or type(r.v_read) is not float):
        return None
    v = r.v_read
    return np.array([v]), np.array([_NAN if comp[0] else float(cur[0]) / v])
