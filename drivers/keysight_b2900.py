"""Keysight B2900 series precision SMU (B2901A/B2902A/B2911A/B2912A...), SCPI, one
`SourceMeter` role per channel (1 or 2).

Every line the driver sends is in `Cmd` (``{ch}`` is the channel number); `guard` refuses any
other line, or one beyond the driver's `SmuLimits`, before it is sent. Manual: Keysight
B2900 SCPI Command Reference: :SOURce, :SENSe, :OUTPut, :FORMat, :TRIGger, :FETCh/:MEASure
subsystems; "Source Output Ranges" (Table 2-4) for the ranges and the 50 µs shortest pulse.

Identity: ``*IDN?``, compared with the bench config before any other command is sent; then the
error queue is drained (``:SYST:ERR?``): errors left by an earlier session are logged and kept
in `cleared_errors`, and do not stop this one.

Configuration (output off throughout; no ``*RST``: it would reset the other channel too)::

    :OUTP{ch} OFF
    :OUTP{ch}:ON:AUTO OFF                 # no automatic output on at :INIT / :MEAS (the reset
                                          # default is ON): only :OUTP ON switches it on
    :FORM:DATA REAL,64                    # readings as IEEE-754 doubles (instrument-wide; the
                                          # ASCII format, the reset default, has 7 significant
                                          # digits and no precision setting)
    :FORM:BORD NORM                       # most significant byte first (the reset default, set
                                          # explicitly: the format outlives the session)
    :SOUR{ch}:FUNC:MODE VOLT
    :SOUR{ch}:FUNC:SHAP DC
    :SOUR{ch}:VOLT:MODE FIX
    :SOUR{ch}:VOLT:RANG:AUTO OFF
    :SOUR{ch}:VOLT:RANG <r>               # the smallest source range (0.2, 2, 20, 200 V; full
                                          # scale 0.21, 2.1, 21, 210 V) covering the bench
                                          # v_max: 20 V for 3 V. The hardware backstop: the
                                          # B2900 has no programmable overvoltage level in
                                          # voltage-source mode; it refuses levels beyond the
                                          # fixed range
    :SOUR{ch}:VOLT 0
    :SENS{ch}:CURR:PROT <A>               # compliance, before any output on
    :SENS{ch}:FUNC "CURR"
    :SENS{ch}:CURR:RANG:AUTO ON
    :SENS{ch}:CURR:NPLC <n>
    :OUTP{ch}?                            # -> 0: confirmed off

Output: ``:OUTP{ch} ON`` (only after the compliance is set); off is ``:SOUR{ch}:VOLT 0``,
``:OUTP{ch} OFF`` then ``:OUTP{ch}?`` -> ``0`` (answered once the off command has executed:
relays never switch on an output that is still on).

Measurement: ``:MEAS:CURR? (@{ch})`` -> ``#18<8 bytes>`` (an IEEE 488.2 definite-length block
holding one big-endian double, then the newline), then ``:SENS{ch}:CURR:PROT:TRIP?`` -> 0/1
(ASCII: the data format applies to measurement data only). A block cut short, with another
length, or holding NaN (the binary "no data") or the 9.9e37 overflow marker is refused (see
`Transport.query_block`, `Instrument.parse_doubles`), never read as a shorter value.
Error queue: ``:SYST:ERR?`` (ASCII) until ``+0,"No error"``.

Pulses use the instrument's pulse shape (hardware timed), from base 0 V to the triggered
level, measured over [w/2, 3w/4] of the pulse::

    :SOUR{ch}:FUNC:SHAP PULS
    :SOUR{ch}:VOLT 0                      # base
    :SOUR{ch}:VOLT:TRIG <V>               # peak
    :SOUR{ch}:PULS:DEL 0
    :SOUR{ch}:PULS:WIDT <w>
    :SENS{ch}:CURR:APER <w/4>
    :TRIG{ch}:ACQ:DEL <w/2>
    :TRIG{ch}:COUN 1
    :INIT (@{ch})
    *OPC?                                 # -> 1
    :FETC:SCAL:CURR? (@{ch})              # -> one double in a block, as :MEAS:CURR?
    :SENS{ch}:CURR:PROT:TRIP?
    :SOUR{ch}:FUNC:SHAP DC
    :TRIG{ch}:ACQ:DEL 0
    :SENS{ch}:CURR:NPLC <n>               # back to the read setting
                                          # (these three are sent whatever happened)

Widths 100 us .. 1 s (the pulse itself goes down to 50 us, but the current measurement needs
a usable aperture inside the pulse).

Safe state: ``:ABOR (@{ch})``, ``:SOUR{ch}:VOLT 0``, ``:OUTP{ch} OFF``, then ``:OUTP{ch}?``.
"""

from __future__ import annotations

from typing import ClassVar

from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    ReplyError,
    Setting,
    SmuLimits,
    fmt,
    in_range,
    scpi_errors,
)
from xbarlab.drivers.keithley2600 import clear_stale_errors
from xbarlab.drivers.smu_channel import ChannelSourceMeter
from xbarlab.drivers.transports import Transport


class Cmd:
    IDN = "*IDN?"
    MODE = ":SOUR{ch}:FUNC:MODE VOLT"
    SHAPE_DC = ":SOUR{ch}:FUNC:SHAP DC"
    SHAPE_PULSE = ":SOUR{ch}:FUNC:SHAP PULS"
    FIXED_MODE = ":SOUR{ch}:VOLT:MODE FIX"
    FIXED_RANGE = ":SOUR{ch}:VOLT:RANG:AUTO OFF"
    RANGE = ":SOUR{ch}:VOLT:RANG {value}"
    LEVEL = ":SOUR{ch}:VOLT {value}"
    ILIMIT = ":SENS{ch}:CURR:PROT {value}"
    SENSE = ':SENS{ch}:FUNC "CURR"'
    AUTORANGE = ":SENS{ch}:CURR:RANG:AUTO ON"
    NPLC = ":SENS{ch}:CURR:NPLC {value}"
    OUTPUT_ON = ":OUTP{ch} ON"
    OUTPUT_OFF = ":OUTP{ch} OFF"
    OUTPUT_STATE = ":OUTP{ch}?"
    NO_AUTO_ON = ":OUTP{ch}:ON:AUTO OFF"
    DATA_FORMAT = ":FORM:DATA REAL,64"
    BYTE_ORDER = ":FORM:BORD NORM"
    MEASURE = ":MEAS:CURR? (@{ch})"
    TRIPPED = ":SENS{ch}:CURR:PROT:TRIP?"
    ERROR = ":SYST:ERR?"
    ABORT = ":ABOR (@{ch})"
    PULSE_LEVEL = ":SOUR{ch}:VOLT:TRIG {value}"
    PULSE_DELAY = ":SOUR{ch}:PULS:DEL 0"
    PULSE_WIDTH = ":SOUR{ch}:PULS:WIDT {value}"
    APERTURE = ":SENS{ch}:CURR:APER {value}"
    ACQ_DELAY = ":TRIG{ch}:ACQ:DEL {value}"
    TRIGGER_COUNT = ":TRIG{ch}:COUN 1"
    INIT = ":INIT (@{ch})"
    OPC = "*OPC?"
    FETCH = ":FETC:SCAL:CURR? (@{ch})"


class KeysightB2900Channel(ChannelSourceMeter):
    """One channel (1 or 2) of a B2900. Two channels may share one transport."""

    MODEL = "B2900"
    CHANNELS = (1, 2)
    CMD = Cmd
    V_MAX = 210.0
    PULSE_WIDTH_RANGE = (100e-6, 1.0)
    SOURCE_RANGES = (0.2, 2.0, 20.0, 200.0)  # V (full scale 105 % of each)
    LIMITED: ClassVar[dict[str, dict[str, str]]] = {
        "RANGE": {"value": "range"}, "LEVEL": {"value": "volts"},
        "ILIMIT": {"value": "amps"}, "PULSE_LEVEL": {"value": "pulse"},
        "PULSE_WIDTH": {"value": "width"}, "APERTURE": {"value": "dwell"},
        "ACQ_DELAY": {"value": "dwell"}}

    voltage = Setting[float](Cmd.LEVEL, in_range(-210.0, 210.0, " V"), "source level (V)")
    current_limit = Setting[float](Cmd.ILIMIT, in_range(1e-9, 3.03, " A"), "compliance (A)")
    nplc = Setting[float](Cmd.NPLC, in_range(4e-4, 100.0), "integration (power line cycles)")
    voltage_range = Setting[float](Cmd.RANGE, in_range(0.2, 210.0, " V"), "fixed range (V)")

    def __init__(self, transport: Transport, channel: int = 1, name: str = "",
                 limits: SmuLimits | None = None) -> None:
        super().__init__(transport, channel, name, limits)
        self.cleared_errors: list[str] = []

    def connect(self, expect: str | None = None) -> str:
        idn = super().connect(expect)
        self.cleared_errors = clear_stale_errors(self, lambda inst: scpi_errors(inst, Cmd.ERROR))
        return idn

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        self.check_setup(compliance, v_protect)
        for t in (Cmd.OUTPUT_OFF, Cmd.NO_AUTO_ON, Cmd.DATA_FORMAT, Cmd.BYTE_ORDER, Cmd.MODE,
                  Cmd.SHAPE_DC, Cmd.FIXED_MODE, Cmd.FIXED_RANGE):
            self.write(self.line(t))
        self.voltage_range = self.range_for(v_protect)
        self.voltage = 0.0
        self.current_limit = compliance
        self.write(self.line(Cmd.SENSE))
        self.write(self.line(Cmd.AUTORANGE))
        self.nplc = nplc
        self._read_nplc = float(nplc)
        self.compliance = compliance
        self.confirm_off()

    def _current(self, cmd: str) -> float:
        """One current reading: a block of one big-endian double (``:FORM:DATA REAL,64``)."""
        (i,) = self.parse_doubles(self.query_block(cmd), 1, cmd, big_endian=True)
        return i

    def measure(self) -> Measurement:
        i = self._current(self.line(Cmd.MEASURE))
        trip = self.line(Cmd.TRIPPED)
        return Measurement(float(self.voltage or 0.0), i, self.parse_flag(self.query(trip), trip))

    def arm_pulse(self, volts: float, width: float) -> None:
        """Pulse shape, base 0 V, peak, width and measurement window (no output change). On
        failure the DC set-up is restored."""
        v, w = self.check_pulse(volts, width)
        self._cache["before"] = (self._output_on, 0.0)
        try:
            self.write(self.line(Cmd.SHAPE_PULSE))
            self.voltage = 0.0
            self.write(self.line(Cmd.PULSE_LEVEL, value=fmt(v)))
            self.write(self.line(Cmd.PULSE_DELAY))
            self.write(self.line(Cmd.PULSE_WIDTH, value=fmt(w)))
            self.write(self.line(Cmd.APERTURE, value=fmt(w / 4)))
            self.write(self.line(Cmd.ACQ_DELAY, value=fmt(w / 2)))
            self.write(self.line(Cmd.TRIGGER_COUNT))
        except BaseException:
            self._restore_after_failure()
            raise
        self._cache["armed"] = (v, w)

    def fire_pulse(self) -> Measurement:
        v, _ = self._armed()
        self._output_on = True
        try:
            self.write(self.line(Cmd.INIT))
            done = self.query(Cmd.OPC)
            if done.strip() != "1":
                raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after the pulse is "
                                 f"{done!r}")
            i = self._current(self.line(Cmd.FETCH))
            trip = self.line(Cmd.TRIPPED)
            comp = self.parse_flag(self.query(trip), trip)
        except BaseException:
            self._restore_after_failure()
            raise
        self._restore()
        return Measurement(v, i, comp)

    def _restore(self) -> None:
        """DC shape, no acquisition delay, the read integration time (each step tried; the
        first failure raised after). The base level (0 V) is where the pulse left the source."""
        self._cache.pop("before", None)
        first: BaseException | None = None
        for step in (lambda: self.write(self.line(Cmd.SHAPE_DC)),
                     lambda: self.write(self.line(Cmd.ACQ_DELAY, value="0")),
                     lambda: setattr(self, "nplc", self._read_nplc)):
            try:
                step()
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first

    def errors(self) -> list[str]:
        return scpi_errors(self, Cmd.ERROR)
