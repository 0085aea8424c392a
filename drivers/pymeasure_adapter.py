"""A PyMeasure Keithley 2450 driver as xbarlab's `SourceMeter` role, under xbarlab's limits.

Labs that already drive their 2450 with PyMeasure (``pymeasure.instruments.keithley.
Keithley2450``) can hand that object to `PyMeasureSmu`; a bench config reaches the same with
``driver: pymeasure_keithley2450`` (a plugin kind, entry point of this package). Every value is
checked here, against the bench's |V| limit and the 2450's ranges, before any call reaches the
PyMeasure object: PyMeasure's validators clamp (``truncated_range`` turns a 5 A compliance into
1.05 A without a word), so they are never relied on. Source levels are checked as PyMeasure
will send them (``%g``: six significant digits), so rounding cannot carry a level past a limit.

What is sent, by member (2450 Reference Manual, SCPI command reference, ch. 6-7):

- PyMeasure members used: ``id`` (``*IDN?``), ``source_mode = "voltage"``
  (``:SOUR:FUNC VOLT``, SOURce:FUNCtion), ``compliance_current`` (``:SOUR:VOLT:ILIM <A>``,
  SOURce:VOLTage:ILIMit), ``source_voltage`` (``:SOUR:VOLT:LEV <V>``, SOURce:VOLTage:LEVel),
  ``current_nplc`` (``:SENS:CURR:NPLC``, SENSe:CURRent:NPLCycles), ``current_autorange``
  (``:SENS:CURR:RANG:AUTO 1``), ``enable_source()`` / ``disable_source()`` (``OUTPUT ON|OFF``,
  OUTPut:STATe), ``source_enabled`` (``OUTPUT?``), ``current`` (``:READ?``, READ?).
- PyMeasure members avoided: ``reset()`` sends ``*RST;:stat:pres;:*CLS;`` (``:*CLS`` is not an
  IEEE 488.2 common-command header, and STATus:PRESet is not wanted); ``measure_current()``
  drains the error queue itself (``check_errors``) and drops what it finds; ``shutdown()``
  ramps in host-timed steps. Their jobs are done with plain lines through ``write``/``ask``:
  ``*RST``, ``*CLS``, ``:FORM:ASC:PREC 16`` (FORMat:ASCii:PRECision), ``:SENS:FUNC "CURR"``
  (SENSe:FUNCtion), ``:SOUR:VOLT:PROT PROT<n>`` (SOURce:VOLTage:PROTection),
  ``:SOUR:VOLT:ILIM:TRIP?`` (ILIMit:TRIPped?), ``:SYST:ERR?`` (SYSTem:ERRor),
  ``:ABOR`` (ABORt) and the trigger-model pulse of `xbarlab.drivers.keithley2450` (TRIGger:LOAD
  "Empty", TRIGger:BLOCk:SOURce:STATe, TRIGger:BLOCk:DELay:CONStant, INITiate, ``*WAI``,
  ``*OPC?``).
"""

from __future__ import annotations

import math
from typing import Any

from xbarlab.bench.kinds import DriverContext, InstrumentKind, PluginError
from xbarlab.bench.roles import Measurement
from xbarlab.drivers.base import (
    OVERFLOW,
    SCPI_ERROR_REPLY,
    IdentityMismatch,
    InstrumentError,
    ReplyError,
    SafeStateFailed,
    SettingError,
    fmt,
    in_range,
)
from xbarlab.drivers.keithley2450 import PROTECTION_LEVELS, Cmd
from xbarlab.drivers.limits import SmuLimits
from xbarlab.drivers.transports import Transport, TransportError

# the pulse as a three-block trigger model (2450 Reference Manual, TRIGger:BLOCk:SOURce:STATe
# and TRIGger:BLOCk:DELay:CONStant): output on at the level, hold `width`, output off
PULSE_ON = ":TRIG:BLOC:SOUR:STAT 1, ON"
PULSE_DELAY = ":TRIG:BLOC:DEL:CONS 2, {value}"
PULSE_OFF = ":TRIG:BLOC:SOUR:STAT 3, OFF"
INSTRUMENT_V_MAX = 210.0  # V, the 2450's largest source range
COMPLIANCE_RANGE = (1e-9, 1.05)  # A, :SOUR:VOLT:ILIM of the 2450
NPLC_RANGE = (0.01, 10.0)


def _pymeasure_keithley2450() -> type:
    try:
        from pymeasure.instruments.keithley import Keithley2450
    except ImportError:
        raise PluginError("driver pymeasure_keithley2450 needs PyMeasure: "
                          "pip install 'xbarlab[pymeasure]'") from None
    return Keithley2450


def transport_adapter(transport: Transport) -> Any:
    """A PyMeasure adapter that talks through an xbarlab `Transport` (its timeouts, its
    reopen after a dropped link). SCPI is line based: a message with a ``?`` outside quotes
    is sent as a query, its reply kept for PyMeasure's next read."""
    from pymeasure.adapters import Adapter

    class TransportAdapter(Adapter):
        def __init__(self, link: Transport) -> None:
            super().__init__()
            self.link = link
            self._reply: str | None = None

        def _write(self, command: str, **kwargs: Any) -> None:
            outside = "".join(command.split('"')[0::2])
            if "?" in outside:
                self._reply = self.link.query(command)
            else:
                self.link.write(command)

        def _read(self, **kwargs: Any) -> str:
            reply, self._reply = self._reply, None
            if reply is None:
                raise ReplyError(f"{self.link.address}: a read without a query")
            return reply

        def close(self) -> None:  # the bench closes the link
            return None

    return TransportAdapter(transport)


class PyMeasureSmu:
    """A PyMeasure Keithley 2450 object as a `SourceMeter` (xbarlab.bench.roles).

    `v_max` is the bench's largest |V| (checked on every level, pulses included);
    `link` the xbarlab transport under the PyMeasure adapter, if any (opened by `connect`,
    reopened once when the safe state fails, closed by `close`).
    """

    PULSE_WIDTH_RANGE = (1e-3, 1.0)  # s, as xbarlab's own 2450 driver (trigger-model delay)

    def __init__(self, instrument: Any, name: str = "pymeasure-2450", *, v_max: float,
                 link: Transport | None = None, limits: SmuLimits | None = None) -> None:
        self.instrument = instrument
        self.name = name
        self.link = link
        self.v_max = in_range(0.0, INSTRUMENT_V_MAX, " V")(f"{name}.v_max", v_max)
        # the bench's SMU limits (compliance, pulse window and widths); v_max is the tighter
        self.limits = limits if limits is not None else SmuLimits(v_max=min(v_max, 3.0))
        self.identity: str | None = None
        self.compliance: float | None = None
        self.level: float | None = None
        self._output_on = True  # not known to be off until the instrument says so
        self._armed: tuple[float, float] | None = None

    # -- checks (nothing reaches PyMeasure before these) ----------------------------------------
    def check_level(self, volts: float, what: str = "voltage") -> float:
        """`volts` as PyMeasure will send it (``%g``), within +-v_max; else `SettingError`."""
        v = in_range(-self.v_max, self.v_max, " V")(f"{self.name}.{what}", volts)
        sent = float(f"{v:g}")
        if abs(sent) > self.v_max:
            raise SettingError(f"{self.name}.{what}: {v!r} V would be sent as {sent:g} V, "
                               f"beyond the limit {self.v_max:g} V")
        return v

    def _call(self, what: str, op: Any) -> Any:
        try:
            return op()
        except (TransportError, InstrumentError):
            raise
        except Exception as exc:  # PyMeasure and its adapters raise many kinds
            raise InstrumentError(f"{self.name}: {what} failed: {type(exc).__name__}: "
                                  f"{exc}") from exc

    def _write(self, line: str) -> None:
        self._call(repr(line), lambda: self.instrument.write(line))

    def _ask(self, line: str) -> str:
        return str(self._call(repr(line), lambda: self.instrument.ask(line))).strip()

    def _number(self, value: Any, what: str) -> float:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value) or abs(value) >= OVERFLOW:
            raise ReplyError(f"{self.name}: {what} returned {value!r}, not a finite reading")
        return float(value)

    # -- Instrumented --------------------------------------------------------------------------
    def connect(self, expect: str | None = None) -> str:
        if self.link is not None:
            self.link.open()
        idn = str(self._call("*IDN?", lambda: self.instrument.id)).strip()
        if not idn or not idn.isprintable():
            raise ReplyError(f"{self.name}: reply to '*IDN?' is not an identity: {idn!r}")
        if expect is not None and expect.lower() not in idn.lower():
            raise IdentityMismatch(f"{self.name}: identity {idn!r} does not contain "
                                   f"{expect!r}; refusing to use it")
        self.identity = idn
        return idn

    def errors(self) -> list[str]:
        out: list[str] = []
        for _ in range(64):
            reply = self._ask(Cmd.ERROR)
            m = SCPI_ERROR_REPLY.match(reply)
            if m is None:
                raise ReplyError(f"{self.name}: reply to {Cmd.ERROR!r} is not "
                                 f"'<code>,\"<message>\"': {reply!r}")
            if int(m[1]) == 0:
                return out
            out.append(f"{int(m[1])}: {m[2]}")
        return [*out, "(error queue not empty after 64 reads)"]

    def _confirm_off(self) -> None:
        state = self._call("OUTPUT?", lambda: self.instrument.source_enabled)
        if not isinstance(state, bool):
            raise ReplyError(f"{self.name}: reply to 'OUTPUT?' is not a boolean: {state!r}")
        self._output_on = state
        if state:
            raise InstrumentError(f"{self.name}: output still on after the output-off command")

    def _safe_lines(self) -> None:
        self._write(Cmd.ABORT)
        self._call("source_voltage = 0", lambda: setattr(self.instrument, "source_voltage", 0.0))
        self._call("disable_source()", self.instrument.disable_source)
        self._confirm_off()
        self.level = 0.0

    def safe_state(self) -> None:
        """Abort, 0 V, output off, confirmed; on failure the link is reopened once (when there
        is an xbarlab link) and everything sent again."""
        self._output_on = True
        try:
            self._safe_lines()
            return
        except Exception as exc:
            first = exc
        try:
            if self.link is not None:
                self.link.reopen()
            self._safe_lines()
        except Exception as exc:
            raise SafeStateFailed(f"{self.name}: safe state failed ({first}); again after "
                                  f"reopening: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        else:
            self._call("close", self.instrument.adapter.close)

    # -- SourceMeter ---------------------------------------------------------------------------
    @property
    def output_on(self) -> bool:
        return self._output_on

    @property
    def pulse_width_range(self) -> tuple[float, float]:
        return self.PULSE_WIDTH_RANGE

    def configure(self, compliance: float, v_protect: float, nplc: float) -> None:
        lo, hi = COMPLIANCE_RANGE
        i = in_range(lo, min(hi, self.limits.i_max), " A")(f"{self.name}.compliance",
                                                           compliance)
        n = in_range(*NPLC_RANGE)(f"{self.name}.nplc", nplc)
        level = next((p for p in PROTECTION_LEVELS if p >= v_protect), None)
        if level is None:
            raise SettingError(f"{self.name}.protection: {v_protect:g} V is above the largest "
                               f"protection level {PROTECTION_LEVELS[-1]} V")
        self._write(Cmd.RESET)
        self._write(Cmd.CLEAR)
        self._write(Cmd.ASCII_PRECISION)
        self._call("source_mode", lambda: setattr(self.instrument, "source_mode", "voltage"))
        self.set_voltage(0.0)
        self._call("compliance_current",
                   lambda: setattr(self.instrument, "compliance_current", i))
        self._write(Cmd.PROTECT.format(value=level))
        self._write(Cmd.SENSE_CURRENT)
        self._call("current_autorange", lambda: setattr(self.instrument, "current_autorange",
                                                        True))
        self._call("current_nplc", lambda: setattr(self.instrument, "current_nplc", n))
        self.compliance = i
        self._confirm_off()
        errors = self.errors()
        if errors:
            raise InstrumentError(f"{self.name}: configuration refused: {'; '.join(errors)}")

    def set_voltage(self, volts: float) -> None:
        v = self.check_level(volts)
        self._call("source_voltage", lambda: setattr(self.instrument, "source_voltage", v))
        self.level = v

    def enable(self) -> None:
        if self.compliance is None:
            raise InstrumentError(f"{self.name}: configure() (compliance) before output on")
        self._output_on = True
        self._call("enable_source()", self.instrument.enable_source)

    def disable(self) -> None:
        self.set_voltage(0.0)
        self._call("disable_source()", self.instrument.disable_source)
        self._confirm_off()

    def measure(self) -> Measurement:
        if self.level is None:
            raise InstrumentError(f"{self.name}: no source level set before a measurement")
        i = self._number(self._call(":READ?", lambda: self.instrument.current), "':READ?'")
        trip = self._ask(Cmd.TRIPPED)
        if trip not in ("0", "1"):
            raise ReplyError(f"{self.name}: reply to {Cmd.TRIPPED!r} is not 0/1: {trip!r}")
        return Measurement(self.level, i, trip == "1")

    def arm_pulse(self, volts: float, width: float) -> None:
        v = self.check_level(volts, "pulse voltage")
        p_lo, p_hi = self.limits.pulse_window
        in_range(p_lo, p_hi, " V")(f"{self.name}.pulse voltage", v)
        lo, hi = self.PULSE_WIDTH_RANGE
        w = in_range(max(lo, self.limits.width_min), min(hi, self.limits.width_max), " s")(
            f"{self.name}.pulse width", width)
        if self.compliance is None:
            raise InstrumentError(f"{self.name}: configure() (compliance) before any pulse")
        self._call("disable_source()", self.instrument.disable_source)
        self.set_voltage(v)
        self._write(Cmd.TRIGGER_EMPTY)
        self._write(PULSE_ON)
        self._write(PULSE_DELAY.format(value=fmt(w)))
        self._write(PULSE_OFF)
        self._armed = (v, w)

    def fire_pulse(self) -> Measurement:
        if self._armed is None:
            raise InstrumentError(f"{self.name}: fire_pulse() without arm_pulse()")
        v, _ = self._armed
        self._armed = None
        self._write(Cmd.INIT)
        self._write(Cmd.WAIT)
        done = self._ask(Cmd.OPC)
        if done != "1":
            raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after the pulse is {done!r}")
        self._write(Cmd.TRIGGER_EMPTY)  # unload: a later :INIT cannot fire the pulse again
        self.set_voltage(0.0)
        self._call("enable_source()", self.instrument.enable_source)
        self._output_on = True
        return Measurement(v, math.nan, False)

    def pulse(self, volts: float, width: float) -> Measurement:
        self.arm_pulse(volts, width)
        return self.fire_pulse()


def make_driver(ctx: DriverContext) -> PyMeasureSmu:
    """The plugin factory: a PyMeasure Keithley2450 on xbarlab's VISA link, wrapped."""
    if ctx.transport is None:
        raise PluginError(f"{ctx.name}: pymeasure_keithley2450 needs a VISA link")
    cls = _pymeasure_keithley2450()
    instrument = cls(transport_adapter(ctx.transport), name=ctx.name)
    return PyMeasureSmu(instrument, ctx.name, v_max=ctx.v_max, link=ctx.transport,
                        limits=ctx.limits)


def make_emulator(name: str, load: Any = None, serial: str = "04400001") -> Any:
    """The emulated instrument: xbarlab's 2450 emulator (the same SCPI command set)."""
    from xbarlab.drivers.emulators.smu_2450 import Smu2450

    return Smu2450(name, load, serial=serial)


KIND = InstrumentKind(role="smu", driver=make_driver, channels=("",), link="visa",
                      emulator=make_emulator,
                      description="Keithley 2450 through PyMeasure (needs xbarlab[pymeasure])")
