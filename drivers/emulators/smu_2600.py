"""Emulated Keithley 2636B System SourceMeter (TSP, 2600B Reference Manual), channels a and b.

Per channel ``smuX`` (X = a, b):

- ``smuX.reset()``, ``smuX.abort()``; constants ``OUTPUT_DCAMPS`` (0), ``OUTPUT_DCVOLTS`` (1),
  ``OUTPUT_OFF`` (0), ``OUTPUT_ON`` (1), ``AUTORANGE_OFF`` (0), ``AUTORANGE_ON`` (1),
  ``AUTOZERO_OFF`` (0), ``AUTOZERO_ONCE`` (1), ``AUTOZERO_AUTO`` (2)
- ``smuX.source.func``, ``.levelv`` (+-200 V), ``.limiti`` (1 nA .. 1.5 A), ``.rangev`` (0.2 /
  2 / 20 / 200 V: the smallest range covering the value), ``.autorangev``, ``.rangei``,
  ``.autorangei``, ``.output``, ``.compliance`` (read-only: whether the last measurement hit
  the limit), ``.offmode``. As the manual's "Range considerations" say: setting a range turns
  that function's autorange off; a level beyond a fixed source range is accepted, and the
  error comes when the output is switched on (-222 here; the output stays off).
- ``smuX.measure.i()``, ``.nplc`` (0.001 .. 25), ``.autorangei``, ``.rangei`` (1 nA .. 1.5 A
  ranges: a reading beyond 101 % of a fixed range is the 9.91e37 overflow), ``.autorangev``,
  ``.rangev``, ``.autozero`` (reset default AUTOZERO_AUTO)
- ``smuX.nvbuffer1.clear()``, ``.readings[n]``, ``.n``, ``.appendmode`` (0/1; changed only
  while the buffer is empty, else -222)
- the KIPulse factory script: ``ConfigPulseVMeasureI(smu, bias, level, limit, ton, toff,
  points, buffer, tag)`` -> ``f, msg`` and ``InitiatePulseTest(tag)`` -> ``f, msg`` (never an
  error-queue entry: ``false`` and the reason). Both refuse while any source or measure range
  of the channel is on autorange; the configuration also refuses a level or bias beyond the
  fixed source range, ``ton`` below the 100 µs minimum programmable pulse width ("Pulse too
  short") and a reading (nplc / 50 Hz, three times that with autozero AUTO) that does not fit
  in ``ton``. The test switches the output on at the bias level, holds `level` for `ton` for
  each of `points` pulses (the current is measured at its end into `buffer`), then `bias` for
  `toff`; it ends with the output on at the bias level (``levelv`` reads the bias).

Refused settings queue ``-222 Parameter data out of range``; unknown names give Lua runtime
errors (-286), malformed lines syntax errors (-285), as on the instrument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from xbarlab.drivers.emulators.state import Load, OpenCircuit, SmuChannel, measure
from xbarlab.drivers.emulators.tsp import Function, Prop, Table, TspError
from xbarlab.drivers.emulators.tsp_instrument import TspInstrument

RANGES = (0.2, 2.0, 20.0, 200.0)
CURRENT_RANGES = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5)
OVERFLOW = 9.91e37
MIN_PULSE = 100e-6  # s, minimum programmable pulse width (2600B specifications)
LINE_FREQUENCY = 50.0  # Hz
AUTOZERO_AUTO = 2


def _num(name: str, v: Any, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, float):
        raise TspError(-286, f"TSP Runtime error at line 1: bad argument to {name} "
                             f"(number expected, got {type(v).__name__})")
    if not math.isfinite(v) or not lo <= v <= hi:
        raise TspError(-222, f"Parameter data out of range: {name} = {v:g} not in "
                             f"[{lo:g}, {hi:g}]")
    return v


@dataclass
class _Pulse:
    smu: str
    bias: float
    level: float
    ton: float
    toff: float
    points: int
    buffer: list[float]


@dataclass
class _Smu:
    ch: SmuChannel
    func: int = 1
    rangev: float = 0.2
    autorangev: int = 1
    src_rangei: float = 1e-9
    src_autorangei: int = 1
    nplc: float = 1.0
    autorangei: int = 1
    rangei: float = 1e-9
    meas_autorangev: int = 1
    meas_rangev: float = 0.2
    autozero: int = AUTOZERO_AUTO
    compliance: bool = False
    offmode: int = 0
    appendmode: int = 0
    buffer: list[float] = field(default_factory=list)

    def autoranged(self) -> str:
        """Why a KIPulse function refuses to run ("" if every range is fixed)."""
        if self.autorangev or self.src_autorangei:
            return "Source autorange must be disabled"
        if self.autorangei or self.meas_autorangev:
            return "Measure autorange must be disabled"
        return ""

    def reading(self, i: float) -> float:
        """A current as stored: beyond 101 % of a fixed measure range, the overflow marker."""
        if not self.autorangei and abs(i) > 1.01 * self.rangei:
            return OVERFLOW
        return i


class Smu2600(TspInstrument):
    """A two-channel 2636B."""

    ascii_digits = 6  # format.asciiprecision default (2600B Reference Manual)

    def __init__(self, name: str = "2600", load: Load | None = None,
                 serial: str = "4400001") -> None:
        super().__init__()
        self.name = name
        self.identity = f"Keithley Instruments Inc., Model 2636B, {serial}, 4.0.4"
        self.load: Load = load or OpenCircuit()
        self.smus = {x: _Smu(SmuChannel(f"{name}.{x}")) for x in "ab"}
        self.pulses: dict[int, _Pulse] = {}
        for x in "ab":
            self.env[f"smu{x}"] = self._table(x)
        self.env["ConfigPulseVMeasureI"] = Function(self._config_pulse)
        self.env["InitiatePulseTest"] = Function(self._initiate)
        self.env["reset"] = Function(self.instrument_reset)

    @property
    def safe(self) -> bool:
        return all(s.ch.safe for s in self.smus.values())

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "trip":  # the channel(s) the line names, else both
            named = [x for x in "ab" if f"smu{x}" in line] or ["a", "b"]
            for x in named:
                self.smus[x].ch.force_trip = True
        else:
            super().inject(kind, line)

    def reset(self) -> None:
        for x in "ab":
            self._reset_smu(x)
        self.pulses.clear()

    def _reset_smu(self, x: str) -> None:
        s = self.smus[x]
        with self.load.lock:
            self.smus[x] = _Smu(s.ch)
            s.ch.level, s.ch.output, s.ch.limit = 0.0, False, 0.1  # 2600B default limiti 100 mA
            self.load.changed(s.ch)

    # -- the smuX table -----------------------------------------------------------------------
    def _table(self, x: str) -> Table:
        def smu() -> _Smu:
            return self.smus[x]

        def set_level(v: Any) -> None:
            s = smu()
            lv = _num(f"smu{x}.source.levelv", v, -202.0, 202.0)
            if s.func != 1:
                raise TspError(-221, "Settings conflict: source function is current")
            if s.ch.output and not s.autorangev and abs(lv) > 1.01 * s.rangev:
                raise TspError(-222, f"Parameter data out of range: levelv {lv:g} V beyond "
                                     f"the {s.rangev:g} V range")
            with self.load.lock:
                s.ch.level = lv
                s.compliance = False
                self.load.changed(s.ch)

        def set_range(v: Any) -> None:
            r = _num(f"smu{x}.source.rangev", v, -200.0, 200.0)
            smu().rangev = next(q for q in RANGES if q >= abs(r))
            smu().autorangev = 0

        def set_src_rangei(v: Any) -> None:
            r = _num(f"smu{x}.source.rangei", v, -1.5, 1.5)
            smu().src_rangei = next(q for q in CURRENT_RANGES if q >= abs(r))
            smu().src_autorangei = 0

        def set_meas_rangei(v: Any) -> None:
            r = _num(f"smu{x}.measure.rangei", v, -1.5, 1.5)
            smu().rangei = next(q for q in CURRENT_RANGES if q >= abs(r))
            smu().autorangei = 0

        def set_meas_rangev(v: Any) -> None:
            r = _num(f"smu{x}.measure.rangev", v, -200.0, 200.0)
            smu().meas_rangev = next(q for q in RANGES if q >= abs(r))
            smu().meas_autorangev = 0

        def set_append(v: Any) -> None:
            mode = int(_num(f"smu{x}.nvbuffer1.appendmode", v, 0.0, 1.0))
            if smu().buffer:
                raise TspError(-222, "Parameter data out of range: appendmode can only be "
                                     "changed with an empty buffer")
            smu().appendmode = mode

        def set_output(v: Any) -> None:
            state = int(_num(f"smu{x}.source.output", v, 0.0, 2.0))
            s = smu()
            if state == 1 and not s.autorangev and abs(s.ch.level) > 1.01 * s.rangev:
                raise TspError(-222, f"Parameter data out of range: levelv {s.ch.level:g} V "
                                     f"beyond the {s.rangev:g} V range; output not switched on")
            with self.load.lock:
                smu().ch.output = state == 1
                smu().compliance = False
                self.load.changed(smu().ch)

        def set_limit(v: Any) -> None:
            smu().ch.limit = _num(f"smu{x}.source.limiti", v, 1e-9, 1.5)

        def set_int(attr: str, lo: float, hi: float) -> Prop:
            return Prop(lambda: float(getattr(smu(), attr)),
                        lambda v: setattr(smu(), attr, int(_num(f"smu{x}.{attr}", v, lo, hi))))

        def measure_i() -> float:
            i, smu().compliance = measure(self.load, smu().ch)
            return smu().reading(i)

        def set_nplc(v: Any) -> None:
            smu().nplc = _num(f"smu{x}.measure.nplc", v, 0.001, 25.0)

        source = Table({
            "func": set_int("func", 0, 1),
            "levelv": Prop(lambda: smu().ch.level, set_level),
            "limiti": Prop(lambda: smu().ch.limit, set_limit),
            "rangev": Prop(lambda: smu().rangev, set_range),
            "autorangev": set_int("autorangev", 0, 1),
            "rangei": Prop(lambda: smu().src_rangei, set_src_rangei),
            "autorangei": set_int("src_autorangei", 0, 1),
            "output": Prop(lambda: float(smu().ch.output), set_output),
            "compliance": Prop(lambda: smu().compliance),
            "offmode": set_int("offmode", 0, 3),
        }, f"smu{x}.source")
        meas = Table({
            "i": Function(measure_i),
            "nplc": Prop(lambda: smu().nplc, set_nplc),
            "autorangei": set_int("autorangei", 0, 1),
            "rangei": Prop(lambda: smu().rangei, set_meas_rangei),
            "autorangev": set_int("meas_autorangev", 0, 1),
            "rangev": Prop(lambda: smu().meas_rangev, set_meas_rangev),
            "autozero": set_int("autozero", 0, 2),
        }, f"smu{x}.measure")
        buffer = Table({
            "clear": Function(lambda: smu().buffer.clear()),
            "readings": Prop(lambda: list(smu().buffer)),
            "n": Prop(lambda: float(len(smu().buffer))),
            "appendmode": Prop(lambda: float(smu().appendmode), set_append),
        }, f"smu{x}.nvbuffer1")
        buffer.fields["_owner"] = x
        return Table({
            "source": source, "measure": meas, "nvbuffer1": buffer,
            "reset": Function(lambda: self._reset_smu(x)),
            "abort": Function(lambda: None),
            "OUTPUT_DCAMPS": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_ON": 1.0,
            "OUTPUT_HIGH_Z": 2.0, "AUTORANGE_OFF": 0.0, "AUTORANGE_ON": 1.0,
            "AUTOZERO_OFF": 0.0, "AUTOZERO_ONCE": 1.0, "AUTOZERO_AUTO": 2.0,
            "_channel": x,
        }, f"smu{x}")

    # -- KIPulse ------------------------------------------------------------------------------
    def _config_pulse(self, smu: Any = None, bias: Any = None, level: Any = None,
                      limit: Any = None, ton: Any = None, toff: Any = None, points: Any = None,
                      buffer: Any = None, tag: Any = None, *rest: Any) -> tuple[bool, str]:
        if not (isinstance(smu, Table) and smu.fields.get("_channel") in self.smus):
            return False, "Invalid SMU"
        if not (isinstance(buffer, Table) and buffer.fields.get("_owner") in self.smus):
            return False, "Invalid buffer"
        nums = (bias, level, limit, ton, toff, points, tag)
        if any(isinstance(v, bool) or not isinstance(v, float) for v in nums):
            return False, "Invalid parameter type"
        assert isinstance(level, float) and isinstance(bias, float) and isinstance(ton, float)
        assert isinstance(toff, float) and isinstance(points, float) and isinstance(tag, float)
        assert isinstance(limit, float)
        if max(abs(level), abs(bias)) > 200 or not 1e-9 <= limit <= 1.5:
            return False, "Level or limit out of range"
        if toff < 0 or points < 1 or points != int(points):
            return False, "Invalid timing or point count"
        s = self.smus[smu.fields["_channel"]]
        why = s.autoranged()
        if why:
            return False, why
        if max(abs(level), abs(bias)) > 1.01 * s.rangev:
            return False, f"Level beyond the {s.rangev:g} V source range"
        if ton < MIN_PULSE:
            return False, (f"Pulse too short: ton {ton:g} s is below the minimum pulse width "
                           f"{MIN_PULSE:g} s")
        reading = s.nplc / LINE_FREQUENCY * (3 if s.autozero == AUTOZERO_AUTO else 1)
        if reading >= ton:
            return False, (f"Pulse too short: the measurement ({reading:g} s) does not fit in "
                           f"ton {ton:g} s")
        s.ch.limit = limit
        self.pulses[int(tag)] = _Pulse(smu.fields["_channel"], bias, level, ton, toff,
                                       int(points), self.smus[buffer.fields["_owner"]].buffer)
        return True, "Pulse train configured successfully"

    def _initiate(self, tag: Any = None, *rest: Any) -> tuple[bool, str]:
        if isinstance(tag, bool) or not isinstance(tag, float) or int(tag) not in self.pulses:
            return False, f"Invalid tag {tag!r}: configure a pulse train first"
        p = self.pulses[int(tag)]
        s = self.smus[p.smu]
        why = s.autoranged()
        if why:
            return False, why
        owner = next(o for o in self.smus.values() if o.buffer is p.buffer)
        if not owner.appendmode:
            p.buffer.clear()
        with self.load.lock:
            s.ch.level = p.bias
            s.ch.output = True
            self.load.changed(s.ch)
            for _ in range(p.points):
                i, s.compliance = self.load.pulse(s.ch, p.level, p.ton)
                p.buffer.append(s.reading(i))
        return True, "Pulse test complete"
