"""Keysight (Agilent) 33500B / 33600A waveform generator as a `PulseSource` (SCPI).

Commands, with the section of the *33500 Series Operating and Service Guide* ("SCPI Programming
Reference" chapter, by subsystem) each family comes from; an emulator implements exactly
these (`xbarlab.drivers.emulators.fgen_33500`):

- IEEE 488.2 common commands: ``*IDN?``, ``*RST``, ``*CLS``, ``*TRG`` (software trigger when
  the trigger source is BUS), ``*OPC?``.
- SYSTem subsystem: ``SYST:ERR?`` -> ``+0,"No error"`` ends the queue.
- FUNCtion subsystem: ``FUNC PULS``; ``FUNC:PULS:PER <s>``, ``FUNC:PULS:WIDT <s>``,
  ``FUNC:PULS:TRAN <s>`` (both edges, 10-90 %). "Pulse Waveforms" section: width 16 ns ..
  1e6 s; edges from 8.4 ns, widths of at least 20 ns for longer edges; the width must be less
  than the period minus the minimum width.
- SOURce VOLTage subsystem: ``VOLT:HIGH <V>``, ``VOLT:LOW <V>`` (high must stay above low:
  the order of the two is chosen so that it always does); ``VOLT:LIM:HIGH <V>``,
  ``VOLT:LIM:LOW <V>``, ``VOLT:LIM:STAT ON`` (the instrument refuses levels beyond its limits:
  set to the bench's SET / RESET amplitude limits, enforced in the instrument as well as
  here).
- OUTPut subsystem: ``OUTP:LOAD INF`` (levels are open-circuit levels: a crossbar line is not a
  50 ohm load), ``OUTP:POL NORM|INV``, ``OUTP ON|OFF``, ``OUTP?``.
- BURSt subsystem: ``BURS:MODE TRIG``, ``BURS:NCYC 1``, ``BURS:STAT ON``.
- TRIGger subsystem: ``TRIG:SOUR BUS``.

A positive pulse is levels (low 0 V, high V) with normal polarity: the output idles at the low
level between bursts and pulses to the high level. A negative pulse is levels (low V, high
0 V) with inverted polarity: the output idles at 0 V and pulses to V. (Idle at the level the
burst starts from, per the BURSt section; checked by the emulator, not on an instrument.)
The period is twice the width plus the edges, so one burst is one pulse and a rest at 0 V.
"""

from __future__ import annotations

from xbarlab.drivers.base import Instrument, ReplyError, SettingError, fmt, scpi_errors
from xbarlab.drivers.limits import SmuLimits
from xbarlab.drivers.transports import Transport

WIDTH_MIN = 16e-9  # s, Pulse Waveforms section
WIDTH_MAX = 1.0  # s, what this driver accepts (the instrument goes to 1e6 s)
EDGE_MIN = 8.4e-9  # s
EDGE_WIDTH_RATIO = 0.625  # edge <= 0.625 x width: refused here rather than adjusted there
V_INSTRUMENT = 10.0  # V, open-circuit level limit of the 33500B into high impedance


class Cmd:
    IDN = "*IDN?"
    RESET = "*RST"
    CLEAR = "*CLS"
    TRIGGER = "*TRG"
    OPC = "*OPC?"
    ERROR = "SYST:ERR?"
    PULSE = "FUNC PULS"
    PERIOD = "FUNC:PULS:PER {value}"
    WIDTH = "FUNC:PULS:WIDT {value}"
    EDGE = "FUNC:PULS:TRAN {value}"
    HIGH = "VOLT:HIGH {value}"
    LOW = "VOLT:LOW {value}"
    LIMIT_HIGH = "VOLT:LIM:HIGH {value}"
    LIMIT_LOW = "VOLT:LIM:LOW {value}"
    LIMIT_ON = "VOLT:LIM:STAT ON"
    LOAD_HIGHZ = "OUTP:LOAD INF"
    POLARITY = "OUTP:POL {value}"
    OUTPUT_ON = "OUTP ON"
    OUTPUT_OFF = "OUTP OFF"
    OUTPUT_STATE = "OUTP?"
    BURST_TRIGGERED = "BURS:MODE TRIG"
    BURST_ONE = "BURS:NCYC 1"
    BURST_ON = "BURS:STAT ON"
    TRIGGER_BUS = "TRIG:SOUR BUS"


class Keysight33500(Instrument):
    """One output of a 33500B / 33600A generator. No I/O in the constructor."""

    def __init__(self, transport: Transport, name: str = "",
                 bench: SmuLimits | None = None) -> None:
        """`bench`: the bench limits the driver holds from construction (default: the default
        bench's); nothing beyond them is ever sent, whatever `configure` is asked."""
        super().__init__(transport, name)
        self.bench = bench if bench is not None else SmuLimits()
        self._output_on = True  # not known to be off until the instrument says so
        self.limits: tuple[float, float] | None = None  # (low, high) V: the bench's
        self._armed: tuple[float, float, float] | None = None
        self._levels = (-0.05, 0.05)  # (low, high) after *RST: 100 mVpp around 0 V
        self._timing = (1e-3, 1e-4)  # (period, width) after *RST

    @property
    def output_on(self) -> bool:
        return self._output_on

    @property
    def pulse_width_range(self) -> tuple[float, float]:
        return (WIDTH_MIN, WIDTH_MAX)

    @property
    def edge_min(self) -> float:
        return EDGE_MIN

    def configure(self, v_high: float, v_low: float) -> None:
        lo, hi = self.bench.pulse_window
        if not (0 < v_high <= min(V_INSTRUMENT, hi) and max(-V_INSTRUMENT, lo) <= v_low < 0):
            raise SettingError(f"{self.name}: pulse limits [{v_low:g}, {v_high:g}] V are "
                               f"outside the bench's [{lo:g}, {hi:g}] V or the instrument's "
                               f"+-{V_INSTRUMENT:g} V (or do not straddle 0 V)")
        self.write(Cmd.RESET)
        self.write(Cmd.CLEAR)
        self._levels = (-0.05, 0.05)
        self._timing = (1e-3, 1e-4)
        self.write(Cmd.OUTPUT_OFF)
        self.write(Cmd.LOAD_HIGHZ)
        self.write(Cmd.PULSE)
        self.write(Cmd.LIMIT_HIGH.format(value=fmt(v_high)))
        self.write(Cmd.LIMIT_LOW.format(value=fmt(v_low)))
        self.write(Cmd.LIMIT_ON)
        self.write(Cmd.BURST_TRIGGERED)
        self.write(Cmd.BURST_ONE)
        self.write(Cmd.TRIGGER_BUS)
        self.write(Cmd.BURST_ON)
        self.limits = (float(v_low), float(v_high))
        self.confirm_off()

    def check(self, volts: float, width: float, edge: float) -> None:
        """Raise `SettingError` for anything the bench or the instrument cannot do."""
        if self.limits is None:
            raise SettingError(f"{self.name}: configure() first (the bench limit is unknown)")
        for what, x in (("voltage", volts), ("width", width), ("edge", edge)):
            if not isinstance(x, int | float) or x != x or x in (float("inf"), float("-inf")):
                raise SettingError(f"{self.name}: pulse {what} {x!r} is not a finite number")
        lo, hi = self.limits
        if volts == 0 or not lo <= volts <= hi:
            raise SettingError(f"{self.name}: pulse of {volts:+g} V is outside the bench "
                               f"limits [{lo:+g}, {hi:+g}] V (or zero)")
        w_lo = max(WIDTH_MIN, self.bench.width_min)
        w_hi = min(WIDTH_MAX, self.bench.width_max)
        if not w_lo <= width <= w_hi:
            raise SettingError(f"{self.name}: width {width:g} s is outside "
                               f"[{w_lo:g}, {w_hi:g}] s (instrument and bench)")
        if not EDGE_MIN <= edge <= EDGE_WIDTH_RATIO * width:
            raise SettingError(f"{self.name}: edge {edge:g} s must lie in [{EDGE_MIN:g} s, "
                               f"{EDGE_WIDTH_RATIO:g} x width]")

    def arm(self, volts: float, width: float, edge: float) -> None:
        self.check(volts, width, edge)
        self.write(Cmd.OUTPUT_OFF)
        period = round(2 * width + 2 * edge + WIDTH_MIN, 12)  # whole picoseconds
        # the width must stay below the period minus 16 ns at every step
        if width < self._timing[0] - WIDTH_MIN:
            self.write(Cmd.WIDTH.format(value=fmt(width)))
            self.write(Cmd.PERIOD.format(value=fmt(period)))
        else:
            self.write(Cmd.PERIOD.format(value=fmt(period)))
            self.write(Cmd.WIDTH.format(value=fmt(width)))
        self._timing = (period, width)
        self.write(Cmd.EDGE.format(value=fmt(edge)))
        low, high = (0.0, float(volts)) if volts > 0 else (float(volts), 0.0)
        # keep high > low at every step
        first, second = ((Cmd.HIGH, high), (Cmd.LOW, low)) if high > self._levels[0] else (
            (Cmd.LOW, low), (Cmd.HIGH, high))
        self.write(first[0].format(value=fmt(first[1])))
        self.write(second[0].format(value=fmt(second[1])))
        self._levels = (low, high)
        self.write(Cmd.POLARITY.format(value="NORM" if volts > 0 else "INV"))
        self._output_on = True
        self.write(Cmd.OUTPUT_ON)
        self._armed = (float(volts), float(width), float(edge))

    def fire(self) -> None:
        if self._armed is None:
            raise SettingError(f"{self.name}: no pulse armed")
        self.write(Cmd.TRIGGER)
        done = self.query(Cmd.OPC)
        if done.strip() != "1":
            raise ReplyError(f"{self.name}: reply to {Cmd.OPC!r} after {Cmd.TRIGGER!r} is "
                             f"{done!r}")
        self._armed = None

    def confirm_off(self) -> None:
        reply = self.query(Cmd.OUTPUT_STATE)
        if self.parse_bool(reply, Cmd.OUTPUT_STATE):
            raise ReplyError(f"{self.name}: output still on after {Cmd.OUTPUT_OFF!r}")
        self._output_on = False

    def disable(self) -> None:
        self._armed = None
        self.write(Cmd.OUTPUT_OFF)
        self.confirm_off()

    def errors(self) -> list[str]:
        return scpi_errors(self, Cmd.ERROR)

    def safe_state(self) -> None:
        self.recover("safe state", self.disable)


__all__ = ["Cmd", "Keysight33500"]
