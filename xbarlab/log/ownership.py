"""Who writes a log: one writer per log on a host, and whether a log's writer still runs.

A writer holds a host-wide lock on its log's path (`xbarlab.host_locks`) from before it creates
the file until it has closed it, and stores its host name and pid in the file. So:
- `claim_log`: a second writer (an `--overwrite` of a log a running session fills, a salvage
  into it) is refused, naming the session;
- `writer_state`: a log without a run stop is "running" (its writer holds the lock), "gone"
  (killed: the kernel freed its lock), or "unknown" (written on another host, or by an xbarlab
  that did not record its writer).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from xbarlab.host_locks import Held, HostLock
from xbarlab.log.errors import LogInUse

WRITER_HOST = "writer_host"
WRITER_PID = "writer_pid"

WriterState = Literal["running", "gone", "unknown"]


def _lock(path: str | os.PathLike[str]) -> HostLock:
    return HostLock(f"log {os.path.realpath(path)}")


def claim_log(path: str | os.PathLike[str]) -> HostLock:
    """The host-wide lock of the log at `path`, taken; `LogInUse` naming the session that
    writes it if another writer has it."""
    try:
        return _lock(path).acquire()
    except Held as exc:
        raise LogInUse(f"{path} is being written by another xbarlab session ({exc.holder}); "
                       "choose another file, or wait until it ends") from None


def writer_identity() -> dict[str, object]:
    """The attributes a writer stores in its log: this host and process."""
    return {WRITER_HOST: socket.gethostname(), WRITER_PID: os.getpid()}


def writer_state(path: str | os.PathLike[str], host: object) -> WriterState:
    """Whether the writer of the log at `path` (written on `host`, from its attributes) still
    runs. Only meaningful for a log without a run stop."""
    if not isinstance(host, str) or host != socket.gethostname():
        return "unknown"
    probe = _lock(Path(path))
    try:
        probe.acquire()
    except Held:
        return "running"
    probe.release()
    return "gone"
