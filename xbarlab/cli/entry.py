"""The `xbarlab` console script: the command line, with a Ctrl-C while it starts up (imports
take a moment) ending in one line instead of a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from xbarlab.cli.main import app
    except KeyboardInterrupt:
        sys.stderr.write("xbarlab: interrupted while starting; nothing was done\n")
        sys.exit(130)
    app()
