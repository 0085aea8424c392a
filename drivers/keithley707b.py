"""Keithley 707B / 708B switching matrix (TSP) as a `SwitchMatrix` role.

Channels are ``<slot><row><column>``: slot 1..6, row A..H (instrument buses), column 01..12
(device pins), e.g. ``1A01``. Every line the driver sends is in `Cmd`.

Manual: 707B/708B Reference Manual, "TSP command reference" (channel.*, errorqueue.*).

Identity: ``*IDN?``, compared with the bench config before any other command is sent; then the
error queue is drained (``print(errorqueue.count)`` / ``print(errorqueue.next())``): errors left
by an earlier session are logged and kept in `cleared_errors`, and do not stop this one.
After a query timeout the link is cleared and checked with ``print("xbl-sync-<n>")`` before
anything else is sent.

::

    channel.connectrule = channel.BREAK_BEFORE_MAKE   # configure()
    channel.open("allslots")                          # open_all(), safe state
    channel.close("1A01,1B02")                        # close_crosspoints()
    *OPC?                                             # -> 1 after every relay command
    print(channel.getclose("allslots"))               # -> "1A01;1B02" or "nil"
    print(errorqueue.count) / print(errorqueue.next())

`close_crosspoints` adds relays to those already closed; the bench backend opens everything
first (break-before-make, `xbarlab.bench.safety.switch`) and verifies the result with
`closed()`.

Safe state: ``channel.open("allslots")``, ``*OPC?``, then ``print(channel.getclose("allslots"))``
must answer ``nil``; if any of it fails, the link is reopened once and it is all sent again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from xbarlab.bench.roles import Crosspoint
from xbarlab.drivers.base import Instrument, InstrumentError, ReplyError, SettingError
from xbarlab.drivers.keithley2600 import clear_stale_errors, tsp_errors
from xbarlab.drivers.transports import Transport

CHANNEL = re.compile(r"^([1-6])([A-H])(0[1-9]|1[0-2])$")


class Cmd:
    IDN = "*IDN?"
    BREAK_BEFORE_MAKE = "channel.connectrule = channel.BREAK_BEFORE_MAKE"
    OPEN_ALL = 'channel.open("allslots")'
    CLOSE = 'channel.close("{channels}")'
    OPC = "*OPC?"
    CLOSED = 'print(channel.getclose("allslots"))'


class Keithley707B(Instrument):
    """A 707B/708B mainframe."""

    SYNC = 'print("xbl-sync-{token}")'

    def __init__(self, transport: Transport, name: str = "") -> None:
        super().__init__(transport, name)
        self.cleared_errors: list[str] = []

    def connect(self, expect: str | None = None) -> str:
        idn = super().connect(expect)
        self.cleared_errors = clear_stale_errors(self)
        return idn

    def configure(self) -> None:
        self.write(Cmd.BREAK_BEFORE_MAKE)
        self.open_all()

    def _wait(self, after: str) -> None:
        reply = self.query(Cmd.OPC)
        if reply.strip() != "1":
            raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after {after!r} is {reply!r}")

    def close_crosspoints(self, points: Iterable[Crosspoint]) -> None:
        names = [str(p) for p in points]
        bad = [n for n in names if not CHANNEL.match(n)]
        if bad:
            raise SettingError(f"{self.name}: not 707B/708B channels: {bad}")
        if not names:
            return
        cmd = Cmd.CLOSE.format(channels=",".join(names))
        self.write(cmd)
        self._wait(cmd)

    def open_all(self) -> None:
        self.write(Cmd.OPEN_ALL)
        self._wait(Cmd.OPEN_ALL)

    def closed(self) -> set[Crosspoint]:
        reply = self.query(Cmd.CLOSED).strip()
        if reply == "nil":
            return set()
        out = set()
        for name in reply.split(";"):
            m = CHANNEL.match(name.strip())
            if not m:
                raise ReplyError(f"{self.name}: reply to {Cmd.CLOSED!r} has a bad channel "
                                 f"{name!r}: {reply!r}")
            out.add(Crosspoint(int(m[1]), m[2], int(m[3])))
        return out

    def errors(self) -> list[str]:
        return tsp_errors(self)

    def _open_confirmed(self) -> None:
        self.open_all()
        left = self.closed()
        if left:
            raise InstrumentError(f"{self.name}: relays still closed after open-all: "
                                  f"{sorted(map(str, left))}")

    def safe_state(self) -> None:
        self.recover("safe state", self._open_confirmed)
