"""SIGTERM as an exception while a block runs, so every exit path reaches its cleanup."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_raises(
    exc_type: type[BaseException], *, only_if_default: bool = False
) -> Iterator[None]:
    """Raise `exc_type("SIGTERM received")` on SIGTERM inside the block (main thread only).

    With `only_if_default`, do nothing when a handler is already installed (an outer layer,
    such as the run engine, already turns SIGTERM into an exception). The previous handler is
    restored on exit.
    """
    if threading.current_thread() is not threading.main_thread() or (
        only_if_default and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise exc_type("SIGTERM received")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
