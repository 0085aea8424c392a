"""What an emulated SMU channel shares with the emulated bench: its source state and its load.

An SMU emulator keeps one `SmuChannel` per channel and asks its `Load` (the emulated wiring,
`xbarlab.drivers.emulators.wiring`) for the current out of its HI terminal. Without a bench the
load is an open circuit (0 A).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SmuChannel:
    """Source state of one SMU channel as the instrument holds it."""

    key: str  # instrument name and channel as in a bench config, e.g. "smu.a" or "bias_rows"
    level: float = 0.0  # V
    output: bool = False
    limit: float = 1e-4  # A, current compliance
    force_trip: bool = False  # fault injection: the next measurement reports compliance

    @property
    def safe(self) -> bool:
        return not self.output and self.level == 0.0


class Load(Protocol):
    """What an SMU channel is connected to."""

    lock: threading.RLock

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        """(current out of HI (A), compliance) at the channel's present state."""
        ...

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        """The channel at `volts` (output on) for `width` s; the devices evolve; returns the
        current during the pulse and its compliance flag."""
        ...

    def changed(self, ch: SmuChannel) -> None:
        """The channel's output or level changed (the bench checks shorts and hot switching)."""
        ...


@dataclass
class OpenCircuit:
    """Nothing connected: no current flows."""

    lock: threading.RLock = field(default_factory=threading.RLock)

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        return 0.0, False

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        return 0.0, False

    def changed(self, ch: SmuChannel) -> None:
        return None


def clip(current: float, limit: float) -> tuple[float, bool]:
    """A voltage source at its current limit: |I| clipped to `limit`, flagged."""
    if abs(current) > limit:
        return math.copysign(limit, current), True
    return current, False


def measure(load: Load, ch: SmuChannel) -> tuple[float, bool]:
    """Measure through `load`, honouring an injected compliance trip."""
    if ch.force_trip:
        ch.force_trip = False
        return ch.limit, True
    with load.lock:
        return load.measure(ch)
