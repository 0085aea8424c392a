"""A session stand-in that holds a log open for writing in a child process: one row flushed,
then it waits for a line on its stdin, logs a second row and the run stop, and closes.

`start(path)` returns the process once its first row is flushed ("writing" on its stdout);
write a line to its stdin to let it finish ("closed" on its stdout)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.log.docs import read_event, run_start, run_stop
    from xbarlab.log.writer import HDF5Writer
    w = HDF5Writer(sys.argv[1], flush_interval=None)
    w(run_start())
    w(read_event(1, [(0, 0)], 0.2, [1e-4]))
    w.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    w(read_event(2, [(0, 1)], 0.2, [2e-4]))
    w(run_stop(2))
    w.close()
    print("closed", flush=True)
""")


def start(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(root=str(ROOT)), str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc
