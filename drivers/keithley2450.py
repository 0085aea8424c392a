"""Keithley 2450 SourceMeter, SCPI command set, as a `SourceMeter` role.

Every line the driver sends is in `Cmd` (one place; an emulator implements exactly these).

Identity: ``*IDN?``, compared with the bench config before any other command is sent.

Configuration (`configure`, output off throughout)::

    *RST                               # output off, 0 V
    *CLS
    :FORM:ASC:PREC 16                  # replies with 16 significant digits (the maximum; the
                                       # default, automatic, rounds readings)
    :SOUR:FUNC VOLT
    :SOUR:VOLT 0
    :SOUR:VOLT:ILIM <A>                # current compliance, before any output on
    :SOUR:VOLT:PROT PROT<n>            # overvoltage protection: smallest of 2, 5, 10, 20 ... 180 V
                                       # at or above the bench v_max
    :SENS:FUNC "CURR"
    :SENS:CURR:RANG:AUTO ON
    :SENS:CURR:NPLC <n>
    :OUTP?                             # -> 0: the output is confirmed off

Output: ``:OUTP ON``; off is ``:SOUR:VOLT 0``, ``:OUTP OFF`` then ``:OUTP?`` -> ``0``: the
query is answered only once the off command has been executed, so the bench never switches
relays on an output that is still on (break-before-make confirmed, not assumed).

Measurement: ``:READ? "defbuffer1", SOUR, READ`` -> ``<V>,<I>`` then ``:SOUR:VOLT:ILIM:TRIP?``
-> ``0``/``1`` (compliance). Error queue: ``:SYST:ERR?`` until ``0,"No error"``.

Pulses use the trigger model (hardware timed, not host timed)::

    :OUTP OFF                          # 2450 output-off state holds ~0 V
    :SOUR:VOLT <V>
    :TRIG:LOAD "Empty"
    :TRIG:BLOC:SOUR:STAT 1, ON
    :TRIG:BLOC:DEL:CONS 2, <width>
    :TRIG:BLOC:SOUR:STAT 3, OFF
    :INIT                              # overlapped: starts the trigger model
    *WAI                               # hold later commands until it has finished
    *OPC?                              # -> 1
    :SOUR:VOLT 0
    :OUTP ON                           # back to 0 V, output on, as before the pulse

The width is the trigger-model delay; the output on/off transitions add settling time, so
this driver accepts 1 ms .. 1 s only, and it does not measure during the pulse (a measure
block would lengthen the pulse by its aperture): the pulse current is NaN.

Safe state: ``:ABOR``, ``:SOUR:VOLT 0``, ``:OUTP OFF``, then ``:OUTP?`` -> ``0``.
"""

from __future__ import annotations

import math

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    OVERFLOW,
    SCPI_ASCII_NUMBER,
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


class Cmd:
    IDN = "*IDN?"
    RESET = "*RST"
    CLEAR = "*CLS"
    ASCII_PRECISION = ":FORM:ASC:PREC 16"
    SOURCE_VOLTAGE_MODE = ":SOUR:FUNC VOLT"
    LEVEL = ":SOUR:VOLT {value}"
    ILIMIT = ":SOUR:VOLT:ILIM {value}"
    PROTECT = ":SOUR:VOLT:PROT PROT{value}"
    SENSE_CURRENT = ':SENS:FUNC "CURR"'
    AUTORANGE = ":SENS:CURR:RANG:AUTO ON"
    NPLC = ":SENS:CURR:NPLC {value}"
    OUTPUT_ON = ":OUTP ON"
    OUTPUT_OFF = ":OUTP OFF"
    OUTPUT_STATE = ":OUTP?"
    READ = ':READ? "defbuffer1", SOUR, READ'
    TRIPPED = ":SOUR:VOLT:ILIM:TRIP?"
    ERROR = ":SYST:ERR?"
    ABORT = ":ABOR"
    TRIGGER_EMPTY = ':TRIG:LOAD "Empty"'
    BLOCK_ON = ":TRIG:BLOC:SOUR:STAT 1, ON"
    BLOCK_DELAY = ":TRIG:BLOC:DEL:CONS 2, {value}"
    BLOCK_OFF = ":TRIG:BLOC:SOUR:STAT 3, OFF"
    INIT = ":INIT"
    WAIT = "*WAI"
    OPC = "*OPC?"


class Keithley2450(SourceMeterBase):
    """One Keithley 2450 as a voltage source measuring current."""

    CMD = Cmd
    V_MAX = 210.0
    PULSE_WIDTH_RANGE = (1e-3, 1.0)

    voltage = Setting[float](Cmd.LEVEL, in_range(-210.0, 210.0, " V"), "source level (V)")
    current_limit = Setting[float](Cmd.ILIMIT, in_range(1e-8, 1.05, " A"), "compliance (A)")
    nplc = Setting[float](Cmd.NPLC, in_range(0.01, 10.0), "integration (power line cycles)")

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        level = next((p for p in PROTECTION_LEVELS if p >= v_protect), None)
        if level is None:
            raise SettingError(f"{self.name}.protection: {v_protect:g} V is above the largest "
                               f"protection level {PROTECTION_LEVELS[-1]} V")
        self.write(Cmd.RESET)
        self.write(Cmd.CLEAR)
        self.write(Cmd.ASCII_PRECISION)
        self.write(Cmd.SOURCE_VOLTAGE_MODE)
        self.voltage = 0.0
        self.current_limit = compliance
        self.write(Cmd.PROTECT.format(value=level))
        self.write(Cmd.SENSE_CURRENT)
        self.write(Cmd.AUTORANGE)
        self.nplc = nplc
        self.compliance = compliance
        self.confirm_off()

    def measure(self) -> Measurement:
        reply = self.query(Cmd.READ)
        v, i = self.parse_floats(reply, 2, Cmd.READ, form=SCPI_ASCII_NUMBER)
        tripped = self.parse_bool(self.query(Cmd.TRIPPED), Cmd.TRIPPED)
        if abs(i) >= OVERFLOW:
            raise ReplyError(f"{self.name}: {Cmd.READ!r} returned overflow {reply!r}")
        return Measurement(v, i, tripped)

    def arm_pulse(self, volts: float, width: float) -> None:
        """Output off (the 2450 off state holds ~0 V), pulse level, trigger model blocks."""
        v, w = self.check_pulse(volts, width)
        self.write(Cmd.OUTPUT_OFF)  # off only until the pulse: `output_on` stays True
        self.voltage = v
        self.write(Cmd.TRIGGER_EMPTY)
        self.write(Cmd.BLOCK_ON)
        self.write(Cmd.BLOCK_DELAY.format(value=fmt(w)))
        self.write(Cmd.BLOCK_OFF)
        self._cache["armed"] = (v, w)

    def fire_pulse(self) -> Measurement:
        v, _ = self._armed()
        self.write(Cmd.INIT)
        self.write(Cmd.WAIT)
        done = self.query(Cmd.OPC)
        if done.strip() != "1":
            raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after the pulse is {done!r}")
        self.voltage = 0.0
        self.write(Cmd.OUTPUT_ON)
        self._output_on = True
        return Measurement(v, math.nan, False)

    def errors(self) -> list[str]:
        return scpi_errors(self, Cmd.ERROR)


__all__ = ["Cmd", "InstrumentError", "Keithley2450"]
