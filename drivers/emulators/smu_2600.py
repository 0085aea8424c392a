"""Emulated Keithley 2636B System SourceMeter (TSP, 2600B Reference Manual), channels a and b.

Per channel ``smuX`` (X = a, b):

- ``smuX.reset()``, ``smuX.abort()``; constants ``OUTPUT_DCAMPS`` (0), ``OUTPUT_DCVOLTS`` (1),
  ``OUTPUT_OFF`` (0), ``OUTPUT_ON`` (1), ``AUTORANGE_OFF`` (0), ``AUTORANGE_ON`` (1)
- ``smuX.source.func``, ``.levelv`` (+-200 V; with ``autorangev`` off, within 101 % of
  ``rangev``), ``.limiti`` (1 nA .. 1.5 A), ``.rangev`` (0.2 / 2 / 20 / 200 V: the smallest
  range covering the value), ``.autorangev``, ``.output``, ``.compliance`` (read-only: whether
  the last measurement hit the limit), ``.offmode``
- ``smuX.measure.i()``, ``.nplc`` (0.001 .. 25), ``.autorangei``
- ``smuX.nvbuffer1.clear()``, ``.readings[n]``, ``.n``
- the KIPulse factory script: ``ConfigPulseVMeasureI(smu, bias, level, limit, ton, toff,
  points, buffer, tag)`` -> ``true|false, message`` and ``InitiatePulseTest(tag)`` -> ``true|
  false, message``: the output is switched on at the bias level, each of `points` pulses holds
  `level` for `ton` (the current is measured at its end into `buffer`), then `bias` for `toff`.

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
    rangev: float = 200.0
    autorangev: int = 1
    nplc: float = 1.0
    autorangei: int = 1
    compliance: bool = False
    offmode: int = 0
    buffer: list[float] = field(default_factory=list)


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
            if not s.autorangev and abs(lv) > 1.01 * s.rangev:
                raise TspError(-222, f"Parameter data out of range: levelv {lv:g} V beyond "
                                     f"the {s.rangev:g} V range")
            with self.load.lock:
                s.ch.level = lv
                s.compliance = False
                self.load.changed(s.ch)

        def set_range(v: Any) -> None:
            r = _num(f"smu{x}.source.rangev", v, -200.0, 200.0)
            smu().rangev = next(q for q in RANGES if q >= abs(r))

        def set_output(v: Any) -> None:
            state = int(_num(f"smu{x}.source.output", v, 0.0, 2.0))
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
            return i

        def set_nplc(v: Any) -> None:
            smu().nplc = _num(f"smu{x}.measure.nplc", v, 0.001, 25.0)

        source = Table({
            "func": set_int("func", 0, 1),
            "levelv": Prop(lambda: smu().ch.level, set_level),
            "limiti": Prop(lambda: smu().ch.limit, set_limit),
            "rangev": Prop(lambda: smu().rangev, set_range),
            "autorangev": set_int("autorangev", 0, 1),
            "output": Prop(lambda: float(smu().ch.output), set_output),
            "compliance": Prop(lambda: smu().compliance),
            "offmode": set_int("offmode", 0, 3),
        }, f"smu{x}.source")
        meas = Table({
            "i": Function(measure_i),
            "nplc": Prop(lambda: smu().nplc, set_nplc),
            "autorangei": set_int("autorangei", 0, 1),
        }, f"smu{x}.measure")
        buffer = Table({
            "clear": Function(lambda: smu().buffer.clear()),
            "readings": Prop(lambda: list(smu().buffer)),
            "n": Prop(lambda: float(len(smu().buffer))),
        }, f"smu{x}.nvbuffer1")
        buffer.fields["_owner"] = x
        return Table({
            "source": source, "measure": meas, "nvbuffer1": buffer,
            "reset": Function(lambda: self._reset_smu(x)),
            "abort": Function(lambda: None),
            "OUTPUT_DCAMPS": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_ON": 1.0,
            "OUTPUT_HIGH_Z": 2.0, "AUTORANGE_OFF": 0.0, "AUTORANGE_ON": 1.0,
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
        if ton < 20e-6 or toff < 0 or points < 1 or points != int(points):
            return False, "Invalid timing or point count"
        self.smus[smu.fields["_channel"]].ch.limit = limit
        self.pulses[int(tag)] = _Pulse(smu.fields["_channel"], bias, level, ton, toff,
                                       int(points), self.smus[buffer.fields["_owner"]].buffer)
        return True, "Pulse train configured successfully"

    def _initiate(self, tag: Any = None, *rest: Any) -> tuple[bool, str]:
        if isinstance(tag, bool) or not isinstance(tag, float) or int(tag) not in self.pulses:
            return False, f"Invalid tag {tag!r}: configure a pulse train first"
        p = self.pulses[int(tag)]
        s = self.smus[p.smu]
        with self.load.lock:
            s.ch.level = p.bias
            s.ch.output = True
            self.load.changed(s.ch)
            for _ in range(p.points):
                i, s.compliance = self.load.pulse(s.ch, p.level, p.ton)
                p.buffer.append(i)
        return True, "Pulse test complete"
