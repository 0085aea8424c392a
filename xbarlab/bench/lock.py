"""One session per instrument: a host-wide lock on every instrument address a bench opens.

Two processes driving one bench interleave their commands: the second session's pulse goes
through the routing the first one set, onto the wrong cell, and its safe state switches the
first one's outputs off in the middle of a pulse. So a bench session holds, for as long as its
links are open, an exclusive lock per instrument address (`InstrumentLocks`, on
`xbarlab.host_locks`: freed by the kernel when a session dies, so the safety supervisor that
rescues its bench is never locked out); a second session (or `bench check`, `bench discover`)
is refused with one line naming who holds it.

Addresses are compared in a canonical form (`lock_key`): VISA names case-insensitively with
the default board number and the default VXI-11 device filled in, device paths through their
symlinks, so ``TCPIP::host::INSTR`` and ``tcpip0::host::inst0::INSTR``, or
``/dev/serial/by-id/...`` and ``/dev/ttyUSB0``, are one instrument. Host names are not
resolved: a name and its IP address are two keys. The lock is advisory and host-wide: it keeps
xbarlab processes on this computer apart, not another computer on the same LAN instrument.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from xbarlab.host_locks import Held, HostLock

IN_USE = "in use by another xbarlab session"
"""The words of every `BenchInUse` message (the supervisor looks for them in a rescue's
lines: a new session has the bench)."""


class BenchInUse(RuntimeError):
    """An instrument of the bench is held by another session (the message says whose)."""


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


@dataclass
class InstrumentLocks:
    """The locks of a set of instrument addresses, all taken or none (`acquire`)."""

    addresses: dict[str, str]  # name -> address
    holder: str = ""  # who takes them, for a refusal's message (default: the command line)
    _held: dict[str, HostLock] = field(default_factory=dict)  # key -> its lock

    def acquire(self) -> InstrumentLocks:
        """Take every lock now, without waiting; `BenchInUse` (and none kept) if one is held."""
        try:
            for name, address in sorted(self.addresses.items()):
                key = lock_key(address)
                if key in self._held:  # two names for one address: one lock
                    continue
                try:
                    self._held[key] = HostLock(f"instrument {key}", self.holder).acquire()
                except Held as exc:
                    raise BenchInUse(f"{name} ({address}) is {IN_USE} ({exc.holder}); "
                                     "wait until it ends") from None
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Give every lock back (idempotent)."""
        held, self._held = self._held, {}
        for lock in held.values():
            lock.release()

    @property
    def held(self) -> bool:
        return bool(self._held)

    def __enter__(self) -> InstrumentLocks:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def instrument_locks(addresses: dict[str, str] | Iterable[tuple[str, str]],
                     holder: str = "") -> InstrumentLocks:
    """`InstrumentLocks` of `{name: address}`, not yet taken."""
    return InstrumentLocks(dict(addresses), holder)
