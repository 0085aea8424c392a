"""Fault injection for emulated instruments.

A `FaultPlan` holds rules; the server asks it, for every received line, whether a fault fires
on that line. A rule fires on the `after`-th line (1-based) containing `match` (any line when
`match` is empty) and keeps firing for `times` matching lines (0: for ever).

Kinds handled by the transport server (`xbarlab.drivers.emulators.server`):

- ``latency``: the reply (or the processing of a write) is delayed by `delay` s.
- ``late``: the line is processed at once, its reply sent `delay` s later: with `delay` above
  the client's timeout, a late reply that arrives while the client waits for its next one.
- ``no_reply``: the line is processed but a query's reply is withheld (the client times out).
- ``garbage``: the reply is replaced by `text` (default: bytes no instrument would send).
- ``truncate``: only the first half of the reply is sent (then the termination).
- ``drop``: the connection is closed before the line is processed.

Kinds handled by the instrument (`inject` on the emulator):

- ``error``: an error is queued on the instrument (as if it had refused something).
- ``trip``: the next measurement of every channel reports compliance at the current limit.

A rule with ``queries=True`` only counts queries (lines with ``?`` or a TSP ``print(``), so
reply faults can be aimed at lines that have a reply. Every fault that fires is appended to
`log` as a `FaultRecord`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["latency", "late", "no_reply", "garbage", "truncate", "drop", "error",
                    "trip"]
TRANSPORT_FAULTS = {"latency", "late", "no_reply", "garbage", "truncate", "drop"}
INSTRUMENT_FAULTS = {"error", "trip"}


def is_query(line: str) -> bool:
    """A line that gets a reply: a SCPI query or a TSP print."""
    return "?" in line or "print(" in line


@dataclass
class FaultRule:
    """Fire `kind` on the `after`-th line containing `match`, `times` times (0: always)."""

    kind: FaultKind
    match: str = ""
    after: int = 1
    times: int = 1
    delay: float = 0.0  # s, latency
    text: str = "\x15#?garbage?#"  # garbage reply
    queries: bool = False  # count only queries
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TRANSPORT_FAULTS | INSTRUMENT_FAULTS:
            raise ValueError(f"fault kind must be one of "
                             f"{sorted(TRANSPORT_FAULTS | INSTRUMENT_FAULTS)}, got {self.kind!r}")
        if self.after < 1:
            raise ValueError(f"fault 'after' is 1-based, got {self.after}")
        if self.times < 0 or self.delay < 0:
            raise ValueError("fault 'times' and 'delay' must be >= 0")

    def check(self, line: str) -> bool:
        if self.match and self.match not in line:
            return False
        if self.queries and not is_query(line):
            return False
        self.seen += 1
        if self.seen < self.after or (self.times and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class FaultRecord:
    instrument: str
    line: str
    kind: FaultKind


@dataclass
class FaultPlan:
    """The fault rules of one instrument and the log of the faults that fired."""

    rules: list[FaultRule] = field(default_factory=list)
    log: list[FaultRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: FaultKind, match: str = "", after: int = 1, times: int = 1,
            **kw: float | str | bool) -> FaultRule:
        rule = FaultRule(kind, match, after, times, **kw)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def fire(self, instrument: str, line: str) -> list[FaultRule]:
        """The rules that fire on `line` (each rule counts the line once)."""
        with self._lock:
            hits = [r for r in self.rules if r.check(line)]
            self.log.extend(FaultRecord(instrument, line, r.kind) for r in hits)
        return hits
