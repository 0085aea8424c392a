"""Keithley 2600B System SourceMeter (TSP), one `SourceMeter` role per channel (a or b).

Every line the driver sends is in `Cmd` (``{ch}`` is the channel letter). TSP queries are
``print(...)`` statements; ``print`` of several values separates them with a tab.

Identity: ``*IDN?``, compared with the bench config before any other command is sent.

Configuration (output off throughout)::

    smu{ch}.reset()
    format.asciiprecision = 16              # print() numbers with 16 significant digits (the
                                            # most the 2600B allows; its default is 6, which
                                            # rounds every reading to 6 digits)
    smu{ch}.source.func = smu{ch}.OUTPUT_DCVOLTS
    smu{ch}.source.autorangev = smu{ch}.AUTORANGE_OFF
    smu{ch}.source.rangev = <v_protect>     # fixed range covering the bench v_max: the 2600B
                                            # refuses levels beyond the range (its overvoltage
                                            # guard in voltage-source mode)
    smu{ch}.source.levelv = 0
    smu{ch}.source.limiti = <A>             # compliance, before any output on
    smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON
    smu{ch}.measure.nplc = <n>
    print(smu{ch}.source.output, smu{ch}.source.levelv)   # -> 0\t0: confirmed off at 0 V

Output: ``smu{ch}.source.output = smu{ch}.OUTPUT_ON`` (only after the compliance is set);
off is ``smu{ch}.source.levelv = 0``, ``smu{ch}.source.output = smu{ch}.OUTPUT_OFF``, then
``print(smu{ch}.source.output, smu{ch}.source.levelv)`` must answer ``0\t0`` (``OUTPUT_OFF``;
2 = ``OUTPUT_HIGH_Z`` is off too; the level must be 0 V): the query runs only after the off
statement, so relays never switch on an output that is still on. Two values, so that a reply
cut short (no tab) cannot pass for "off".

Measurement: ``print(smu{ch}.measure.i(), smu{ch}.source.compliance)`` ->
``<I>\\t<true|false>``. Error queue (shared by both channels): ``print(errorqueue.count)`` and
``print(errorqueue.next())`` -> ``<code>\\t<message>\\t<severity>\\t<node>``.

Pulses use the KIPulse factory script (hardware-timed pulse train of one pulse, measured at
the end of the on time)::

    smu{ch}.nvbuffer1.clear()
    smu{ch}.measure.nplc = 0.001            # the measurement must fit inside the pulse
    print(ConfigPulseVMeasureI(smu{ch}, 0, <V>, <limit>, <width>, <toff>, 1, smu{ch}.nvbuffer1, 1))
    print(InitiatePulseTest(1))             # -> true\\t<message> (false: the message says why)
    print(smu{ch}.nvbuffer1.readings[1])
    smu{ch}.measure.nplc = <n>              # back to the read setting

Widths 100 us .. 1 s are accepted. The compliance of a pulse is inferred from the reading
(|I| >= 99.9 % of the limit), since the pulse returns to 0 V before it can be queried.

Safe state: ``smu{ch}.abort()``, ``smu{ch}.source.levelv = 0``,
``smu{ch}.source.output = smu{ch}.OUTPUT_OFF``, confirmed by the output-state query.
"""

from __future__ import annotations

import re

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    OVERFLOW,
    Instrument,
    ReplyError,
    Setting,
    fmt,
    in_range,
)
from xbarlab.drivers.smu_channel import ChannelSourceMeter
from xbarlab.drivers.transports import Transport

PULSE_TAG = 1
PULSE_OFF_TIME = 1e-3  # s at 0 V after the pulse, inside the pulse train
PULSE_NPLC = 0.001
ASCII_DIGITS = 16  # significant digits of printed numbers (format.asciiprecision: 1 .. 16)


class Cmd:
    IDN = "*IDN?"
    RESET = "smu{ch}.reset()"
    ASCII_PRECISION = "format.asciiprecision = {value}"
    VOLTAGE_MODE = "smu{ch}.source.func = smu{ch}.OUTPUT_DCVOLTS"
    FIXED_RANGE = "smu{ch}.source.autorangev = smu{ch}.AUTORANGE_OFF"
    RANGE = "smu{ch}.source.rangev = {value}"
    LEVEL = "smu{ch}.source.levelv = {value}"
    ILIMIT = "smu{ch}.source.limiti = {value}"
    AUTORANGE_I = "smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON"
    NPLC = "smu{ch}.measure.nplc = {value}"
    OUTPUT_ON = "smu{ch}.source.output = smu{ch}.OUTPUT_ON"
    OUTPUT_OFF = "smu{ch}.source.output = smu{ch}.OUTPUT_OFF"
    OUTPUT_STATE = "print(smu{ch}.source.output, smu{ch}.source.levelv)"
    MEASURE = "print(smu{ch}.measure.i(), smu{ch}.source.compliance)"
    ABORT = "smu{ch}.abort()"
    ERROR_COUNT = "print(errorqueue.count)"
    ERROR_NEXT = "print(errorqueue.next())"
    CLEAR_BUFFER = "smu{ch}.nvbuffer1.clear()"
    CONFIG_PULSE = ("print(ConfigPulseVMeasureI(smu{ch}, 0, {level}, {limit}, {ton}, {toff}, 1, "
                    "smu{ch}.nvbuffer1, {tag}))")
    INITIATE_PULSE = "print(InitiatePulseTest({tag}))"
    PULSE_READING = "print(smu{ch}.nvbuffer1.readings[1])"


TSP_NUMBER = re.compile(r"^[+-]?\d(\.\d*)?[eE][+-]\d+$")
"""How ``print`` writes a number (``0.00000e+00``; the digits follow format.asciiprecision)."""


def tsp_number(inst: Instrument, reply: str, command: str) -> float:
    """One printed number, complete: a reply cut short loses its exponent (``0.0000000``) and
    is refused instead of being read as a plausible value."""
    if not TSP_NUMBER.match(reply.strip()):
        raise ReplyError(f"{inst.name}: reply to {command!r} is not a complete TSP number "
                         f"(<d.ddd>e<+-dd>): {reply!r}")
    return inst.parse_float(reply, command)


def tsp_errors(inst: Instrument, limit: int = 64) -> list[str]:
    """Drain a TSP error queue (``errorqueue.count`` / ``errorqueue.next()``)."""
    reply = inst.query(Cmd.ERROR_COUNT)
    tsp_number(inst, reply, Cmd.ERROR_COUNT)
    n = inst.parse_int(reply, Cmd.ERROR_COUNT)
    out = []
    for _ in range(min(n, limit)):
        reply = inst.query(Cmd.ERROR_NEXT)
        parts = reply.split("\t")
        if len(parts) != 4:  # errorCode, message, severity, errorNode: all four or truncated
            raise ReplyError(f"{inst.name}: reply to {Cmd.ERROR_NEXT!r} should be "
                             f"'<code>\\t<message>\\t<severity>\\t<node>', got {reply!r}")
        code = inst.parse_int(parts[0], Cmd.ERROR_NEXT)
        inst.parse_int(parts[2], Cmd.ERROR_NEXT)
        inst.parse_int(parts[3], Cmd.ERROR_NEXT)
        out.append(f"{code}: {parts[1]}")
    return out


class Keithley2600Channel(ChannelSourceMeter):
    """One channel (``"a"`` or ``"b"``) of a 2600B. Two channels may share one transport."""

    MODEL = "2600B"
    CHANNELS = ("a", "b")
    CMD = Cmd
    V_MAX = 200.0
    PULSE_WIDTH_RANGE = (100e-6, 1.0)

    voltage = Setting[float](Cmd.LEVEL, in_range(-200.0, 200.0, " V"), "source level (V)")
    current_limit = Setting[float](Cmd.ILIMIT, in_range(1e-9, 1.5, " A"), "compliance (A)")
    nplc = Setting[float](Cmd.NPLC, in_range(0.001, 25.0), "integration (power line cycles)")
    voltage_range = Setting[float](Cmd.RANGE, in_range(0.1, 200.0, " V"), "fixed range (V)")

    def __init__(self, transport: Transport, channel: str = "a", name: str = "") -> None:
        super().__init__(transport, channel, name)

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        self.write(self.line(Cmd.RESET))
        self.write(Cmd.ASCII_PRECISION.format(value=ASCII_DIGITS))
        self.write(self.line(Cmd.VOLTAGE_MODE))
        self.write(self.line(Cmd.FIXED_RANGE))
        self.voltage_range = v_protect
        self.voltage = 0.0
        self.current_limit = compliance
        self.write(self.line(Cmd.AUTORANGE_I))
        self.nplc = nplc
        self._read_nplc = float(nplc)
        self.compliance = compliance
        self.confirm_off()

    def parse_output(self, reply: str, command: str) -> bool:
        """``<state>\\t<level>``: state 0 = OUTPUT_OFF, 2 = OUTPUT_HIGH_Z (off), 1 = OUTPUT_ON;
        an output that is off but not at 0 V counts as on (not safe to switch around)."""
        parts = reply.split("\t")
        if len(parts) != 2:
            raise ReplyError(f"{self.name}: reply to {command!r} should be "
                             f"'<state>\\t<level>', got {reply!r}")
        state = self.parse_int(parts[0], command)
        if state not in (0, 1, 2):
            raise ReplyError(f"{self.name}: reply to {command!r} is not an output state "
                             f"(0, 1, 2): {reply!r}")
        return state == 1 or self.parse_float(parts[1], command) != 0.0

    def measure(self) -> Measurement:
        cmd = self.line(Cmd.MEASURE)
        reply = self.query(cmd)
        parts = reply.split("\t")
        if len(parts) != 2:
            raise ReplyError(f"{self.name}: reply to {cmd!r} should be '<I>\\t<compliance>', "
                             f"got {reply!r}")
        i = self.parse_float(parts[0], cmd)
        if abs(i) >= OVERFLOW:
            raise ReplyError(f"{self.name}: {cmd!r} returned overflow {reply!r}")
        comp = self.parse_bool(parts[1], cmd)
        return Measurement(float(self.voltage or 0.0), i, comp)

    def _ok(self, cmd: str) -> None:
        reply = self.query(cmd)
        flag, _, msg = reply.partition("\t")
        if flag.strip() == "false":
            raise ReplyError(f"{self.name}: {cmd!r} failed: {msg.strip() or reply!r}")
        if flag.strip() != "true":
            raise ReplyError(f"{self.name}: reply to {cmd!r} is not 'true|false\\t<message>': "
                             f"{reply!r}")

    def arm_pulse(self, volts: float, width: float) -> None:
        """Configure the KIPulse train (no output change yet)."""
        v, w = self.check_pulse(volts, width)
        assert self.compliance is not None
        self.write(self.line(Cmd.CLEAR_BUFFER))
        self.nplc = PULSE_NPLC
        self._ok(self.line(Cmd.CONFIG_PULSE, level=fmt(v), limit=fmt(self.compliance),
                            ton=fmt(w), toff=fmt(PULSE_OFF_TIME), tag=PULSE_TAG))
        self._cache["armed"] = (v, w)

    def fire_pulse(self) -> Measurement:
        v, _ = self._armed()
        assert self.compliance is not None
        self._output_on = True  # InitiatePulseTest switches the output on
        self._ok(Cmd.INITIATE_PULSE.format(tag=PULSE_TAG))
        cmd = self.line(Cmd.PULSE_READING)
        i = tsp_number(self, self.query(cmd), cmd)
        self.nplc = self._read_nplc
        return Measurement(v, i, abs(i) >= 0.999 * self.compliance)

    def errors(self) -> list[str]:
        return tsp_errors(self)
