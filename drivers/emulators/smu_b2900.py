"""Emulated Keysight B2902A precision SMU, SCPI (B2900 SCPI Command Reference), two channels.

Implemented subtree (``#`` = channel 1|2, default 1; anything else -113; bad values -222/-224):

- ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*WAI``, ``:SYSTem:ERRor[:NEXT]?`` (``+0,"No error"``)
- ``:SOURce#:FUNCtion:MODE VOLTage|CURRent``, ``:SOURce#:FUNCtion:SHAPe DC|PULSe``
- ``:SOURce#:VOLTage:MODE FIXed|SWEep|LIST``, ``:SOURce#:VOLTage:RANGe:AUTO ON|OFF``,
  ``:SOURce#:VOLTage:RANGe <V>`` (ranges 0.2, 2, 20, 200 V: the smallest covering the value)
- ``:SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude] <V>`` (beyond a fixed range: -222),
  ``:SOURce#:VOLTage[:LEVel]:TRIGgered[:AMPLitude] <V>``
- ``:SOURce#:PULSe:DELay <s>``, ``:SOURce#:PULSe:WIDTh <s>`` (50 us .. 100 s)
- ``:SENSe#:CURRent[:DC]:PROTection[:LEVel] <A>`` (compliance), ``...:PROTection:TRIPped?``
- ``:SENSe#:FUNCtion[:ON] "CURR"|"VOLT"``, ``:SENSe#:CURRent[:DC]:RANGe:AUTO``,
  ``:SENSe#:CURRent[:DC]:NPLCycles``, ``:SENSe#:CURRent[:DC]:APERture``
- ``:TRIGger#:ACQuire:DELay <s>``, ``:TRIGger#:COUNt <n>``
- ``:OUTPut#[:STATe] ON|OFF``, ``:OUTPut#:ON:AUTO ON|OFF`` (default ON: ``:INIT`` and
  ``:MEAS`` switch an output that is off on), ``:ABORt[:ALL] [(@1,2)]``,
  ``:INITiate[:IMMediate][:ALL] (@n)``
- ``:MEASure[:CURRent[:DC]]? [(@n)]``, ``:FETCh[:SCALar]:CURRent[:DC]? [(@n)]``
- ``:FORMat[:DATA] ASCii|REAL,32|REAL,64``, ``:FORMat:BORDer NORMal|SWAPped`` and their
  queries (``ASC``, ``REAL,64``...; ``NORM``, ``SWAP``); ``*RST``: ASCii, NORMal

Measurement data (``:MEAS``, ``:FETC``; all channels of the list in one reply) follow the
data output format of the SCPI Command Reference: ASCii writes ``+1.000001E-06`` (7
significant digits, comma separated; "no data" is ``+9.910000E+37``); REAL,32 / REAL,64 send
an IEEE 488.2 definite-length block (``#18`` + 8 bytes for one double) in the byte order of
``:FORM:BORD`` (NORMal: most significant byte first), then the newline. Other numeric
replies (``:SOUR:VOLT?``) are NR3 text in the ASCII form whatever the data format.

``:INIT`` with the pulse shape applies the triggered level for the pulse width to the load
(from the base level the output holds) and keeps the current for ``:FETC``; with the DC shape
it moves the level to the triggered level and measures. With automatic output on disabled, an
output that is off refuses ``:INIT`` (-221).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from xbarlab.drivers.emulators.scpi import (
    ScpiError,
    ScpiInstrument,
    boolean,
    channel_list,
    choice,
    ieee_block,
    number,
    string,
)
from xbarlab.drivers.emulators.state import Load, OpenCircuit, SmuChannel, measure

RANGES = (0.2, 2.0, 20.0, 200.0)
NOT_A_NUMBER = 9.91e37  # ASCII "no data"
FORMATS = {"ASC": "", "REAL,32": "f", "REAL,64": "d"}  # data format -> struct code of a block


def fmt_nr3(x: float) -> str:
    """A number as the B2900 writes it in ASCII: sign, 7 significant digits, ``E``, signed
    two-digit exponent (``+1.000001E-06``)."""
    return f"{(NOT_A_NUMBER if math.isnan(x) else x):+.6E}"


@dataclass
class _Channel:
    smu: SmuChannel
    func: str = "VOLT"
    shape: str = "DC"
    range_auto: bool = True
    range: float = 200.0
    trig_level: float = 0.0
    pulse_delay: float = 0.0
    pulse_width: float = 1e-4
    nplc: float = 1.0
    acq_delay: float = 0.0
    count: int = 1
    tripped: bool = False
    auto_on: bool = True
    fetched: list[float] = field(default_factory=list)


class SmuB2900(ScpiInstrument):
    """A two-channel B2902A."""

    error_format = '{scode},"{text}"'

    def __init__(self, name: str = "b2900", load: Load | None = None,
                 serial: str = "MY51140001") -> None:
        super().__init__()
        self.name = name
        self.identity = f"Keysight Technologies,B2902A,{serial},3.4.2011.5100"
        self.load: Load = load or OpenCircuit()
        self.channels = {n: _Channel(SmuChannel(f"{name}.{n}")) for n in (1, 2)}
        self.data_format = "ASC"
        self.big_endian = True
        self._reset()
        src, sen = ":SOURce#", ":SENSe#"
        self.add("*IDN?", lambda sx, a: self.identity)
        self.add("*RST", lambda sx, a: self._reset())
        self.add("*OPC?", lambda sx, a: "1")
        self.add("*WAI", lambda sx, a: None)
        self.add(f"{src}:FUNCtion:MODE", self._set("func", "VOLTage", "CURRent"))
        self.add(f"{src}:FUNCtion:SHAPe", self._set("shape", "DC", "PULSe"))
        self.add(f"{src}:VOLTage:MODE", self._mode)
        self.add(f"{src}:VOLTage:RANGe:AUTO", self._range_auto)
        self.add(f"{src}:VOLTage:RANGe", self._range)
        self.add(f"{src}:VOLTage[:LEVel][:IMMediate][:AMPLitude]", self._level)
        self.add(f"{src}:VOLTage[:LEVel][:IMMediate][:AMPLitude]?",
                 lambda sx, a: fmt_nr3(self._ch(sx).smu.level))
        self.add(f"{src}:VOLTage[:LEVel]:TRIGgered[:AMPLitude]", self._trig_level)
        self.add(f"{src}:PULSe:DELay", self._num("pulse_delay", 0.0, 99999.9))
        self.add(f"{src}:PULSe:WIDTh", self._num("pulse_width", 5e-5, 100.0))
        self.add(f"{sen}:CURRent[:DC]:PROTection[:LEVel]", self._limit)
        self.add(f"{sen}:CURRent[:DC]:PROTection:TRIPped?",
                 lambda sx, a: "1" if self._ch(sx).tripped else "0")
        self.add(f"{sen}:FUNCtion[:ON]", self._sense)
        self.add(f"{sen}:CURRent[:DC]:RANGe:AUTO", lambda sx, a: boolean(a[0]) and None)
        self.add(f"{sen}:CURRent[:DC]:NPLCycles", self._num("nplc", 4e-4, 100.0))
        self.add(f"{sen}:CURRent[:DC]:APERture", lambda sx, a: number(a[0], 8e-6, 2.0) and None)
        self.add(":TRIGger#:ACQuire:DELay", self._num("acq_delay", 0.0, 100.0))
        self.add(":TRIGger#:COUNt", self._count)
        self.add(":OUTPut#[:STATe]", self._output)
        self.add(":OUTPut#[:STATe]?", lambda sx, a: "1" if self._ch(sx).smu.output else "0")
        self.add(":OUTPut#:ON:AUTO", self._auto_on)
        self.add(":ABORt[:ALL]", self._abort, nargs=(0, 1))
        self.add(":INITiate[:IMMediate][:ALL]", self._init, nargs=(0, 1))
        self.add(":MEASure[:CURRent[:DC]]?", self._measure, nargs=(0, 1))
        self.add(":FETCh[:SCALar]:CURRent[:DC]?", self._fetch, nargs=(0, 1))
        self.add(":FORMat[:DATA]", self._format, nargs=(1, 2))
        self.add(":FORMat[:DATA]?", lambda sx, a: self.data_format)
        self.add(":FORMat:BORDer", self._border)
        self.add(":FORMat:BORDer?", lambda sx, a: "NORM" if self.big_endian else "SWAP")

    # -- helpers ------------------------------------------------------------------------------
    def _ch(self, sx: list[int]) -> _Channel:
        n = sx[0] if sx else 1
        if n not in self.channels:
            raise ScpiError(-113, f"Undefined header; no channel {n}")
        return self.channels[n]

    def _chs(self, a: list[str]) -> list[_Channel]:
        return [self.channels[n] for n in (channel_list(a[0], (1, 2)) if a else [1])]

    def _set(self, attr: str, *options: str):  # type: ignore[no-untyped-def]
        def h(sx: list[int], a: list[str]) -> None:
            setattr(self._ch(sx), attr, choice(a[0], *options)[:4])
        return h

    def _num(self, attr: str, lo: float, hi: float):  # type: ignore[no-untyped-def]
        def h(sx: list[int], a: list[str]) -> None:
            setattr(self._ch(sx), attr, number(a[0], lo, hi))
        return h

    def _reset(self) -> None:
        with self.load.lock:
            for n, ch in self.channels.items():
                smu = ch.smu
                self.channels[n] = _Channel(smu)
                smu.level, smu.output, smu.limit = 0.0, False, 1e-4
                self.load.changed(smu)
            self.queue.clear()
            self.data_format, self.big_endian = "ASC", True

    @property
    def safe(self) -> bool:
        return all(ch.smu.safe for ch in self.channels.values())

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "trip":  # the channel the line names ("(@2)", "SENS2"...), else both
            named = [n for n in (1, 2) if f"@{n}" in line or re.search(rf"[A-Z]{n}:", line)]
            for n in named or [1, 2]:
                self.channels[n].smu.force_trip = True
        else:
            super().inject(kind, line)

    def _data(self, values: list[float]) -> str | bytes:
        """Measurement data in the present data output format."""
        kind = FORMATS[self.data_format]
        if not kind:
            return ",".join(fmt_nr3(v) for v in values)
        return ieee_block(values, kind, self.big_endian)

    # -- handlers -----------------------------------------------------------------------------
    def _format(self, sx: list[int], a: list[str]) -> None:
        kind = choice(a[0], "ASCii", "REAL")
        if kind == "ASCII":
            if len(a) > 1:
                raise ScpiError(-108, "Parameter not allowed; ASCii takes no length")
            self.data_format = "ASC"
            return
        if len(a) < 2:
            raise ScpiError(-109, "Missing parameter; REAL,32 or REAL,64")
        bits = number(a[1], 32, 64)
        if bits not in (32, 64):
            raise ScpiError(-224, f"Illegal parameter value; REAL,{a[1]} (32 or 64)")
        self.data_format = f"REAL,{int(bits)}"

    def _border(self, sx: list[int], a: list[str]) -> None:
        self.big_endian = choice(a[0], "NORMal", "SWAPped") == "NORMAL"

    def _mode(self, sx: list[int], a: list[str]) -> None:
        choice(a[0], "FIXed", "SWEep", "LIST")
        self._ch(sx)

    def _range_auto(self, sx: list[int], a: list[str]) -> None:
        self._ch(sx).range_auto = boolean(a[0])

    def _range(self, sx: list[int], a: list[str]) -> None:
        v = number(a[0], 0.0, 210.0)
        ch = self._ch(sx)
        ch.range = next(r for r in RANGES if r >= min(v, 200.0))
        if v > 200.0:
            ch.range = 200.0
        if abs(ch.smu.level) > ch.range * 1.05:
            raise ScpiError(-221, "Settings conflict; output level beyond the new range")

    def _check_level(self, ch: _Channel, v: float) -> None:
        if ch.func != "VOLT":
            raise ScpiError(-221, "Settings conflict; source function is current")
        top = 210.0 if ch.range_auto else min(ch.range * 1.05, 210.0)
        if abs(v) > top:
            raise ScpiError(-222, f"Data out of range; {v:g} V beyond the {ch.range:g} V range")

    def _level(self, sx: list[int], a: list[str]) -> None:
        ch = self._ch(sx)
        v = number(a[0], -210.0, 210.0)
        self._check_level(ch, v)
        with self.load.lock:
            ch.smu.level = v
            self.load.changed(ch.smu)

    def _trig_level(self, sx: list[int], a: list[str]) -> None:
        ch = self._ch(sx)
        v = number(a[0], -210.0, 210.0)
        self._check_level(ch, v)
        ch.trig_level = v

    def _limit(self, sx: list[int], a: list[str]) -> None:
        self._ch(sx).smu.limit = number(a[0], 1e-9, 3.03)

    def _sense(self, sx: list[int], a: list[str]) -> None:
        choice(string(a[0]), "CURRent", "VOLTage", "RESistance")
        self._ch(sx)

    def _count(self, sx: list[int], a: list[str]) -> None:
        self._ch(sx).count = int(number(a[0], 1, 100000))

    def _output(self, sx: list[int], a: list[str]) -> None:
        ch = self._ch(sx)
        with self.load.lock:
            ch.smu.output = boolean(a[0])
            self.load.changed(ch.smu)

    def _auto_on(self, sx: list[int], a: list[str]) -> None:
        self._ch(sx).auto_on = boolean(a[0])

    def _switch_on(self, ch: _Channel) -> None:
        """:INIT / :MEAS on an output that is off: automatic output on, or refused."""
        if ch.smu.output:
            return
        if not ch.auto_on:
            raise ScpiError(-221, "Settings conflict; output is off")
        ch.smu.output = True
        self.load.changed(ch.smu)

    def _abort(self, sx: list[int], a: list[str]) -> None:
        self._chs(a)  # validates the list; nothing runs in the background here

    def _init(self, sx: list[int], a: list[str]) -> None:
        for ch in self._chs(a):
            smu = ch.smu
            with self.load.lock:
                self._switch_on(ch)
                if ch.shape == "PULS":
                    i, ch.tripped = self.load.pulse(smu, ch.trig_level, ch.pulse_width)
                else:
                    smu.level = ch.trig_level
                    self.load.changed(smu)
                    i, ch.tripped = measure(self.load, smu)
                ch.fetched = [i]

    def _measure(self, sx: list[int], a: list[str]) -> str | bytes:
        out = []
        for ch in self._chs(a):
            with self.load.lock:
                self._switch_on(ch)
            i, ch.tripped = measure(self.load, ch.smu)
            out.append(i)
        return self._data(out)

    def _fetch(self, sx: list[int], a: list[str]) -> str | bytes:
        out = []
        for ch in self._chs(a):
            if not ch.fetched:
                raise ScpiError(-230, "Data corrupt or stale; nothing acquired")
            out.append(ch.fetched[-1])
        return self._data(out)
