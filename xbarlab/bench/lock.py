"""One session per instrument: a host-wide lock on every instrument address a bench opens.

Two processes driving one bench interleave their commands: the second session's pulse goes
through the routing the first one set, onto the wrong cell, and its safe state switches the
first one's outputs off in the middle of a pulse. So a bench session holds, for as long as its
links are open, an exclusive lock per instrument address (`InstrumentLocks`); a second session
(or `bench check`, `bench discover`) is refused with one line naming who holds it.

- The locks are `flock(2)` locks on small files in a folder shared by every user of the host
  (``$XBARLAB_LOCK_DIR``, default ``<tmp>/xbarlab-locks``). The kernel releases them when the
  holder's file is closed, so a killed session never leaves a stale lock, and the safety
  supervisor that rescues its bench is never locked out.
- A lock file holds who took it (pid, command, since when) for the refusal's message.
- Addresses are compared in a canonical form (`lock_key`): VISA names case-insensitively with
  the default board number and the default VXI-11 device filled in, device paths through their
  symlinks, so ``TCPIP::host::INSTR`` and ``tcpip0::host::inst0::INSTR``, or
  ``/dev/serial/by-id/...`` and ``/dev/ttyUSB0``, are one instrument. Host names are not
  resolved: a name and its IP address are two keys.
- The lock is advisory and host-wide: it keeps xbarlab processes on this computer apart, not
  another computer on the same LAN instrument.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOCK_DIR_ENV = "XBARLAB_LOCK_DIR"


class BenchInUse(RuntimeError):
    """An instrument of the bench is held by another session (the message says whose)."""


def lock_dir() -> Path:
    """The folder of the lock files (created, writable by every user of the host)."""
    folder = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "xbarlab-locks")
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared like /tmp: every user, sticky
            folder.chmod(0o1777)
    return folder


_VISA_HEAD = re.compile(r"([A-Z]+?)(\d*)$")


def lock_key(address: str) -> str:
    """The canonical form of an instrument address: two spellings of one instrument give one
    key (see the module doc)."""
    a = address.strip()
    if a.startswith("/"):
        return os.path.realpath(a)
    if "://" in a:  # a pyserial URL or an emulated link: as given
        return a
    if a.upper().startswith("ASRL/"):  # pyvisa-py: ASRL/dev/ttyUSB0::INSTR
        path, _, rest = a[4:].partition("::")
        return f"ASRL{os.path.realpath(path)}::{(rest or 'INSTR').upper()}"
    parts = a.upper().split("::")
    head = _VISA_HEAD.match(parts[0])
    if head is None:  # COM3 and the like
        return a.upper()
    interface, board = head.groups()
    parts[0] = interface + (board or "0")
    if interface == "TCPIP" and len(parts) == 3 and parts[2] == "INSTR":
        parts.insert(2, "INST0")  # the VXI-11 default device name
    return "::".join(parts)


def _file_of(key: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")[:60]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return lock_dir() / f"{readable}-{digest}.lock"


def _holder_text(path: Path) -> str:
    """Who holds the lock of `path`, as a phrase (what the holder wrote there)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    who = "this process" if info.get("pid") == os.getpid() else f"pid {info.get('pid')}"
    command, since = info.get("command"), str(info.get("since") or "")
    if since.startswith(time.strftime("%Y-%m-%d ")):
        since = since.split(" ", 1)[1]  # today: the time says it
    return ((f"`{command}`, " if command else "") + who + (f", since {since}" if since else ""))


def _command() -> str:
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    text = " ".join(argv)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class InstrumentLocks:
    """The locks of a set of instrument addresses, all taken or none (`acquire`)."""

    addresses: dict[str, str]  # name -> address
    _held: dict[str, int] = field(default_factory=dict)  # key -> file descriptor

    def acquire(self) -> InstrumentLocks:
        """Take every lock now, without waiting; `BenchInUse` (and none kept) if one is held."""
        try:
            for name, address in sorted(self.addresses.items()):
                key = lock_key(address)
                if key in self._held:  # two names for one address: one lock
                    continue
                self._held[key] = self._take(name, address, key)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, name: str, address: str, key: str) -> int:
        path = _file_of(key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's file: it can still be locked, not written
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BenchInUse(
                f"{name} ({address}) is in use by another xbarlab session "
                f"({_holder_text(path)}); wait until it ends"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # who holds it, for the message of a refusal
            os.fchmod(fd, 0o666)
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": _command(), "address": address,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")})
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
        return fd

    def release(self) -> None:
        """Give every lock back (idempotent). The files stay: deleting one another process
        has just opened would let two processes lock two different files."""
        held, self._held = self._held, {}
        for fd in held.values():
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                os.close(fd)  # closing releases the flock

    @property
    def held(self) -> bool:
        return bool(self._held)

    def __enter__(self) -> InstrumentLocks:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def instrument_locks(addresses: dict[str, str] | Iterable[tuple[str, str]]) -> InstrumentLocks:
    """`InstrumentLocks` of `{name: address}`, not yet taken."""
    return InstrumentLocks(dict(addresses))
