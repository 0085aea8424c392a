"""The `xbarlab` console script: the command line, with a Ctrl-C while it starts up (imports
and building the command line take a moment) ending in one line instead of a traceback."""

from __future__ import annotations

import sys


def _interrupted_while_starting() -> None:
    sys.stderr.write("xbarlab: interrupted while starting; nothing was done\n")
    sys.exit(130)


def main() -> None:
    from xbarlab import interrupts

    interrupts.startup_guard()  # a Ctrl-C Python swallows while importing is not lost
    try:
        from xbarlab.cli.main import app

        interrupts.raise_swallowed(KeyboardInterrupt)
    except KeyboardInterrupt:
        _interrupted_while_starting()
    try:
        app()
    except KeyboardInterrupt:
        # A Ctrl-C inside a command becomes exit 130 within `app` (said by the command, or by
        # `XbarlabGroup.invoke`); one that gets here came while the command line was built,
        # before any command ran.
        _interrupted_while_starting()
