"""Keithley 2600B System SourceMeter (TSP), one `SourceMeter` role per channel (a or b).

Every line the driver sends is in `Cmd` (``{ch}`` is the channel letter); `guard` refuses any
other line, or one beyond the driver's `SmuLimits`, before it is sent (a raw
``smua.source.levelv = 9`` included). Manual: Series 2600B Reference Manual (2600BS-901-01),
section 7 "TSP command reference" (smuX.source.*, smuX.measure.*, bufferVar.*, errorqueue.*,
format.asciiprecision; "Range considerations" in section 2) and the KIPulse factory script
(section 5 "Factory scripts": ConfigPulseVMeasureI, InitiatePulseTest, and its example).
TSP queries are ``print(...)`` statements; ``print`` of several values separates them with a tab.

Identity: ``*IDN?``, compared with the bench config before any other command is sent; then the
error queue is drained (``print(errorqueue.count)``, ``print(errorqueue.next())``): errors left
by an earlier session are logged and kept in `cleared_errors`, and do not stop this one.
After a query timeout the link is cleared and checked with ``print("xbl-sync-<n>")`` (a unique
token) before anything else is sent, so a late reply is never read as the next answer.

Configuration (output off throughout)::

    smu{ch}.reset()
    format.asciiprecision = 16              # print() numbers with 16 significant digits (the
                                            # most the 2600B allows; its default is 6)
    smu{ch}.source.func = smu{ch}.OUTPUT_DCVOLTS
    smu{ch}.source.autorangev = smu{ch}.AUTORANGE_OFF
    smu{ch}.source.rangev = <r>             # the smallest source range (0.2, 2, 20, 200 V)
                                            # covering the bench v_max: 2 V for v_max <= 2 V,
                                            # 20 V for 3 V. The hardware backstop: the 2600B
                                            # has no programmable overvoltage level in
                                            # voltage-source mode, and cannot source beyond
                                            # its fixed range
    smu{ch}.source.levelv = 0
    smu{ch}.source.limiti = <A>             # compliance, before any output on
    smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON
    smu{ch}.measure.nplc = <n>
    print(smu{ch}.source.output, smu{ch}.source.levelv)   # -> 0\t0: confirmed off at 0 V

Output: ``smu{ch}.source.output = smu{ch}.OUTPUT_ON`` (only after the compliance is set);
off is ``smu{ch}.source.levelv = 0``, ``smu{ch}.source.output = smu{ch}.OUTPUT_OFF``, then
``print(smu{ch}.source.output, smu{ch}.source.levelv)`` must answer ``0\t0`` (``OUTPUT_OFF``;
2 = ``OUTPUT_HIGH_Z`` is off too; the level must be 0 V).

Measurement: ``print(smu{ch}.measure.i(), smu{ch}.source.compliance)`` ->
``<I>\t<true|false>``, the number with exactly 16 significant digits (a reply in another
format, e.g. 15 digits, is not an answer to this query). Error queue (shared by both
channels): ``print(errorqueue.count)`` and ``print(errorqueue.next())`` ->
``<code>\t<message>\t<severity>\t<node>``.

Pulses use the KIPulse factory script, set up as in the manual's example: every source and
measure range fixed (the KIPulse functions refuse to run with any range on auto), autozero
once, buffer append mode 1::

    smu{ch}.source.rangei = <limit>         # setting a range turns its autorange off
    smu{ch}.measure.rangev = <r>
    smu{ch}.measure.rangei = <limit>
    smu{ch}.measure.nplc = 0.001            # the reading must fit inside the pulse
    smu{ch}.measure.autozero = smu{ch}.AUTOZERO_ONCE
    smu{ch}.nvbuffer1.clear()
    smu{ch}.nvbuffer1.appendmode = 1
    print(ConfigPulseVMeasureI(smu{ch}, 0, <V>, <limit>, <ton>, <toff>, 1, smu{ch}.nvbuffer1, 1))
                                            # -> true\t<msg>; false\t<msg> is an error (msg)
    print(InitiatePulseTest(1))             # -> true\t<msg> (false: the message says why)
    print(smu{ch}.nvbuffer1.readings[1])    # the current at the end of the pulse
  then, whatever happened (restore):
    smu{ch}.source.autorangei = smu{ch}.AUTORANGE_ON
    smu{ch}.measure.autorangev = smu{ch}.AUTORANGE_ON
    smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON
    smu{ch}.measure.autozero = smu{ch}.AUTOZERO_AUTO
    smu{ch}.measure.nplc = <n>
    smu{ch}.nvbuffer1.clear()
    smu{ch}.nvbuffer1.appendmode = 0
    smu{ch}.source.levelv = 0               # the pulse train ends at its bias (0 V): the
                                            # driver's cached level says so too
    smu{ch}.source.output = smu{ch}.OUTPUT_OFF   # only if the output was off before

Widths 100 µs (the 2600B's minimum programmable pulse width, specifications "Pulse
characteristics"; the 0.001 NPLC reading, 20 µs at 50 Hz, fits inside) .. 1 s; shorter ones
are refused before anything is sent. A reading at or beyond the 9.91e37 overflow marker is an
error; the compliance of a pulse is inferred from the reading (|I| >= 99.9 % of the limit),
since the pulse returns to 0 V before it can be queried.

Safe state: ``smu{ch}.abort()``, ``smu{ch}.source.levelv = 0``,
``smu{ch}.source.output = smu{ch}.OUTPUT_OFF``, confirmed by the output-state query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import ClassVar

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    OVERFLOW,
    Instrument,
    ReplyError,
    Setting,
    SmuLimits,
    fmt,
    in_range,
)
from xbarlab.drivers.smu_channel import ChannelSourceMeter
from xbarlab.drivers.transports import Transport

log = logging.getLogger(__name__)

PULSE_TAG = 1
PULSE_OFF_TIME = 1e-3  # s at 0 V after the pulse, inside the pulse train
PULSE_NPLC = 0.001
ASCII_DIGITS = 16  # significant digits of printed numbers (format.asciiprecision: 1 .. 16)
SOURCE_RANGES = (0.2, 2.0, 20.0, 200.0)  # V, 2611B/2612B/2614B/2634B/2635B/2636B


class Cmd:
    IDN = "*IDN?"
    SYNC = 'print("xbl-sync-{token}")'
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
    # KIPulse set-up (ranges fixed, autozero once, append mode 1) and its restore
    SOURCE_RANGE_I = "smu{ch}.source.rangei = {value}"
    MEASURE_RANGE_V = "smu{ch}.measure.rangev = {value}"
    MEASURE_RANGE_I = "smu{ch}.measure.rangei = {value}"
    AUTOZERO_ONCE = "smu{ch}.measure.autozero = smu{ch}.AUTOZERO_ONCE"
    CLEAR_BUFFER = "smu{ch}.nvbuffer1.clear()"
    APPEND = "smu{ch}.nvbuffer1.appendmode = 1"
    CONFIG_PULSE = ("print(ConfigPulseVMeasureI(smu{ch}, 0, {level}, {limit}, {ton}, {toff}, 1, "
                    "smu{ch}.nvbuffer1, {tag}))")
    INITIATE_PULSE = "print(InitiatePulseTest({tag}))"
    PULSE_READING = "print(smu{ch}.nvbuffer1.readings[1])"
    AUTO_SOURCE_I = "smu{ch}.source.autorangei = smu{ch}.AUTORANGE_ON"
    AUTO_MEASURE_V = "smu{ch}.measure.autorangev = smu{ch}.AUTORANGE_ON"
    AUTOZERO_AUTO = "smu{ch}.measure.autozero = smu{ch}.AUTOZERO_AUTO"
    NO_APPEND = "smu{ch}.nvbuffer1.appendmode = 0"


TSP_NUMBER = re.compile(r"^[+-]?\d(\.\d*)?[eE][+-]\d+$")
"""How ``print`` writes a number (``0.00000e+00``; the digits follow format.asciiprecision)."""

TSP_NUMBER_16 = re.compile(r"^[+-]?\d\.\d{15}e[+-]\d\d\d?$")
"""A number printed at ``format.asciiprecision = 16`` (set by `configure`): 16 digits."""


def tsp_number(inst: Instrument, reply: str, command: str,
               form: re.Pattern[str] = TSP_NUMBER) -> float:
    """One printed number, complete: a reply cut short loses its exponent (``0.0000000``) and
    is refused instead of being read as a plausible value; with `form` the exact format."""
    if not form.match(reply.strip()):
        raise ReplyError(f"{inst.name}: reply to {command!r} is not a complete TSP number "
                         f"({form.pattern}): {reply!r}")
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


def clear_stale_errors(inst: Instrument,
                       drain: Callable[[Instrument], list[str]] | None = None) -> list[str]:
    """Drain the error queue at connect (`drain`: the TSP queue by default): errors an earlier
    session left are logged (and returned), not blamed on this one."""
    stale = (drain or tsp_errors)(inst)
    if stale:
        log.warning("%s: cleared %d error(s) left in the error queue by an earlier session: "
                    "%s", inst.name, len(stale), "; ".join(stale))
    return stale


class Keithley2600Channel(ChannelSourceMeter):
    """One channel (``"a"`` or ``"b"``) of a 2600B. Two channels may share one transport."""

    MODEL = "2600B"
    CHANNELS = ("a", "b")
    CMD = Cmd
    SYNC = Cmd.SYNC
    READ_ONLY = re.compile(r"print\(\s*[A-Za-z_][\w.]*(?:\[\d+\])?"
                           r"(?:\s*,\s*[A-Za-z_][\w.]*(?:\[\d+\])?)*\s*\)")
    """``print(<attribute>, ...)``: reads attributes, calls nothing."""
    V_MAX = 200.0
    PULSE_WIDTH_RANGE = (100e-6, 1.0)
    SOURCE_RANGES = SOURCE_RANGES
    LIMITED: ClassVar[dict[str, dict[str, str]]] = {
        "RANGE": {"value": "range"}, "LEVEL": {"value": "volts"},
        "ILIMIT": {"value": "amps"}, "SOURCE_RANGE_I": {"value": "amps"},
        "MEASURE_RANGE_V": {"value": "range"}, "MEASURE_RANGE_I": {"value": "amps"},
        "CONFIG_PULSE": {"level": "pulse", "limit": "amps", "ton": "width",
                         "toff": "any"}}

    voltage = Setting[float](Cmd.LEVEL, in_range(-200.0, 200.0, " V"), "source level (V)")
    current_limit = Setting[float](Cmd.ILIMIT, in_range(1e-9, 1.5, " A"), "compliance (A)")
    nplc = Setting[float](Cmd.NPLC, in_range(0.001, 25.0), "integration (power line cycles)")
    voltage_range = Setting[float](Cmd.RANGE, in_range(0.1, 200.0, " V"), "fixed range (V)")

    def __init__(self, transport: Transport, channel: str = "a", name: str = "",
                 limits: SmuLimits | None = None) -> None:
        super().__init__(transport, channel, name, limits)
        self.cleared_errors: list[str] = []

    def connect(self, expect: str | None = None) -> str:
        idn = super().connect(expect)
        self.cleared_errors = clear_stale_errors(self)
        return idn

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        self.check_setup(compliance, v_protect)
        self.write(self.line(Cmd.RESET))
        self.write(Cmd.ASCII_PRECISION.format(value=ASCII_DIGITS))
        self.write(self.line(Cmd.VOLTAGE_MODE))
        self.write(self.line(Cmd.FIXED_RANGE))
        self.voltage_range = self.range_for(v_protect)
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

    def _current(self, reply: str, command: str) -> float:
        i = tsp_number(self, reply, command, TSP_NUMBER_16)
        if abs(i) >= OVERFLOW:
            raise ReplyError(f"{self.name}: {command!r} returned overflow {reply!r}")
        return i

    def measure(self) -> Measurement:
        cmd = self.line(Cmd.MEASURE)
        reply = self.query(cmd)
        parts = reply.split("\t")
        if len(parts) != 2:
            raise ReplyError(f"{self.name}: reply to {cmd!r} should be '<I>\\t<compliance>', "
                             f"got {reply!r}")
        i = self._current(parts[0], cmd)
        comp = self.parse_flag(parts[1], cmd, "true", "false")
        return Measurement(float(self.voltage or 0.0), i, comp)

    def _ok(self, cmd: str) -> str:
        """A KIPulse call printed as ``true|false\\t<message>``; false raises with the
        message."""
        reply = self.query(cmd)
        parts = reply.split("\t")
        if len(parts) != 2 or parts[0] not in ("true", "false"):
            raise ReplyError(f"{self.name}: reply to {cmd!r} is not 'true|false\\t<message>': "
                             f"{reply!r}")
        if parts[0] == "false":
            raise ReplyError(f"{self.name}: {cmd!r} refused: {parts[1].strip() or reply!r}")
        return parts[1]

    def arm_pulse(self, volts: float, width: float) -> None:
        """Fix every range, autozero once, append mode 1, configure the KIPulse train (no output
        change yet). On failure everything is restored."""
        v, w = self.check_pulse(volts, width)
        assert self.compliance is not None and self.voltage_range is not None
        limit = fmt(self.compliance)
        self._cache["before"] = (self._output_on, 0.0)
        try:
            self.write(self.line(Cmd.SOURCE_RANGE_I, value=limit))
            self.write(self.line(Cmd.MEASURE_RANGE_V, value=fmt(self.voltage_range)))
            self.write(self.line(Cmd.MEASURE_RANGE_I, value=limit))
            self.nplc = PULSE_NPLC
            self.write(self.line(Cmd.AUTOZERO_ONCE))
            self.write(self.line(Cmd.CLEAR_BUFFER))
            self.write(self.line(Cmd.APPEND))
            self._ok(self.line(Cmd.CONFIG_PULSE, level=fmt(v), limit=limit, ton=fmt(w),
                               toff=fmt(PULSE_OFF_TIME), tag=PULSE_TAG))
        except BaseException:
            self._restore_after_failure()
            raise
        self._cache["armed"] = (v, w)

    def fire_pulse(self) -> Measurement:
        v, _ = self._armed()
        assert self.compliance is not None
        self._output_on = True  # InitiatePulseTest switches the output on
        try:
            self._ok(Cmd.INITIATE_PULSE.format(tag=PULSE_TAG))
            cmd = self.line(Cmd.PULSE_READING)
            i = self._current(self.query(cmd), cmd)
        except BaseException:
            self._restore_after_failure()
            raise
        self._restore()
        return Measurement(v, i, abs(i) >= 0.999 * self.compliance)

    def _restore(self) -> None:
        """Every setting the pulse changed back to the read set-up, the source at the train's
        bias (0 V, cached as such), the output off again if it was off before (every step
        tried; the first failure raised after)."""
        was_on, _ = self._cache.pop("before", (True, 0.0))
        steps = [self.line(t) for t in (Cmd.AUTO_SOURCE_I, Cmd.AUTO_MEASURE_V, Cmd.AUTORANGE_I,
                                        Cmd.AUTOZERO_AUTO)]
        first: BaseException | None = None
        for line in steps:
            try:
                self.write(line)
            except BaseException as exc:
                first = first or exc
        for step in (lambda: setattr(self, "nplc", self._read_nplc),
                     lambda: self.write(self.line(Cmd.CLEAR_BUFFER)),
                     lambda: self.write(self.line(Cmd.NO_APPEND)),
                     lambda: setattr(self, "voltage", 0.0)):
            try:
                step()
            except BaseException as exc:
                first = first or exc
        if not was_on:
            try:
                self.write(self.line(Cmd.OUTPUT_OFF))
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first

    def errors(self) -> list[str]:
        return tsp_errors(self)
