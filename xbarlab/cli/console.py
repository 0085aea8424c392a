"""The terminal output of every command: rich's `Console`, minus its exit on a broken pipe.

A reader that goes away (`xbarlab run ... | head`, a pager closed early) is not a failure of
the command. rich then raises `SystemExit(1)`, so a run that programmed every cell exited 1,
whatever it did. Here what is left to print is dropped (the stream goes to /dev/null) and the
work goes on: the exit code still says how the run went, and the log has everything.
"""

from __future__ import annotations

import contextlib
import sys
from typing import IO

from rich.console import Console as RichConsole

from xbarlab.devnull import to_devnull


def drop_output(stream: IO[str]) -> None:
    """What is still written to `stream` goes to /dev/null (its reader is gone)."""
    with contextlib.suppress(OSError, ValueError):  # (a stream with no descriptor)
        to_devnull([stream.fileno()])


class Console(RichConsole):
    """`rich.console.Console` that drops its output once its reader is gone."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        drop_output(self.file)


def emit(text: str) -> None:
    """`text` and a newline on standard output, as-is (JSON for a program); a reader that went
    away drops it, as `Console` does."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        drop_output(sys.stdout)
