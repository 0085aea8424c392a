"""The roles a bench is made of. Drivers implement them; `BenchCrossbar` knows nothing else.

- `SourceMeter`: one SMU channel that sources a voltage and measures current under a
  compliance limit (a two-channel 2600B is two `SourceMeter` objects).
- `SwitchMatrix`: relays that connect instrument buses (matrix rows, letters) to device pins
  (matrix columns, numbers) of a card slot.
- `Board`: a custom crossbar board that drives and senses the lines itself.

Sign convention of `SourceMeter`: positive current flows out of the SMU's HI terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Measurement:
    """One source-measure reading."""

    voltage: float  # V, the source level (or the measured voltage where the instrument gives it)
    current: float  # A, out of HI
    compliance: bool  # the current limit was reached


@dataclass(frozen=True, slots=True, order=True)
class Crosspoint:
    """One matrix relay: card `slot`, instrument bus `row` (letter), device pin `col` (1-based)."""

    slot: int
    row: str
    col: int

    def __str__(self) -> str:
        return f"{self.slot}{self.row}{self.col:02d}"


@runtime_checkable
class Instrumented(Protocol):
    """What every role shares: identity, error queue, safe state, close."""

    name: str

    def connect(self, expect: str | None = None) -> str:
        """Open the link, read and check the identity; returns it."""
        ...

    def errors(self) -> list[str]:
        """Drain the instrument's error queue; an empty list means no error."""
        ...

    def safe_state(self) -> None:
        """Abort anything running, 0 V, outputs off / relays open, confirmed by the instrument.
        Idempotent. If it fails, the link is reopened once and it is tried again."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class SourceMeter(Instrumented, Protocol):
    """One SMU channel used as a voltage source with a current compliance."""

    @property
    def output_on(self) -> bool:
        """False only once the instrument itself answered that its output is off (a query
        sent after the off command); True after anything that may switch it on, and before
        the first confirmation. Break-before-make relies on it."""
        ...

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        """Voltage-source mode at 0 V, current `compliance` (A), overvoltage protection at the
        smallest level >= `v_protect` (V), integration time `nplc`. Output stays off."""
        ...

    def set_voltage(self, volts: float) -> None:
        ...

    def enable(self) -> None:
        """Output on (compliance must already be configured)."""
        ...

    def disable(self) -> None:
        """0 V, output off, and wait until the instrument confirms the output off (raises if
        it does not)."""
        ...

    def measure(self) -> Measurement:
        """Measure current (and the compliance flag) at the present source level."""
        ...

    def pulse(self, volts: float, width: float) -> Measurement:
        """One voltage pulse from 0 V to `volts` for `width` s with the instrument's own pulse
        mechanism, output returning to 0 V; the current measured near the end of the pulse
        (NaN where the instrument cannot measure during the pulse)."""
        ...

    def arm_pulse(self, volts: float, width: float) -> None:
        """Everything `pulse` configures, without firing (so the bias lines can be raised
        only just before the pulse)."""
        ...

    def fire_pulse(self) -> Measurement:
        """Fire the armed pulse; same result as `pulse`."""
        ...

    @property
    def pulse_width_range(self) -> tuple[float, float]:
        """(shortest, longest) pulse this instrument produces honestly (s)."""
        ...


@runtime_checkable
class SwitchMatrix(Instrumented, Protocol):
    """Relays between instrument buses and device pins. Break-before-make is the caller's
    duty (see `xbarlab.bench.safety`); the driver sets its own connect rule as well."""

    def configure(self) -> None:
        """Break-before-make connect rule, all relays open."""
        ...

    def close_crosspoints(self, points: Iterable[Crosspoint]) -> None:
        ...

    def open_all(self) -> None:
        ...

    def closed(self) -> set[Crosspoint]:
        """The relays the instrument reports closed."""
        ...


@runtime_checkable
class Board(Instrumented, Protocol):
    """A crossbar board with its own line drivers, selector and sense amplifier."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) as configured (the board reports its own in `connect`)."""
        ...

    def configure(self, compliance: float) -> None:
        ...

    def set_lines(self, row_v: Sequence[float], col_v: Sequence[float]) -> None:
        """Line potentials (V); NaN leaves a line floating."""
        ...

    def select(self, row: int, col: int) -> None:
        ...

    def read(self, volts: float) -> Measurement:
        """Drive the selected row at `volts`, sense the selected column (current into it)."""
        ...

    def pulse(self, volts: float, width: float) -> Measurement:
        ...

    def column_currents(self) -> list[Measurement]:
        """Current into every column held at 0 V, for MVM (`current` positive into the column)."""
        ...

    def off(self) -> None:
        """Every line driver at 0 V and floating, nothing selected (the end of each
        operation; `safe_state` is the same with one link reopen when it fails)."""
        ...
