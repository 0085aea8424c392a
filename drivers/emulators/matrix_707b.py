"""Emulated Keithley 707B switching matrix (TSP, 707B/708B Reference Manual).

Cards: each configured slot holds a 7174A-like 8 x 12 matrix (rows A..H, columns 01..12).
Channel lists are comma-separated items: a channel ``<slot><row><col>`` (``1A01``), a range of
one row ``1A01:1A05``, ``slot<n>`` or ``allslots``. Supported::

    channel.close(list)           channel.open(list)          channel.exclusiveclose(list)
    channel.getclose(list)        -> "1A01;1B02" or nil      channel.reset(list)
    channel.connectrule = channel.BREAK_BEFORE_MAKE | channel.MAKE_BEFORE_BREAK | channel.OFF

A malformed list or a channel on an empty slot queues ``1115 Parameter error: invalid channel
list`` and changes nothing. Every relay change is reported to the bench (`on_change`), which
sees which relays switch while an output behind them is on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from xbarlab.drivers.emulators.tsp import Function, Prop, Table, TspError
from xbarlab.drivers.emulators.tsp_instrument import TspInstrument

ROWS = "ABCDEFGH"
COLS = range(1, 13)
_CHANNEL = re.compile(r"([1-6])([A-Ha-h])(\d\d)")
RelayHook = Callable[[frozenset[str], frozenset[str]], None]


class Matrix707B(TspInstrument):
    """A 707B mainframe with cards in `slots`."""

    ascii_digits = 10  # format.asciiprecision default (707B/708B Reference Manual)

    def __init__(self, name: str = "707b", slots: Iterable[int] = (1, 2),
                 serial: str = "1234567", on_change: RelayHook | None = None) -> None:
        super().__init__()
        self.name = name
        self.identity = f"Keithley Instruments Inc., Model 707B, {serial}, 1.6.0"
        self.slots = tuple(sorted(set(slots)))
        self.closed: set[str] = set()
        self.connectrule = 1
        self.on_change = on_change
        self.env["channel"] = Table({
            "close": Function(self._close),
            "open": Function(self._open),
            "exclusiveclose": Function(self._exclusive),
            "getclose": Function(self._getclose),
            "reset": Function(self._open),
            "connectrule": Prop(lambda: float(self.connectrule), self._set_rule),
            "OFF": 0.0, "BREAK_BEFORE_MAKE": 1.0, "MAKE_BEFORE_BREAK": 2.0,
        }, "channel")
        self.env["reset"] = Function(self.instrument_reset)

    @property
    def safe(self) -> bool:
        return not self.closed

    def reset(self) -> None:
        self._apply(set())
        self.connectrule = 1

    def _set_rule(self, v: Any) -> None:
        if isinstance(v, bool) or v not in (0.0, 1.0, 2.0):
            raise TspError(-222, f"Parameter data out of range: connectrule {v!r}")
        self.connectrule = int(v)

    def parse(self, text: Any) -> set[str]:
        """The channels of a channel list; raises `TspError` 1115 for a bad one."""
        if not isinstance(text, str) or not text.strip():
            raise TspError(1115, f"Parameter error: invalid channel list {text!r}")
        out: set[str] = set()
        for item in (p.strip() for p in text.split(",")):
            low = item.lower()
            if low == "allslots":
                out |= {self._name(s, r, c) for s in self.slots for r in ROWS for c in COLS}
                continue
            m = re.fullmatch(r"slot([1-6])", low)
            if m:
                self._slot(int(m[1]), text)
                out |= {self._name(int(m[1]), r, c) for r in ROWS for c in COLS}
                continue
            first, _, last = item.partition(":")
            a = self._channel(first, text)
            if not last:
                out.add(self._name(*a))
                continue
            b = self._channel(last, text)
            if a[0] != b[0] or a[1] != b[1] or b[2] < a[2]:
                raise TspError(1115, f"Parameter error: invalid channel range {item!r}")
            out |= {self._name(a[0], a[1], c) for c in range(a[2], b[2] + 1)}
        return out

    def _slot(self, slot: int, text: str) -> None:
        if slot not in self.slots:
            raise TspError(1115, f"Parameter error: no card in slot {slot} ({text!r})")

    def _channel(self, item: str, text: str) -> tuple[int, str, int]:
        m = _CHANNEL.fullmatch(item)
        if not m or int(m[3]) not in COLS:
            raise TspError(1115, f"Parameter error: invalid channel list {text!r}")
        self._slot(int(m[1]), text)
        return int(m[1]), m[2].upper(), int(m[3])

    @staticmethod
    def _name(slot: int, row: str, col: int) -> str:
        return f"{slot}{row}{col:02d}"

    def _apply(self, new: set[str]) -> None:
        old = frozenset(self.closed)
        if self.on_change is not None:
            self.on_change(old, frozenset(new))
        self.closed = set(new)

    def _close(self, text: Any = None) -> None:
        self._apply(self.closed | self.parse(text))

    def _open(self, text: Any = None) -> None:
        self._apply(self.closed - self.parse(text))

    def _exclusive(self, text: Any = None) -> None:
        self._apply(self.parse(text))

    def _getclose(self, text: Any = None) -> str | None:
        chans = self.closed & self.parse(text)
        return ";".join(sorted(chans)) if chans else None
