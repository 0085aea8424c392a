"""Probing suspect log files in a child process, and the "open for write" flag.

A killed writer leaves the file's "open for write" flag set: `LogReader` still opens it (SWMR,
bounded retries), but plain HDF5 readers and h5dump refuse it until the flag is cleared
(``h5clear -s``, Debian package hdf5-tools; `clear_write_flag`). `probe` opens a file in a
child process with a deadline, for where the in-process guards of `xbarlab.log.h5open` are
not available. Salvaging a damaged log is `xbarlab.log.salvage`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PROBE = r"""
import json, sys
import h5py
path = sys.argv[1]
out = {"plain": False, "readable": False}
try:
    with h5py.File(path, "r"):
        out["plain"] = True
except Exception as exc:
    out["plain_error"] = str(exc)
try:
    from xbarlab.log.reader import LogReader
    with LogReader(path) as reader:
        out["started"] = reader.started
        if reader.started:
            out["counts"] = reader.counts()
            out["status"] = reader.status
    out["readable"] = True
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


class RecoveryError(RuntimeError):
    """A log file that could not be made readable."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a child process could do with a log file."""

    path: Path
    readable: bool  # LogReader (SWMR read) opens it
    plain_readable: bool  # plain HDF5 readers (h5dump, h5py without swmr) open it
    hung: bool = False  # the probe did not finish within the timeout
    error: str = ""
    status: str | None = None  # success / failed / aborted / unfinished
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def write_flag_set(self) -> bool:
        """The file reads as an xbarlab log but is still marked open for write."""
        return self.readable and not self.plain_readable


def probe(path: str | os.PathLike[str], timeout: float = 30.0) -> ProbeResult:
    """Open `path` in a child process (killed after `timeout` s) and report what worked."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such log file")
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(p)], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult(p, False, False, hung=True,
                           error=f"opening the file did not finish within {timeout:g} s")
    lines = done.stdout.strip().splitlines()
    try:
        out: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return ProbeResult(p, False, False,
                           error=f"probe exited with code {done.returncode}: {tail[0]}")
    return ProbeResult(
        p, bool(out["readable"]), bool(out["plain"]),
        error=str(out.get("error") or out.get("plain_error") or ""),
        status=out.get("status"), counts=dict(out.get("counts", {})),
    )


def h5clear_path() -> str | None:
    """The h5clear binary, if installed."""
    return shutil.which("h5clear")


def holders(path: str | os.PathLike[str]) -> list[int]:
    """Ids of processes that have `path` open (Linux /proc; other processes' fds we may see)."""
    target = Path(path).resolve()
    pids: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if Path(os.readlink(fd)) == target:
                    pids.append(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def clear_write_flag(path: str | os.PathLike[str], timeout: float = 30.0) -> None:
    """Clear the "open for write" flag a killed writer left (``h5clear -s``).

    Refuses while another process holds the file open: clearing a live writer's file
    would corrupt it.
    """
    p = Path(path)
    exe = h5clear_path()
    if exe is None:
        raise RecoveryError(
            f"cannot clear the write flag of {p}: h5clear is not installed (Debian/Ubuntu: "
            "apt install hdf5-tools). LogReader can still read the file."
        )
    busy = holders(p)
    if busy:
        raise RecoveryError(f"{p} is open in process(es) {busy}: a live writer's file is "
                            "not cleared; stop that process first")
    try:
        done = subprocess.run([exe, "-s", str(p)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RecoveryError(f"h5clear -s {p} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip()
        raise RecoveryError(f"h5clear -s {p} failed (exit {done.returncode}): {msg}")
