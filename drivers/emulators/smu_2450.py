"""Emulated Keithley 2450 SourceMeter in its SCPI command set (2450 Reference Manual, ch. 6-7).

Implemented subtree (anything else: -113 Undefined header; bad values: -222 / -224 / -104):

- ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*OPC``, ``*WAI``, ``:SYSTem:ERRor[:NEXT]?``
- ``:SOURce[1]:FUNCtion[:MODE] VOLTage|CURRent`` (and ``?``)
- ``:SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude] <V>`` (+-210 V, and ``?``)
- ``:SOURce[1]:VOLTage:ILIMit[:LEVel] <A>`` (1 nA .. 1.05 A, and ``?``),
  ``:SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped?``
- ``:SOURce[1]:VOLTage:PROTection[:LEVel] PROT2|PROT5|...|PROT180|NONE`` and
  ``...:PROTection[:LEVel]:TRIPped?``: the protection "restricts the maximum voltage level that
  the instrument can source": a level above it is accepted and the output is clamped to it
  (the flag reads 1 while that clamping is active)
- ``:SENSe[1]:FUNCtion[:ON] "CURRent"|"VOLTage"``, ``:SENSe[1]:CURRent[:DC]:RANGe:AUTO``,
  ``:SENSe[1]:CURRent[:DC]:RANGe[:UPPer]``, ``:SENSe[1]:CURRent[:DC]:NPLCycles`` (0.01 .. 10)
- ``:FORMat:ASCii:PRECision <n>|MIN|MAX|DEF`` (and ``?``): significant digits of every number
  replied (1 .. 16; 0 = automatic, the default, restored by ``*RST``); automatic is modelled as
  7 digits (``-1.234568E-05``), the resolution of a 6.5-digit reading
- ``:OUTPut[1][:STATe] ON|OFF`` (and ``?``), ``:ABORt``, ``:INITiate[:IMMediate]``
- ``:READ? ["<buffer>"[, <elements>...]]`` (elements SOURce, READing, RELative, UNIT...),
  ``:MEASure[:CURRent[:DC]]?``
- trigger model (manual section 3 "Trigger model"): ``:TRIGger:LOAD "Empty"`` (clears the
  model), ``:TRIGger:BLOCk:SOURce:STATe <n>, ON|OFF``, ``:TRIGger:BLOCk:DELay:CONStant <n>,
  <s>``, ``:TRIGger:BLOCk:MEASure <n>[, "<buffer>"]``; ``:INIT`` executes the blocks one by one
  in order: a source block switches the output, a delay with the output on applies the
  (clamped) level to the load for that time (a hardware-timed pulse), a measure block takes a
  reading (over its aperture, nplc / 50 Hz, with the level still applied) into the buffer. The
  blocks stay loaded: another ``:INIT`` runs them again. A current-limit trip during a delay or
  a reading latches ``:SOUR:VOLT:ILIM:TRIP?`` until the next reading or pulse.
- ``:SOURce[1]:VOLTage:READ:BACK ON|OFF`` (default ON): the source element of a reading is
  the level on the output (clamped), else the programmed level
- ``:TRACe:CLEar ["<buffer>"]``, ``:TRACe:DATA? <start>, <end>, "<buffer>", <elements>...``
  (elements SOURce = the source readback, READing)
"""

from __future__ import annotations

from xbarlab.drivers.emulators.scpi import (
    ScpiError,
    ScpiInstrument,
    boolean,
    choice,
    fmt_ascii,
    number,
    string,
)
from xbarlab.drivers.emulators.state import Load, OpenCircuit, SmuChannel, measure

AUTO_DIGITS = 7  # significant digits replied at :FORM:ASC:PREC 0 (automatic)
PROTECTION = {f"PROT{v}": float(v) for v in (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)}


class Smu2450(ScpiInstrument):
    """One 2450 (one channel)."""

    def __init__(self, name: str = "2450", load: Load | None = None,
                 serial: str = "04400001") -> None:
        super().__init__()
        self.name = name
        self.identity = f"KEITHLEY INSTRUMENTS,MODEL 2450,{serial},1.7.12b"
        self.load: Load = load or OpenCircuit()
        self.channel = SmuChannel(name)
        self._reset_state()
        s = ":SOURce[1]:VOLTage"
        self.add("*IDN?", lambda sx, a: self.identity)
        self.add("*RST", lambda sx, a: self._reset())
        self.add("*OPC?", lambda sx, a: "1")
        self.add("*OPC", lambda sx, a: None)
        self.add("*WAI", lambda sx, a: None)
        self.add(":SOURce[1]:FUNCtion[:MODE]", self._func)
        self.add(":SOURce[1]:FUNCtion[:MODE]?", lambda sx, a: self.func)
        self.add(f"{s}[:LEVel][:IMMediate][:AMPLitude]", self._level)
        self.add(f"{s}[:LEVel][:IMMediate][:AMPLitude]?",
                 lambda sx, a: self._num(self.channel.level))
        self.add(f"{s}:ILIMit[:LEVel]", self._ilimit)
        self.add(f"{s}:ILIMit[:LEVel]?", lambda sx, a: self._num(self.channel.limit))
        self.add(f"{s}:ILIMit[:LEVel]:TRIPped?", lambda sx, a: "1" if self.tripped else "0")
        self.add(f"{s}:PROTection[:LEVel]", self._protection)
        self.add(f"{s}:READ:BACK", self._readback)
        self.add(f"{s}:PROTection[:LEVel]?", lambda sx, a: self.protection_name)
        self.add(f"{s}:PROTection[:LEVel]:TRIPped?",
                 lambda sx, a: "1" if self.channel.output and self.clamped else "0")
        self.add(":SENSe[1]:FUNCtion[:ON]", self._sense_func)
        self.add(":SENSe[1]:CURRent[:DC]:RANGe:AUTO", self._autorange)
        self.add(":SENSe[1]:CURRent[:DC]:RANGe[:UPPer]", self._range)
        self.add(":SENSe[1]:CURRent[:DC]:NPLCycles", self._nplc)
        self.add(":SENSe[1]:CURRent[:DC]:NPLCycles?", lambda sx, a: self._num(self.nplc))
        self.add(":FORMat:ASCii:PRECision", self._precision)
        self.add(":FORMat:ASCii:PRECision?", lambda sx, a: str(self.ascii_digits))
        self.add(":OUTPut[1][:STATe]", self._output)
        self.add(":OUTPut[1][:STATe]?", lambda sx, a: "1" if self.channel.output else "0")
        self.add(":ABORt", lambda sx, a: self._abort(), nargs=(0, 0))
        self.add(":INITiate[:IMMediate]", lambda sx, a: self._init(), nargs=(0, 0))
        self.add(":READ?", self._read, nargs=(0, 8))
        self.add(":MEASure[:CURRent[:DC]]?", lambda sx, a: self._num(self._measure()[1]))
        self.add(":TRIGger:LOAD", self._trigger_load, nargs=(1, 8))
        self.add(":TRIGger:BLOCk:SOURce:STATe", self._block_source, nargs=(2, 2))
        self.add(":TRIGger:BLOCk:DELay:CONStant", self._block_delay, nargs=(2, 2))
        self.add(":TRIGger:BLOCk:MEASure", self._block_measure, nargs=(1, 2))
        self.add(":TRACe:CLEar", self._trace_clear, nargs=(0, 1))
        self.add(":TRACe:DATA?", self._trace_data, nargs=(4, 8))

    # -- state --------------------------------------------------------------------------------
    def _num(self, x: float) -> str:
        return fmt_ascii(x, self.ascii_digits or AUTO_DIGITS)

    def _precision(self, sx: list[int], a: list[str]) -> None:
        v = number(a[0], 0, 16, default=0)
        if v != int(v):
            raise ScpiError(-224, f"Illegal parameter value; precision {a[0].strip()!r} is not "
                                  f"an integer 0 .. 16")
        self.ascii_digits = int(v)

    def _reset_state(self) -> None:
        self.ascii_digits = 0  # :FORM:ASC:PREC, 0 = automatic
        self.func = "VOLT"
        self.sense = "CURR"
        self.protection_name = "NONE"
        self.protection = 210.0
        self.nplc = 1.0
        self.autorange = True
        self.tripped = False
        self.blocks: dict[int, tuple[str, object]] = {}
        self.buffer: list[tuple[float, float]] = []  # defbuffer1: (source readback, current)
        self.programmed = 0.0  # the level as set; the channel holds it clamped
        self.readback = True
        self.channel.level = 0.0
        self.channel.output = False
        self.channel.limit = 1.05e-4  # the 2450's default current limit (105 uA)

    def _reset(self) -> None:
        with self.load.lock:
            self._reset_state()
            self.queue.clear()
            self.load.changed(self.channel)

    @property
    def safe(self) -> bool:
        return self.channel.safe

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "trip":
            self.channel.force_trip = True
        else:
            super().inject(kind, line)

    # -- handlers -----------------------------------------------------------------------------
    def _func(self, sx: list[int], a: list[str]) -> None:
        self.func = "VOLT" if choice(a[0], "VOLTage", "CURRent") == "VOLTAGE" else "CURR"

    def _level(self, sx: list[int], a: list[str]) -> None:
        if self.func != "VOLT":
            raise ScpiError(-221, "Settings conflict; source function is current")
        v = number(a[0], -210.0, 210.0, default=0.0)
        self.programmed = v
        self._apply_level()

    @property
    def clamped(self) -> bool:
        return abs(self.programmed) > self.protection

    def _apply_level(self) -> None:
        """The programmed level, clamped to the overvoltage protection, on the output."""
        v = self.programmed
        with self.load.lock:
            self.channel.level = max(-self.protection, min(self.protection, v))
            self.load.changed(self.channel)

    def _ilimit(self, sx: list[int], a: list[str]) -> None:
        self.channel.limit = number(a[0], 1e-9, 1.05, default=1.05e-4)

    def _readback(self, sx: list[int], a: list[str]) -> None:
        self.readback = boolean(a[0])

    def _source_value(self) -> float:
        return self.channel.level if self.readback else self.programmed

    def _protection(self, sx: list[int], a: list[str]) -> None:
        name = a[0].strip().upper()
        if name == "NONE":
            self.protection_name, self.protection = "NONE", 210.0
            self._apply_level()
            return
        if name not in PROTECTION:
            raise ScpiError(-224, f"Illegal parameter value; {a[0].strip()!r}")
        self.protection_name, self.protection = name, PROTECTION[name]
        self._apply_level()

    def _sense_func(self, sx: list[int], a: list[str]) -> None:
        f = choice(string(a[0]), "CURRent", "VOLTage", "RESistance")
        self.sense = f[:4]

    def _autorange(self, sx: list[int], a: list[str]) -> None:
        self.autorange = boolean(a[0])

    def _range(self, sx: list[int], a: list[str]) -> None:
        number(a[0], 1e-8, 1.05)
        self.autorange = False

    def _nplc(self, sx: list[int], a: list[str]) -> None:
        self.nplc = number(a[0], 0.01, 10.0, default=1.0)

    def _output(self, sx: list[int], a: list[str]) -> None:
        with self.load.lock:
            self.channel.output = boolean(a[0])
            self.load.changed(self.channel)

    def _abort(self) -> None:
        return None  # the trigger model runs to completion inside :INIT here

    def _measure(self) -> tuple[float, float]:
        if self.sense != "CURR":
            raise ScpiError(-221, "Settings conflict; measure function is not current")
        i, self.tripped = measure(self.load, self.channel)
        return self._source_value(), i

    def _read(self, sx: list[int], a: list[str]) -> str:
        if a:
            buf = string(a[0])
            if buf not in ("defbuffer1", "defbuffer2"):
                raise ScpiError(-224, f"Illegal parameter value; no buffer {buf!r}")
        elements = [choice(e, "SOURce", "READing", "RELative", "UNIT", "SOURUNIT")
                    for e in a[1:]] or ["READING"]
        v, i = self._measure()
        values = {"SOURCE": self._num(v), "READING": self._num(i), "RELATIVE": "0",
                  "UNIT": "Amp DC", "SOURUNIT": "Volt DC"}
        return ",".join(values[e] for e in elements)

    def _trigger_load(self, sx: list[int], a: list[str]) -> None:
        if string(a[0]) != "Empty":
            raise ScpiError(-224, f"Illegal parameter value; only \"Empty\" is emulated, "
                                  f"got {a[0]}")
        self.blocks = {}

    def _block(self, a: str) -> int:
        return int(number(a, 1, 300000))

    def _block_source(self, sx: list[int], a: list[str]) -> None:
        self.blocks[self._block(a[0])] = ("source", boolean(a[1]))

    def _block_delay(self, sx: list[int], a: list[str]) -> None:
        self.blocks[self._block(a[0])] = ("delay", number(a[1], 0.0, 1e4))

    def _block_measure(self, sx: list[int], a: list[str]) -> None:
        buf = string(a[1]) if len(a) > 1 else "defbuffer1"
        if buf != "defbuffer1":
            raise ScpiError(-224, f"Illegal parameter value; only defbuffer1 is emulated, got "
                                  f"{a[1]}")
        self.blocks[self._block(a[0])] = ("measure", buf)

    def _trace_clear(self, sx: list[int], a: list[str]) -> None:
        if a and string(a[0]) != "defbuffer1":
            raise ScpiError(-224, f"Illegal parameter value; no buffer {a[0]}")
        self.buffer.clear()

    def _trace_data(self, sx: list[int], a: list[str]) -> str:
        start, end = int(number(a[0], 1, 1e6)), int(number(a[1], 1, 1e6))
        if string(a[2]) != "defbuffer1":
            raise ScpiError(-224, f"Illegal parameter value; no buffer {a[2]}")
        if not start <= end <= len(self.buffer):
            raise ScpiError(-222, f"Data out of range; readings {start}..{end} of "
                                  f"{len(self.buffer)}")
        elements = [choice(e, "SOURce", "READing") for e in a[3:]]
        out: list[str] = []
        for v, i in self.buffer[start - 1:end]:
            out.extend(self._num(v if e == "SOURCE" else i) for e in elements)
        return ",".join(out)

    def _init(self) -> None:
        """Run the trigger model block by block (see the module doc)."""
        if not self.blocks:
            raise ScpiError(-221, "Settings conflict; trigger model is empty")
        if sorted(self.blocks) != list(range(1, len(self.blocks) + 1)):
            raise ScpiError(-221, f"Settings conflict; trigger model blocks {sorted(self.blocks)} "
                                  "are not contiguous from 1")
        ch = self.channel
        with self.load.lock:
            for n in sorted(self.blocks):
                kind, value = self.blocks[n]
                if kind == "source":
                    ch.output = bool(value)
                    self.load.changed(ch)
                elif kind == "delay":
                    if ch.output and float(value) > 0:  # type: ignore[arg-type]
                        _, self.tripped = self.load.pulse(ch, ch.level, float(value))  # type: ignore[arg-type]
                elif ch.output:  # a measure block: the level stays applied over the aperture
                    i, self.tripped = self.load.pulse(ch, ch.level, self.nplc / 50.0)
                    if ch.force_trip:
                        ch.force_trip = False
                        i, self.tripped = ch.limit, True
                    self.buffer.append((self._source_value(), i))
                else:
                    self.buffer.append((0.0, 0.0))
