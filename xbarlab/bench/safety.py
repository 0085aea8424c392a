"""Bench safety: limits before any command, break-before-make, the safe state on every exit.

- `check_read` / `check_pulse` / `check_mvm` / `check_levels`: the bench limits, applied before
  any instrument command is built (out of range raises `LimitViolation`, never clamps).
- `switch`: break-before-make routing; refuses to touch a relay while any output is not
  confirmed off by its instrument (`SourceMeter.output_on` is False only after the instrument
  answered a query sent after the off command, so the off has really been executed).
- `drain_errors`: reads every error queue; an instrument error raises `InstrumentFault`.
- `all_safe`: the safe state in order (every SMU: abort, 0 V, output off; then every matrix:
  relays open; then boards: off), trying every step even when one fails.
- `guarded`: runs one bench operation; on *any* exit other than success (exception,
  KeyboardInterrupt, SIGTERM, operation timeout) it puts the bench in its safe state first and
  then lets the exception continue.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import FrameType

import numpy as np

from xbarlab.bench.roles import Board, Crosspoint, Instrumented, SourceMeter, SwitchMatrix
from xbarlab.crossbar import Cell, FloatArray, SafeStateFailure
from xbarlab.interrupts import shielded, sigterm_raises
from xbarlab.limits import BenchLimits, LimitViolation, exact
from xbarlab.messages import Mvm, Pulse, Read


class BenchFault(RuntimeError):
    """The bench is in a state it must not continue from (the run stops)."""


class InstrumentFault(BenchFault):
    """An instrument reported errors in its error queue."""


class SafeStateError(BenchFault, SafeStateFailure):
    """One or more steps of the safe state failed (the message lists every failure)."""


class OperationTimeout(BenchFault, TimeoutError):
    """A bench operation ran longer than the configured operation timeout."""


class BenchAborted(BaseException):
    """SIGTERM during a bench operation (when no one else handles SIGTERM)."""


def check_read(limits: BenchLimits, v_read: float) -> None:
    limits.check(Read(cells=None, v_read=float(v_read)))


def check_pulse(limits: BenchLimits, cell: Cell, volts: float, width: float) -> None:
    limits.check(Pulse(cell=cell, voltage=float(volts), width=float(width)))


def check_mvm(limits: BenchLimits, v_rows: FloatArray) -> None:
    limits.check(Mvm(v_rows=v_rows))


def check_levels(limits: BenchLimits, levels: Mapping[str, float]) -> None:
    """Every terminal level finite and within +-v_max (NaN = floating is allowed)."""
    for role, v in levels.items():
        if math.isnan(v):
            continue
        if not math.isfinite(v) or abs(v) > limits.v_max:
            raise LimitViolation(f"{role} would be at {exact(v)} V, beyond the bench limit "
                                 f"+-{exact(limits.v_max, False)} V")


def check_array_levels(limits: BenchLimits, role: str, values: FloatArray) -> None:
    v = np.asarray(values, dtype=float)
    finite = v[~np.isnan(v)]
    if finite.size and (not np.isfinite(finite).all() or np.abs(finite).max() > limits.v_max):
        worst = float(np.abs(finite).max()) if np.isfinite(finite).all() else math.inf
        raise LimitViolation(f"{role}: a line would be at |V| = {exact(worst, False)} V, "
                             f"beyond the bench limit +-{exact(limits.v_max, False)} V")


def switch(matrix: SwitchMatrix, sources: Sequence[SourceMeter], points: Iterable[Crosspoint],
           settle: float = 0.0) -> None:
    """Break-before-make: every output must be confirmed off; open all, verify, close, verify,
    settle."""
    live = [s.name for s in sources if s.output_on]
    if live:
        raise BenchFault(f"refusing to switch relays with outputs on (not confirmed off): "
                         f"{live}")
    want = set(points)
    matrix.open_all()
    left = matrix.closed()
    if left:
        raise BenchFault(f"{matrix.name}: relays still closed after open-all: "
                         f"{sorted(map(str, left))}")
    if want:
        matrix.close_crosspoints(sorted(want))
        got = matrix.closed()
        if got != want:
            raise BenchFault(f"{matrix.name}: closed {sorted(map(str, got))}, "
                             f"expected {sorted(map(str, want))}")
    if settle > 0:
        time.sleep(settle)


def drain_errors(instruments: Iterable[Instrumented]) -> None:
    problems = []
    for inst in instruments:
        errs = inst.errors()
        if errs:
            problems.append(f"{inst.name}: " + "; ".join(errs))
    if problems:
        raise InstrumentFault("instrument error(s): " + " | ".join(problems))


def all_safe(sources: Sequence[SourceMeter], matrices: Sequence[SwitchMatrix] = (),
             boards: Sequence[Board] = ()) -> None:
    """Outputs off first, relays after; every step is tried; failures are raised together."""
    failures = []
    for inst in [*sources, *matrices, *boards]:
        try:
            inst.safe_state()
        except BaseException as exc:
            failures.append(f"{inst.name}: {type(exc).__name__}: {exc}")
    if failures:
        raise SafeStateError("safe state incomplete: " + " | ".join(failures))


TIMEOUT_SIGNAL = signal.SIGUSR1
"""Signal a watchdog thread sends the main thread when an operation overruns (SIGALRM is left
alone: pytest-timeout and other tools use it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise `OperationTimeout` in the main thread after `seconds` (interrupts blocking I/O)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    main = threading.main_thread().ident
    assert main is not None
    lock = threading.Lock()
    state = {"done": False}

    def handler(signum: int, frame: FrameType | None) -> None:
        raise OperationTimeout(f"bench operation exceeded {seconds:g} s")

    def fire() -> None:
        with lock:
            if not state["done"]:
                signal.pthread_kill(main, TIMEOUT_SIGNAL)

    previous = signal.signal(TIMEOUT_SIGNAL, handler)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        signal.signal(TIMEOUT_SIGNAL, previous)


@contextlib.contextmanager
def guarded(safe: Callable[[], None], timeout: float | None = None) -> Iterator[None]:
    """Run the body; on any exception (incl. KeyboardInterrupt, SIGTERM, timeout) call `safe`
    (the safe state) before the exception continues. A failing safe state is chained on."""
    try:
        with sigterm_raises(BenchAborted, only_if_default=True), _deadline(timeout):
            yield
    except BaseException as exc:
        try:
            with shielded():  # a second Ctrl-C / SIGTERM must not cut the safe state short
                safe()
        except BaseException as safe_exc:
            if not isinstance(exc, Exception):  # an abort (Ctrl-C, SIGTERM) stays an abort
                exc.add_note(f"then the safe state failed: {safe_exc}")
                raise exc from None
            raise SafeStateError(f"{type(exc).__name__}: {exc}; then the safe state failed: "
                                 f"{safe_exc}") from exc
        raise
