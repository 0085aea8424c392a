"""Emulated Keysight 33500B waveform generator (SCPI; 33500 Series Operating and Service Guide,
"SCPI Programming Reference"), one output, the pulse/burst subset:

- ``*IDN?``, ``*RST``, ``*CLS``, ``*TRG``, ``*OPC?``, ``SYSTem:ERRor?`` (``+0,"No error"``)
- ``[SOURce[1]:]FUNCtion[:SHAPe] PULSe|SINusoid|SQUare|...`` (only PULSe produces pulses)
- ``[SOURce[1]:]FUNCtion:PULSe:PERiod|WIDTh|TRANsition[:BOTH] <s>``: width 16 ns .. 1e6 s,
  edge 8.4 ns .. ; width >= period minus 16 ns is -221 Settings conflict
- ``[SOURce[1]:]VOLTage:HIGH|LOW <V>``: high <= low is -221; beyond the voltage limits (when
  on) -222; beyond +-10 V (high-Z) -222
- ``[SOURce[1]:]VOLTage:LIMit:HIGH|LOW <V>``, ``VOLTage:LIMit:STATe ON|OFF``
- ``OUTPut[1]:LOAD INFinity|<ohm>``, ``OUTPut[1]:POLarity NORMal|INVerted``,
  ``OUTPut[1][:STATe] ON|OFF`` (and ``?``)
- ``[SOURce[1]:]BURSt:MODE TRIGgered|GATed``, ``BURSt:NCYCles <n>``, ``BURSt:STATe ON|OFF``
- ``TRIGger[1]:SOURce BUS|IMMediate|EXTernal|TIMer``

The output is an `SmuChannel` on the emulated bench wiring (its matrix bus): while on, it holds
the idle level (the low level in normal polarity, the high level inverted); ``*TRG`` with a
triggered one-cycle pulse burst armed applies the pulse level (high normal, low inverted) for
the width through the wiring, which evolves the devices. An idle level other than 0 V with the
output on is recorded in `violations` (a DC level on a crossbar line).
"""

from __future__ import annotations

from xbarlab.drivers.emulators.scpi import ScpiError, ScpiInstrument, boolean, choice, number
from xbarlab.drivers.emulators.state import Load, OpenCircuit, SmuChannel

V_HIGHZ = 10.0
WIDTH_MIN = 16e-9
EDGE_MIN = 8.4e-9


class Fgen33500(ScpiInstrument):
    """One 33500B output."""

    error_format = '{scode},"{text}"'

    def __init__(self, name: str = "fgen", load: Load | None = None,
                 serial: str = "MY52600001") -> None:
        super().__init__()
        self.name = name
        self.identity = f"Agilent Technologies,33522B,{serial},4.00-1.19-2.00-58-00"
        self.load: Load = load or OpenCircuit()
        self.channel = SmuChannel(name, limit=0.2)
        self.violations: list[str] = []
        self.pulses: list[tuple[float, float, float]] = []  # (level, width, edge)
        self._reset_state()
        src = "[:SOURce[1]]"
        self.add("*IDN?", lambda sx, a: self.identity)
        self.add("*RST", lambda sx, a: self._reset())
        self.add("*OPC?", lambda sx, a: "1")
        self.add("*TRG", lambda sx, a: self._trigger())
        self.add(f"{src}:FUNCtion[:SHAPe]", self._func)
        self.add(f"{src}:FUNCtion:PULSe:PERiod", self._period)
        self.add(f"{src}:FUNCtion:PULSe:WIDTh", self._width)
        self.add(f"{src}:FUNCtion:PULSe:TRANsition[:BOTH]", self._edge)
        self.add(f"{src}:VOLTage:HIGH", lambda sx, a: self._level(a, high=True))
        self.add(f"{src}:VOLTage:LOW", lambda sx, a: self._level(a, high=False))
        self.add(f"{src}:VOLTage:LIMit:HIGH", lambda sx, a: self._limit(a, high=True))
        self.add(f"{src}:VOLTage:LIMit:LOW", lambda sx, a: self._limit(a, high=False))
        self.add(f"{src}:VOLTage:LIMit:STATe", self._limit_state)
        self.add(":OUTPut[1]:LOAD", self._load)
        self.add(":OUTPut[1]:POLarity", self._polarity)
        self.add(":OUTPut[1][:STATe]", self._output)
        self.add(":OUTPut[1][:STATe]?", lambda sx, a: "1" if self.channel.output else "0")
        self.add(f"{src}:BURSt:MODE", self._burst_mode)
        self.add(f"{src}:BURSt:NCYCles", self._ncycles)
        self.add(f"{src}:BURSt:STATe", self._burst_state)
        self.add(":TRIGger[1]:SOURce", self._trigger_source)

    # -- state --------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.func = "SIN"
        self.period, self.width, self.edge = 1e-3, 1e-4, 1e-8
        self.high, self.low = 0.05, -0.05
        self.lim_high, self.lim_low, self.lim_on = 5.0, -5.0, False
        self.highz = False
        self.inverted = False
        self.burst_mode, self.ncycles, self.burst_on = "TRIG", 1, False
        self.trig_source = "IMM"
        self.channel.output = False
        self.channel.level = 0.0

    def _reset(self) -> None:
        with self.load.lock:
            self._reset_state()
            self.queue.clear()
            self.load.changed(self.channel)

    @property
    def idle_level(self) -> float:
        return self.high if self.inverted else self.low

    @property
    def pulse_level(self) -> float:
        return self.low if self.inverted else self.high

    @property
    def safe(self) -> bool:
        return not self.channel.output

    def _update(self) -> None:
        """The channel holds the idle level while the output is on."""
        with self.load.lock:
            self.channel.level = self.idle_level if self.channel.output else 0.0
            if self.channel.output and self.idle_level != 0.0:
                self.violations.append(f"output on idling at {self.idle_level:+g} V")
            self.load.changed(self.channel)

    # -- handlers -----------------------------------------------------------------------------
    def _func(self, sx: list[int], a: list[str]) -> None:
        self.func = choice(a[0], "SINusoid", "SQUare", "RAMP", "PULSe", "NOISe", "DC")[:3]

    def _period(self, sx: list[int], a: list[str]) -> None:
        p = number(a[0], 2 * WIDTH_MIN, 1e6)
        if self.width >= p - WIDTH_MIN:
            raise ScpiError(-221, "Settings conflict; period too short for the pulse width")
        self.period = p

    def _width(self, sx: list[int], a: list[str]) -> None:
        w = number(a[0], WIDTH_MIN, 1e6)
        if w >= self.period - WIDTH_MIN:
            raise ScpiError(-221, "Settings conflict; pulse width too long for the period")
        self.width = w

    def _edge(self, sx: list[int], a: list[str]) -> None:
        self.edge = number(a[0], EDGE_MIN, 1e-3)

    def _level(self, a: list[str], *, high: bool) -> None:
        v = number(a[0], -V_HIGHZ, V_HIGHZ)
        if not self.highz and abs(v) > V_HIGHZ / 2:
            raise ScpiError(-222, "Data out of range; level beyond +-5 V into 50 ohm")
        if self.lim_on and not self.lim_low <= v <= self.lim_high:
            raise ScpiError(-222, "Data out of range; level beyond the voltage limits")
        if (high and v <= self.low) or (not high and v >= self.high):
            raise ScpiError(-221, "Settings conflict; high level must be above low level")
        if high:
            self.high = v
        else:
            self.low = v
        if self.channel.output:
            self._update()

    def _limit(self, a: list[str], *, high: bool) -> None:
        v = number(a[0], -V_HIGHZ, V_HIGHZ)
        if high:
            self.lim_high = v
        else:
            self.lim_low = v

    def _limit_state(self, sx: list[int], a: list[str]) -> None:
        on = boolean(a[0])
        if on and not self.lim_low <= self.low < self.high <= self.lim_high:
            raise ScpiError(-221, "Settings conflict; present levels beyond the limits")
        self.lim_on = on

    def _load(self, sx: list[int], a: list[str]) -> None:
        arg = a[0].strip().upper()
        if arg in ("INF", "INFINITY"):
            self.highz = True
            return
        number(arg, 1.0, 1e4)
        self.highz = False

    def _polarity(self, sx: list[int], a: list[str]) -> None:
        self.inverted = choice(a[0], "NORMal", "INVerted") == "INVERTED"
        if self.channel.output:
            self._update()

    def _output(self, sx: list[int], a: list[str]) -> None:
        self.channel.output = boolean(a[0])
        self._update()

    def _burst_mode(self, sx: list[int], a: list[str]) -> None:
        self.burst_mode = choice(a[0], "TRIGgered", "GATed")[:4]

    def _ncycles(self, sx: list[int], a: list[str]) -> None:
        n = number(a[0], 1, 1e8)
        if n != int(n):
            raise ScpiError(-224, "Illegal parameter value; cycles must be an integer")
        self.ncycles = int(n)

    def _burst_state(self, sx: list[int], a: list[str]) -> None:
        self.burst_on = boolean(a[0])

    def _trigger_source(self, sx: list[int], a: list[str]) -> None:
        self.trig_source = choice(a[0], "IMMediate", "EXTernal", "TIMer", "BUS")[:3]

    def _trigger(self) -> None:
        if self.trig_source != "BUS":
            raise ScpiError(-211, "Trigger ignored; trigger source is not BUS")
        if not (self.burst_on and self.burst_mode == "TRIG" and self.ncycles == 1
                and self.func == "PUL"):
            raise ScpiError(-221, "Settings conflict; not a one-cycle triggered pulse burst")
        if not self.channel.output:
            return  # the burst runs with the output off: nothing reaches the line
        level = self.pulse_level
        self.pulses.append((level, self.width, self.edge))
        with self.load.lock:
            self.load.pulse(self.channel, level, self.width)
