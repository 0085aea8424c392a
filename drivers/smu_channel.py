"""One channel of a multi-channel SMU that sources from a fixed voltage range (2600B, B2900).

What the 2600B and B2900 drivers share beyond `SourceMeterBase`: the channel (checked at
construction, ``{ch}`` in every command template), the read integration time restored after a
pulse, and the fixed source range: a level or pulse beyond `voltage_range` raises
`SettingError` before anything is sent (the instrument would refuse it too, but only after the
line was on its way).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from xbarlab.drivers.base import Setting, SettingError, SmuLimits, SourceMeterBase
from xbarlab.drivers.transports import Transport


class ChannelSourceMeter(SourceMeterBase):
    """Base of per-channel SMU drivers; subclasses set `MODEL`, `CHANNELS`, `SOURCE_RANGES`
    and declare the `voltage_range` setting (sent by `configure`)."""

    MODEL: ClassVar[str]  # as in names and messages: "2600B", "B2900"
    CHANNELS: ClassVar[tuple[Hashable, ...]]
    SOURCE_RANGES: ClassVar[tuple[float, ...]]  # V, the voltage source ranges, ascending
    voltage_range: Setting[float]

    def __init__(self, transport: Transport, channel: Hashable, name: str = "",
                 limits: SmuLimits | None = None) -> None:
        if channel not in self.CHANNELS:
            allowed = " or ".join(repr(c) for c in self.CHANNELS)
            raise SettingError(f"{self.MODEL} channel must be {allowed}, got {channel!r}")
        self.channel = channel
        super().__init__(transport, name or f"{self.MODEL}.{channel}", limits)

    def range_for(self, volts: float) -> float:
        """The smallest voltage source range (V) whose full scale covers |volts|."""
        r = next((r for r in self.SOURCE_RANGES if r >= abs(volts)), None)
        if r is None:
            raise SettingError(f"{self.name}: {volts:g} V is beyond the largest source range "
                               f"{self.SOURCE_RANGES[-1]:g} V")
        return r

    def backstop_range(self) -> float:
        """The fixed source range covering the bench v_max (the hardware backstop: the
        instrument cannot source beyond it)."""
        return self.range_for(self.limits.v_max)

    def fields(self) -> dict[str, object]:
        return {"ch": self.channel}

    def check_source_range(self, what: str, volts: float) -> None:
        """Raise unless |volts| is within the fixed source range (when one is set)."""
        rng = self.voltage_range
        if rng is not None and abs(volts) > rng:
            raise SettingError(f"{self.name}.{what}: {volts:g} V is beyond the fixed source "
                               f"range {rng:g} V")

    def set_voltage(self, volts: float) -> None:
        self.check_source_range("voltage", volts)
        self.voltage = volts

    def check_pulse(self, volts: float, width: float) -> tuple[float, float]:
        v, w = super().check_pulse(volts, width)
        self.check_source_range("pulse voltage", v)
        return v, w
