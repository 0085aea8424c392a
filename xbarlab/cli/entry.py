"""The `xbarlab` console script: Ctrl-C while the command line is still loading is an abort
(exit 130), not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    """Load the command line, then run it."""
    try:
        from xbarlab.cli.main import app
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    app()
