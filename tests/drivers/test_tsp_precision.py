"""Readings of the 2600B are not rounded by its print format: the driver sets
format.asciiprecision. Checked against the 2600B emulator, which prints numbers as the
instrument does: `format.asciiprecision` significant digits (1 .. 16, default 6), as the 2600B
reference manual describes them."""

from __future__ import annotations

import threading

from xbarlab.drivers.emulators.smu_2600 import Smu2600
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.transports import CallbackTransport

I_TRUE = 1.2345678901234e-5  # A: more significant digits than the default print shows


class ManyDigitsLoad:
    """Whatever the level, an output that is on drives `I_TRUE`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        return (I_TRUE if ch.output else 0.0), False

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        return I_TRUE, False

    def changed(self, ch: SmuChannel) -> None:
        return None


def _instrument() -> Smu2600:
    return Smu2600("smu", ManyDigitsLoad())  # the manual's format.asciiprecision, default 6


def test_the_default_print_format_rounds_to_six_digits() -> None:
    emu = _instrument()
    emu.handle("smua.source.output = smua.OUTPUT_ON")
    reply = emu.handle("print(smua.measure.i())")
    assert reply == "1.23457e-05" and float(reply) != I_TRUE


def test_readings_through_the_driver_keep_every_digit() -> None:
    emu = _instrument()
    k = Keithley2600Channel(CallbackTransport(lambda line, q: emu.handle(line)), "a", "smu.a")
    k.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    k.set_voltage(0.2)
    k.enable()
    assert k.measure().current == I_TRUE
    assert k.errors() == []
