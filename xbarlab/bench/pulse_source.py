"""The `PulseSource` role: a pulse/function generator that makes one voltage pulse per software
trigger (drivers: `xbarlab.drivers.keysight33500`). `PulseBenchCrossbar` routes it through the
switch matrix to the selected row; SMUs read.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from xbarlab.bench.roles import Instrumented


@runtime_checkable
class PulseSource(Instrumented, Protocol):
    """One generator output used for single programming pulses from 0 V."""

    @property
    def output_on(self) -> bool:
        """False only once the instrument itself answered that its output is off."""
        ...

    @property
    def pulse_width_range(self) -> tuple[float, float]:
        """(shortest, longest) pulse width (s) this driver accepts."""
        ...

    @property
    def edge_min(self) -> float:
        """Shortest edge (10-90 %) time (s)."""
        ...

    def configure(self, v_high: float, v_low: float) -> None:
        """Pulse function, single pulse per software trigger, high-impedance load, the
        instrument's own output voltage limits at [`v_low`, `v_high`] (the bench's RESET and
        SET amplitude limits). Output off (confirmed)."""
        ...

    def arm(self, volts: float, width: float, edge: float) -> None:
        """Levels, width and edges of one pulse from 0 V to `volts`; output on, idling at 0 V."""
        ...

    def fire(self) -> None:
        """Trigger the armed pulse and wait until the instrument has produced it."""
        ...

    def disable(self) -> None:
        """Output off, confirmed by the instrument."""
        ...
