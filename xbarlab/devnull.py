"""Send file descriptors to /dev/null: what a process still writes where nobody reads any more
(a hung-up terminal, a closed pipe, a file the disk refuses) then succeeds and goes nowhere."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable


def to_devnull(fds: Iterable[int]) -> None:
    """Point each of `fds` at /dev/null (one that cannot be is left as it is)."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd)
        finally:
            os.close(null)
