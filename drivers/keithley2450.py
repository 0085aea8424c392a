"""Keithley 2450 SourceMeter, SCPI command set, as a `SourceMeter` role.

Every line the driver sends is in `Cmd` (one place; an emulator implements exactly these), and
`SourceMeterBase.guard` refuses any other line, or one beyond the driver's `SmuLimits`, before
it is sent. Manual: Model 2450 Reference Manual (2450-901-01), section 6 "SCPI command
reference" (the subsystem of each family is named below); trigger model: section 3
"Trigger model", predefined "Empty" model and the building blocks.

Identity: ``*IDN?``, compared with the bench config before any other command is sent.

Configuration (`configure`, output off throughout; :SOURce, :SENSe, :FORMat subsystems)::

    *RST                               # output off, 0 V
    *CLS                               # clears the error queue (left over from a session)
    :FORM:ASC:PREC 16                  # replies with 16 significant digits (the maximum; the
                                       # default, automatic, rounds readings)
    :SOUR:FUNC VOLT
    :SOUR:VOLT:READ:BACK ON            # source values in readings are measured, not the
                                       # programmed level (what the device saw)
    :SOUR:VOLT 0
    :SOUR:VOLT:ILIM <A>                # current limit (compliance), before any output on
    :SOUR:VOLT:PROT PROT<n>            # overvoltage protection: the smallest of 2, 5, 10, 20
                                       # ... 180 V at or above the bench v_max: the hardware
                                       # backstop (the 2450 clamps its output there)
    :SENS:FUNC "CURR"
    :SENS:CURR:RANG:AUTO ON
    :SENS:CURR:NPLC <n>
    :OUTP?                             # -> 0: the output is confirmed off

Output (:OUTPut subsystem): ``:OUTP ON``; off is ``:SOUR:VOLT 0``, ``:OUTP OFF`` then
``:OUTP?`` -> ``0``: the query is answered only once the off command has been executed, so the
bench never switches relays on an output that is still on.

Measurement: ``:READ? "defbuffer1", SOUR, READ`` -> ``<V>,<I>`` (two numbers of exactly 16
significant digits) then ``:SOUR:VOLT:ILIM:TRIP?`` -> ``0``/``1`` (compliance). Error queue:
``:SYST:ERR?`` until ``0,"No error"``.

Pulses use the trigger model (hardware timed, :TRIGger subsystem, :TRACe for the reading)::

    :OUTP OFF                          # 2450 output-off state holds ~0 V
    :SOUR:VOLT <V>
    :SENS:CURR:RANG <limit>            # fixed range: no autorange steps inside the pulse
    :SENS:CURR:NPLC 0.01               # the reading fits at the end of the pulse
    :TRAC:CLE "defbuffer1"
    :TRIG:LOAD "Empty"
    :TRIG:BLOC:SOUR:STAT 1, ON
    :TRIG:BLOC:DEL:CONS 2, <width - aperture>
    :TRIG:BLOC:MEAS 3, "defbuffer1"    # current and source readback at the end of the pulse
    :TRIG:BLOC:SOUR:STAT 4, OFF
    :INIT                              # overlapped: starts the trigger model
    *WAI                               # hold later commands until it has finished
    *OPC?                              # -> 1
    :TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ   # -> <V seen by the device>,<I>
    :SOUR:VOLT:ILIM:TRIP?              # -> 1 if the current limit clamped the pulse
  then, whatever happened (restore):
    :TRIG:LOAD "Empty"                 # unloads the pulse: a later :INIT cannot fire it again
    :SOUR:VOLT 0
    :SENS:CURR:RANG:AUTO ON
    :SENS:CURR:NPLC <n>
    :OUTP ON                           # only if the output was on before the pulse

The reported voltage is the source readback of the reading (what the device saw, after any
protection clamping), the compliance the trip flag or a reading at the limit. Widths 1 ms .. 1
s: the output on/off transitions add settling time, and the reading (0.01 NPLC, 200 µs at
50 Hz) is taken inside the last part of the width.

Safe state: ``:ABOR``, ``:SOUR:VOLT 0``, ``:OUTP OFF``, then ``:OUTP?`` -> ``0``.
"""

from __future__ import annotations

import re
from typing import ClassVar

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    OVERFLOW,
    InstrumentError,
    ReplyError,
    Setting,
    SettingError,
    SourceMeterBase,
    fmt,
    in_range,
    scpi_errors,
)

PROTECTION_LEVELS = (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)  # V
PULSE_NPLC = 0.01
PULSE_APERTURE = PULSE_NPLC / 50.0  # s, the in-pulse reading at 50 Hz (shorter at 60 Hz)
NUMBER_16 = re.compile(r"[+-]?\d\.\d{15}E[+-]\d\d")
"""A number as the 2450 replies at ``:FORM:ASC:PREC 16``: 16 significant digits."""


class Cmd:
    IDN = "*IDN?"
    RESET = "*RST"
    CLEAR = "*CLS"
    ASCII_PRECISION = ":FORM:ASC:PREC 16"
    SOURCE_VOLTAGE_MODE = ":SOUR:FUNC VOLT"
    READBACK = ":SOUR:VOLT:READ:BACK ON"
    LEVEL = ":SOUR:VOLT {value}"
    ILIMIT = ":SOUR:VOLT:ILIM {value}"
    PROTECT = ":SOUR:VOLT:PROT PROT{value}"
    SENSE_CURRENT = ':SENS:FUNC "CURR"'
    AUTORANGE = ":SENS:CURR:RANG:AUTO ON"
    RANGE = ":SENS:CURR:RANG {value}"
    NPLC = ":SENS:CURR:NPLC {value}"
    OUTPUT_ON = ":OUTP ON"
    OUTPUT_OFF = ":OUTP OFF"
    OUTPUT_STATE = ":OUTP?"
    READ = ':READ? "defbuffer1", SOUR, READ'
    TRIPPED = ":SOUR:VOLT:ILIM:TRIP?"
    ERROR = ":SYST:ERR?"
    ABORT = ":ABOR"
    CLEAR_BUFFER = ':TRAC:CLE "defbuffer1"'
    TRIGGER_EMPTY = ':TRIG:LOAD "Empty"'
    BLOCK_ON = ":TRIG:BLOC:SOUR:STAT 1, ON"
    BLOCK_DELAY = ":TRIG:BLOC:DEL:CONS 2, {value}"
    BLOCK_MEASURE = ':TRIG:BLOC:MEAS 3, "defbuffer1"'
    BLOCK_OFF = ":TRIG:BLOC:SOUR:STAT 4, OFF"
    INIT = ":INIT"
    WAIT = "*WAI"
    OPC = "*OPC?"
    PULSE_READING = ':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ'


class Keithley2450(SourceMeterBase):
    """One Keithley 2450 as a voltage source measuring current."""

    CMD = Cmd
    V_MAX = 210.0
    PULSE_WIDTH_RANGE = (1e-3, 1.0)
    LIMITED: ClassVar[dict[str, dict[str, str]]] = {
        "LEVEL": {"value": "volts"}, "ILIMIT": {"value": "amps"},
        "RANGE": {"value": "amps"}, "PROTECT": {"value": "protect"},
        "BLOCK_DELAY": {"value": "dwell"}}

    voltage = Setting[float](Cmd.LEVEL, in_range(-210.0, 210.0, " V"), "source level (V)")
    current_limit = Setting[float](Cmd.ILIMIT, in_range(1e-8, 1.05, " A"), "compliance (A)")
    nplc = Setting[float](Cmd.NPLC, in_range(0.01, 10.0), "integration (power line cycles)")

    def protection_for(self, volts: float) -> int:
        """The smallest protection level (V) at or above `volts`."""
        level = next((p for p in PROTECTION_LEVELS if p >= volts), None)
        if level is None:
            raise SettingError(f"{self.name}.protection: {volts:g} V is above the largest "
                               f"protection level {PROTECTION_LEVELS[-1]} V")
        return level

    def protection_level(self) -> float:
        """The protection level covering the bench v_max: no protection setting above it is
        sent."""
        return float(self.protection_for(self.limits.v_max))

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        self.check_setup(compliance, v_protect)
        level = self.protection_for(v_protect)
        self.write(Cmd.RESET)
        self.write(Cmd.CLEAR)
        self.write(Cmd.ASCII_PRECISION)
        self.write(Cmd.SOURCE_VOLTAGE_MODE)
        self.write(Cmd.READBACK)
        self.voltage = 0.0
        self.current_limit = compliance
        self.write(Cmd.PROTECT.format(value=level))
        self.write(Cmd.SENSE_CURRENT)
        self.write(Cmd.AUTORANGE)
        self.nplc = nplc
        self._read_nplc = float(nplc)
        self.compliance = compliance
        self.confirm_off()

    def _numbers(self, reply: str, command: str) -> tuple[float, float]:
        v, i = self.parse_floats(reply, 2, command, form=NUMBER_16)
        if abs(i) >= OVERFLOW or abs(v) >= OVERFLOW:
            raise ReplyError(f"{self.name}: {command!r} returned overflow {reply!r}")
        return v, i

    def measure(self) -> Measurement:
        v, i = self._numbers(self.query(Cmd.READ), Cmd.READ)
        tripped = self.parse_flag(self.query(Cmd.TRIPPED), Cmd.TRIPPED)
        return Measurement(v, i, tripped)

    def arm_pulse(self, volts: float, width: float) -> None:
        """Output off (the 2450 off state holds ~0 V), pulse level, fixed current range, the
        trigger model blocks. `fire_pulse` restores everything, also when arming fails."""
        v, w = self.check_pulse(volts, width)
        assert self.compliance is not None
        self._cache["before"] = (self._output_on, float(self.voltage or 0.0))
        try:
            self.write(Cmd.OUTPUT_OFF)  # off only until the pulse: `output_on` stays True
            self.voltage = v
            self.write(Cmd.RANGE.format(value=fmt(self.compliance)))
            self.nplc = PULSE_NPLC
            self.write(Cmd.CLEAR_BUFFER)
            self.write(Cmd.TRIGGER_EMPTY)
            self.write(Cmd.BLOCK_ON)
            self.write(Cmd.BLOCK_DELAY.format(value=fmt(max(w - PULSE_APERTURE, 0.0))))
            self.write(Cmd.BLOCK_MEASURE)
            self.write(Cmd.BLOCK_OFF)
        except BaseException:
            self._restore_after_failure()
            raise
        self._cache["armed"] = (v, w)

    def fire_pulse(self) -> Measurement:
        self._armed()
        assert self.compliance is not None
        self._output_on = True  # the trigger model switches it on; unknown if anything fails
        try:
            self.write(Cmd.INIT)
            self.write(Cmd.WAIT)
            done = self.query(Cmd.OPC)
            if done.strip() != "1":
                raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after the pulse is "
                                 f"{done!r}")
            v, i = self._numbers(self.query(Cmd.PULSE_READING), Cmd.PULSE_READING)
            tripped = self.parse_flag(self.query(Cmd.TRIPPED), Cmd.TRIPPED)
        except BaseException:
            self._restore_after_failure()
            raise
        self._restore()
        return Measurement(v, i, tripped or abs(i) >= 0.999 * self.compliance)

    def _restore(self) -> None:
        """The state from before `arm_pulse`: trigger model unloaded, level, measure range and
        integration, output state (every step tried; the first failure raised after)."""
        was_on, level = self._cache.pop("before", (True, 0.0))
        steps = [lambda: self.write(Cmd.TRIGGER_EMPTY),
                 lambda: setattr(self, "voltage", level),
                 lambda: self.write(Cmd.AUTORANGE),
                 lambda: setattr(self, "nplc", self._read_nplc)]
        if was_on:
            steps.append(lambda: self.write(Cmd.OUTPUT_ON))
        first: BaseException | None = None
        for step in steps:
            try:
                step()
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first

    def errors(self) -> list[str]:
        return scpi_errors(self, Cmd.ERROR)


__all__ = ["Cmd", "InstrumentError", "Keithley2450"]
