"""Ctrl-C and SIGTERM: an exception while work runs, ignored (and said so) while cleaning up.

- `sigterm_raises(exc)`: inside the block SIGTERM raises `exc("SIGTERM received")`.
- `interruptible(exc)`: SIGINT raises `KeyboardInterrupt`, SIGTERM raises `exc`, until
  `begin_cleanup()` is called; from then on until the outermost `interruptible` block ends,
  both signals are ignored with one line on stderr, so the safe state and the log are
  finished before the process ends. Blocks nest: only the outermost installs handlers.

A signal's exception raised inside a destructor or a weakref callback is only printed by
Python, never propagated: `raise_swallowed(abort)` (the run engine calls it between
operations) raises it again, so a Ctrl-C is never lost.

Only the main thread can install signal handlers; elsewhere these do nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

IGNORED_MESSAGE = ("xbarlab: {name} ignored: the bench is being put in its safe state and the "
                   "log closed; this ends on its own")


class _State:
    depth = 0
    cleaning = False
    shield = 0
    raised = 0  # the last signal `interruptible` raised for and nobody took yet (0: none)


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

    def handler(signum: int, frame: FrameType | None) -> None:
        if cleaning_up():
            _ignored(signum)
            return
        _State.raised = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise abort("SIGTERM received")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _State.depth, _State.cleaning, _State.raised = 1, False, 0
    try:
        yield
    finally:
        _State.depth, _State.cleaning, _State.raised = 0, False, 0
        for sig, prev in previous.items():
            signal.signal(sig, prev)


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
        raise abort("SIGTERM received")


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
