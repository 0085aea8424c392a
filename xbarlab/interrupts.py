"""Ctrl-C, SIGTERM and a closed terminal: an exception while work runs, ignored (and said so)
while cleaning up.

- `sigterm_raises(exc)`: inside the block SIGTERM raises `exc("SIGTERM received")`.
- `interruptible(exc)`: SIGINT raises `KeyboardInterrupt`, SIGTERM raises `exc`, and so does
  SIGHUP (the terminal closed, an ssh link dropped; unless the process runs under `nohup`,
  which ignores it), until `begin_cleanup()` is called; from then on until the outermost
  `interruptible` block ends, these signals are ignored with one line on stderr, so the safe
  state and the log are finished before the process ends. Blocks nest: only the outermost
  installs handlers. After SIGHUP, what went to the lost terminal goes to /dev/null (a write
  to a hung-up terminal fails).
- `hold_signals()` / `release_signals()`: a signal in between is raised after (by
  `raise_swallowed`), so a record is never half written.
- `no_suspend()`: Ctrl-Z (SIGTSTP) ignored, said so: a stopped bench session would leave its
  outputs on for as long as it stays stopped.

A signal's exception raised inside a destructor, a weakref callback or a C callback (numba's
compiler calls back into Python) is only printed by Python, never propagated:
`raise_swallowed(abort)` (the run engine calls it between operations) raises it again, so a
Ctrl-C is never lost, and while `interruptible` or `startup_guard` holds the signals that
print (a traceback) is kept off the terminal.

Only the main thread can install signal handlers; elsewhere these do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from xbarlab.devnull import to_devnull

IGNORED_MESSAGE = ("xbarlab: {name} ignored: the bench is being put in its safe state and the "
                   "log closed; this ends on its own")


class _State:
    depth = 0
    cleaning = False
    shield = 0
    raised = 0  # the last signal `interruptible` raised for and nobody took yet (0: none)
    interrupted = False  # a signal raised its exception since the outermost block began
    held = 0  # `hold_signals` depth: a signal is only noted, raised by `raise_swallowed`


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def cleaning_up() -> bool:
    """True between `begin_cleanup()` and the end of the outermost `interruptible` block, and
    inside `shielded()`."""
    return _State.cleaning or _State.shield > 0


@contextmanager
def shielded() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored (said so) inside the block: a safe state in progress
    finishes (the signal's handlers must be ours: `interruptible` or `sigterm_raises`)."""
    _State.shield += 1
    try:
        yield
    finally:
        _State.shield -= 1


def begin_cleanup() -> None:
    """From now on Ctrl-C and SIGTERM are ignored (with a message) until the outermost
    `interruptible` block ends. Without one, nothing changes."""
    if _State.depth > 0:
        _State.cleaning = True


class _QuietSignals:
    """`sys.unraisablehook` that keeps the swallowed exception of a signal off the terminal
    (it is raised again by `raise_swallowed`), and once a signal interrupted the process, every
    error of a destructor too: an object the signal cut short in its constructor fails in its
    destructor later (llvmlite's `ObjectRef.__del__`: "no attribute '_as_parameter_'"), which
    is the interruption already said, not news. Before any signal, everything is handed on."""

    def __init__(self, previous: Any, abort: type[BaseException]) -> None:
        self.previous, self.abort = previous, abort

    def __call__(self, unraisable: Any) -> None:
        if _State.raised and unraisable.exc_type in (KeyboardInterrupt, self.abort):
            return
        if _State.interrupted:
            return
        self.previous(unraisable)


def startup_guard() -> None:
    """For a command-line process, before its imports: Ctrl-C raises KeyboardInterrupt as
    usual and is remembered, so that one Python swallowed is raised again
    (`raise_swallowed`) by the run engine or by the caller, and printed by nobody."""
    if not _main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        _State.raised, _State.interrupted = signum, True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    sys.unraisablehook = _QuietSignals(sys.unraisablehook, KeyboardInterrupt)


SIGNAL_REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "SIGTERM received",
                  signal.SIGHUP: "SIGHUP received: the terminal closed"}
"""The reason a run aborted by each signal gives (its run stop, the CLI's exit code)."""


def signal_reason(signum: int) -> str:
    return SIGNAL_REASONS.get(signal.Signals(signum), f"{signal.Signals(signum).name} received")


def _terminals() -> list[int]:
    """Standard output and error where they are a terminal (asked before a hangup: after it,
    a hung-up terminal no longer says it is one)."""
    out = []
    for fd in (1, 2):
        with contextlib.suppress(OSError, ValueError):
            if os.isatty(fd):
                out.append(fd)
    return out


def _ignored(signum: int) -> None:
    sys.stderr.write(IGNORED_MESSAGE.format(name=signal.Signals(signum).name) + "\n")
    sys.stderr.flush()


@contextmanager
def interruptible(abort: type[BaseException]) -> Iterator[None]:
    """SIGINT -> KeyboardInterrupt, SIGTERM -> `abort("SIGTERM received")`, both ignored once
    cleanup began (see the module doc)."""
    if not _main_thread():
        yield
        return
    if _State.depth > 0:
        _State.depth += 1
        try:
            yield
        finally:
            _State.depth -= 1
        return

    terminals = _terminals()

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            to_devnull(terminals)  # a write to a hung-up terminal fails (EIO)
        if cleaning_up():
            _ignored(signum)
            return
        _State.raised, _State.interrupted = signum, True
        if _State.held:  # an operation's record being written: raised once it is whole
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise abort(signal_reason(signum))

    signals = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # under nohup it stays ignored
        signals.append(signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    hook = sys.unraisablehook
    sys.unraisablehook = _QuietSignals(hook, abort)
    # (a Ctrl-C swallowed before, under `startup_guard`, stays pending for the engine; one an
    # earlier block met in this process no longer quiets what Python prints)
    _State.depth, _State.cleaning, _State.interrupted = 1, False, bool(_State.raised)
    try:
        yield
    finally:
        _State.depth, _State.cleaning, _State.raised = 0, False, 0
        sys.unraisablehook = hook
        for sig, prev in previous.items():
            signal.signal(sig, prev)


def hold_signals() -> None:
    """Until the matching `release_signals`, a Ctrl-C / SIGTERM / SIGHUP under `interruptible`
    is noted instead of raised, and `raise_swallowed` raises it afterwards: what must not be
    cut in half (an event and its sequence number, on its way to every subscriber: a log
    whose run stop counts an event it does not hold reads as damaged) is finished first.
    Cheap (two calls per operation); blocks nest."""
    _State.held += 1


def release_signals() -> None:
    """End of a `hold_signals` block (in a ``finally``)."""
    _State.held -= 1


def swallowed() -> int:
    """The signal whose exception nobody took yet (0: none). An error raised meanwhile may be
    its consequence (numba's compiler, interrupted in a callback, fails later)."""
    return _State.raised


def taken() -> None:
    """The signal's exception reached its handler (an `except KeyboardInterrupt` ...)."""
    _State.raised = 0


def raise_swallowed(abort: type[BaseException]) -> None:
    """Raise again the exception of a signal whose exception nobody took (Python only prints
    one raised inside a destructor or a weakref callback), unless cleanup began."""
    signum = _State.raised
    if signum and not cleaning_up():
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise abort(signal_reason(signum))


SUSPEND_IGNORED = ("xbarlab: Ctrl-Z ignored: a stopped session would leave the bench switched "
                   "on; Ctrl-C stops the run and makes the bench safe")


@contextmanager
def no_suspend() -> Iterator[None]:
    """Ctrl-Z (SIGTSTP) ignored inside the block, said so on stderr (main thread only; a
    handler someone else installed is left alone)."""
    if not _main_thread() or signal.getsignal(signal.SIGTSTP) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            sys.stderr.write(SUSPEND_IGNORED + "\n")
            sys.stderr.flush()

    previous = signal.signal(signal.SIGTSTP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTSTP, previous)


@contextmanager
def sigterm_raises(
    exc_type: type[BaseException], *, only_if_default: bool = False
) -> Iterator[None]:
    """Raise `exc_type("SIGTERM received")` on SIGTERM inside the block (main thread only).

    With `only_if_default`, do nothing when a handler is already installed (an outer layer,
    such as the run engine, already turns SIGTERM into an exception). The previous handler is
    restored on exit. During cleanup (`begin_cleanup`) SIGTERM is ignored, said so.
    """
    if not _main_thread() or (
        only_if_default and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if cleaning_up():
            _ignored(signum)
            return
        raise exc_type("SIGTERM received")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
