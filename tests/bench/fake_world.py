"""A tiny fake bench for tests: 2600B (a, b), two 2450s, a 707B and a resistive crossbar.

Each fake instrument answers the exact lines its driver sends (anything else fails the test)
and the world computes currents from Ohm's law on an ideal-wire crossbar of conductances `g`:
every line connected through a closed relay to an SMU with its output on sits at that SMU's
level; the current out of an SMU is the sum over its lines of the currents leaving into the
array. Lines that are not driven are floating; tests with floating lines only look at routing.

The world also watches safety: it records every relay change made while an output was on,
every level set, and whether the final state is safe.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np

from xbarlab.bench.config import BenchConfig, InstrumentConfig
from xbarlab.config import validate_config
from xbarlab.drivers.transports import CallbackTransport, Transport

NUM = r"([-+0-9.eE]+|nan|inf)"


@dataclass
class FakeSmu:
    name: str
    level: float = 0.0
    on: bool = False
    limit: float = 0.0
    pulses: list[tuple[float, float]] = field(default_factory=list)


class World:
    def __init__(self, g: np.ndarray, *, slot: int = 1,
                 pins_rows: tuple[int, ...] = (1, 2, 3), pins_cols: tuple[int, ...] = (4, 5, 6),
                 buses: dict[str, str] | None = None) -> None:
        self.g = np.array(g, dtype=float)
        self.slot = slot
        self.pins_rows, self.pins_cols = pins_rows, pins_cols
        # matrix row letter -> smu name
        self.buses = buses or {"A": "k2600.a", "B": "k2600.b", "C": "brow", "D": "bcol"}
        self.smus = {n: FakeSmu(n) for n in self.buses.values()}
        self.closed: set[str] = set()
        self.violations: list[str] = []
        self.levels_seen: list[float] = []
        self.lines: list[tuple[str, str]] = []  # (instrument, line) in order
        self.errors: dict[str, list[str]] = {}
        self.fail: dict[str, BaseException] = {}  # line substring -> exception to raise
        self.garbage: dict[str, str] = {}  # line substring -> reply
        self.idn = {
            "k2600": "Keithley Instruments Inc., Model 2636B, 4400001, 4.0.4",
            "brow": "KEITHLEY INSTRUMENTS,MODEL 2450,04455001,1.7.3",
            "bcol": "KEITHLEY INSTRUMENTS,MODEL 2450,04455002,1.7.3",
            "mtx": "Keithley Instruments Inc., Model 707B, 1234567, 1.6.0",
            "b29": "Keysight Technologies,B2902A,MY51140001,3.4.2011.5100",
        }
        self._trip: dict[str, bool] = {}
        self.hook = None  # callable(instrument, line) run before each line is answered
        # smu name -> how many more output-off commands it ignores (an off still pending, or
        # an output that refuses to go off): its output state query still answers "on"
        self.stuck_on: dict[str, int] = {}

    def _off(self, smu: FakeSmu) -> None:
        if self.stuck_on.get(smu.name, 0) > 0:
            self.stuck_on[smu.name] -= 1
            return
        smu.on = False

    # -- physics ----------------------------------------------------------------------------
    def _line_potentials(self) -> tuple[np.ndarray, np.ndarray, dict[str, list[tuple[str, int]]]]:
        rows = np.full(len(self.pins_rows), np.nan)
        cols = np.full(len(self.pins_cols), np.nan)
        attached: dict[str, list[tuple[str, int]]] = {}
        for ch in self.closed:
            slot, bus, pin = int(ch[0]), ch[1], int(ch[2:])
            if slot != self.slot or bus not in self.buses:
                continue
            smu = self.smus[self.buses[bus]]
            kind, idx = (("r", self.pins_rows.index(pin)) if pin in self.pins_rows
                         else ("c", self.pins_cols.index(pin)))
            attached.setdefault(smu.name, []).append((kind, idx))
            if smu.on:
                (rows if kind == "r" else cols)[idx] = smu.level
        return rows, cols, attached

    def current(self, smu_name: str, level: float | None = None) -> float:
        """Current out of `smu_name` (A), optionally with its level replaced (pulses)."""
        smu = self.smus[smu_name]
        saved = smu.level
        if level is not None:
            smu.level = level
        try:
            rows, cols, attached = self._line_potentials()
        finally:
            smu.level = saved
        total = 0.0
        for kind, idx in attached.get(smu_name, []):
            if kind == "r":
                dv = rows[idx] - cols
                total += float(np.nansum(self.g[idx, :] * dv))
            else:
                dv = cols[idx] - rows
                total += float(np.nansum(self.g[:, idx] * dv))
        return total

    def safe(self) -> bool:
        return (not self.closed and all(not s.on and s.level == 0.0 for s in self.smus.values()))

    # -- instruments -------------------------------------------------------------------------
    def _set_level(self, smu: FakeSmu, v: float) -> None:
        self.levels_seen.append(v)
        smu.level = v

    def _common(self, inst: str, line: str, query: bool) -> str | None:
        self.lines.append((inst, line))
        if self.hook is not None:
            self.hook(inst, line)
        for key, exc in self.fail.items():
            if key in line:
                raise exc
        for key, reply in self.garbage.items():
            if key in line:
                return reply
        if line == "*IDN?":
            return self.idn[inst]
        return None

    def k2600(self, line: str, query: bool) -> str | None:
        r = self._common("k2600", line, query)
        if r is not None:
            return r
        if line == "print(errorqueue.count)":
            return f"{len(self.errors.get('k2600', [])):.5e}"
        if line == "print(errorqueue.next())":
            code, msg = self.errors["k2600"].pop(0).split(":", 1)
            return f"{code}\t{msg.strip()}\t2\t0"
        if line == "format.asciiprecision = 16":
            return None
        sync = re.fullmatch(r'print\("(xbl-sync-[\w-]+)"\)', line)
        if sync:
            return sync[1]
        m = re.fullmatch(r"smu([ab])\.(.*)", line) or re.fullmatch(r"print\((.*)\)", line)
        assert m, f"2600B fake: unexpected {line!r}"
        if line.startswith("print(ConfigPulseVMeasureI(smu"):
            ch = line[len("print(ConfigPulseVMeasureI(smu")]
            args = line.split("(", 2)[2].rstrip(")").split(",")
            self._pending = (ch, float(args[2]), float(args[4]))
            return "true\tpulse configured"
        if line.startswith("print(InitiatePulseTest("):
            ch, v, w = self._pending
            smu = self.smus[f"k2600.{ch}"]
            assert smu.on, "pulse with the output off"
            self.levels_seen.append(v)
            smu.pulses.append((v, w))
            self._pulse_i = self.current(smu.name, level=v)
            return "true\tpulse done"
        mo = re.fullmatch(r"print\(smu([ab])\.source\.output, smu[ab]\.source\.levelv\)", line)
        if mo:
            smu = self.smus[f"k2600.{mo[1]}"]
            return f"{float(smu.on):.5e}\t{smu.level:.5e}"
        if re.fullmatch(r"print\(smu[ab]\.nvbuffer1\.readings\[1\]\)", line):
            return f"{self._pulse_i:.15e}"  # format.asciiprecision = 16
        mm = re.fullmatch(r"print\(smu([ab])\.measure\.i\(\), smu[ab]\.source\.compliance\)",
                          line)
        if mm:
            smu = self.smus[f"k2600.{mm[1]}"]
            i = self.current(smu.name)
            comp = abs(i) >= smu.limit
            return f"{(np.sign(i) * min(abs(i), smu.limit)):.15e}\t{'true' if comp else 'false'}"
        ch = line[3]
        smu = self.smus[f"k2600.{ch}"]
        rest = line[5:]
        if rest in ("reset()", "abort()"):
            if rest == "reset()":
                smu.on, smu.level = False, 0.0
            return None
        mv = re.fullmatch(r"source\.levelv = " + NUM, rest)
        if mv:
            self._set_level(smu, float(mv[1]))
            return None
        ml = re.fullmatch(r"source\.limiti = " + NUM, rest)
        if ml:
            smu.limit = float(ml[1])
            return None
        if rest == f"source.output = smu{ch}.OUTPUT_ON":
            smu.on = True
            return None
        if rest == f"source.output = smu{ch}.OUTPUT_OFF":
            self._off(smu)
            return None
        if re.fullmatch(r"(source\.func|source\.autorange[vi]|measure\.autorange[vi]|"
                        r"measure\.autozero|nvbuffer1\.appendmode) = .*", rest) or \
                re.fullmatch(r"(source\.range[vi]|measure\.range[vi]|measure\.nplc) = " + NUM,
                             rest) or rest == "nvbuffer1.clear()":
            return None
        raise AssertionError(f"2600B fake: unexpected {line!r}")

    def k2450(self, inst: str, line: str, query: bool) -> str | None:
        r = self._common(inst, line, query)
        if r is not None:
            return r
        smu = self.smus[inst]
        if line == ":SYST:ERR?":
            errs = self.errors.get(inst, [])
            if errs:
                code, msg = errs.pop(0).split(":", 1)
                return f'{code},"{msg.strip()}"'
            return '0,"No error"'
        mv = re.fullmatch(r":SOUR:VOLT " + NUM, line)
        if mv:
            self._set_level(smu, float(mv[1]))
            return None
        ml = re.fullmatch(r":SOUR:VOLT:ILIM " + NUM, line)
        if ml:
            smu.limit = float(ml[1])
            return None
        if line == ":OUTP ON":
            smu.on = True
            return None
        if line == ":OUTP OFF":
            self._off(smu)
            return None
        if line == "*RST":
            smu.on = False
            return None
        if line == ":OUTP?":
            return "1" if smu.on else "0"
        if line in (':READ? "defbuffer1", SOUR, READ',
                    ':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ'):  # :FORM:ASC:PREC 16
            return f"{smu.level:.15E},{self.current(inst):.15E}"
        if line in (":SOUR:VOLT:ILIM:TRIP?",):
            return "0"
        if line == "*OPC?":
            return "1"
        known = ("*CLS", ":FORM:ASC:PREC 16", ":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"',
                 ":SENS:CURR:RANG:AUTO ON",
                 ":ABOR", ':TRIG:LOAD "Empty"', ":INIT", "*WAI", ":TRIG:BLOC:SOUR:STAT 1, ON",
                 ":TRIG:BLOC:SOUR:STAT 4, OFF", ":SOUR:VOLT:READ:BACK ON",
                 ':TRAC:CLE "defbuffer1"', ':TRIG:BLOC:MEAS 3, "defbuffer1"')
        if line in known or re.fullmatch(r":SOUR:VOLT:PROT PROT\d+", line) or \
                re.fullmatch(r"(:SENS:CURR:NPLC|:SENS:CURR:RANG|:TRIG:BLOC:DEL:CONS 2,) " + NUM,
                             line):
            return None
        raise AssertionError(f"2450 fake {inst}: unexpected {line!r}")

    def b2900(self, line: str, query: bool) -> str | bytes | None:
        r = self._common("b29", line, query)
        if r is not None:
            return r
        if line == ":SYST:ERR?":
            return '+0,"No error"'
        if line == "*OPC?":
            return "1"
        m = re.fullmatch(r":OUTP([12]) (ON|OFF)", line)
        if m:
            if m[2] == "ON":
                self.smus[f"b29.{m[1]}"].on = True
            else:
                self._off(self.smus[f"b29.{m[1]}"])
            return None
        m = re.fullmatch(r":OUTP([12])\?", line)
        if m:
            return "1" if self.smus[f"b29.{m[1]}"].on else "0"
        if re.fullmatch(r":OUTP[12]:ON:AUTO OFF", line) or line in (":FORM:DATA REAL,64",
                                                                     ":FORM:BORD NORM"):
            return None
        m = re.fullmatch(r":SOUR([12]):VOLT " + NUM, line)
        if m:
            self._set_level(self.smus[f"b29.{m[1]}"], float(m[2]))
            return None
        m = re.fullmatch(r":SENS([12]):CURR:PROT " + NUM, line)
        if m:
            self.smus[f"b29.{m[1]}"].limit = float(m[2])
            return None
        m = re.fullmatch(r":SOUR([12]):VOLT:TRIG " + NUM, line)
        if m:
            self.levels_seen.append(float(m[2]))
            self._peak = float(m[2])
            return None
        m = re.fullmatch(r":SOUR([12]):PULS:WIDT " + NUM, line)
        if m:
            self._width = float(m[2])
            return None
        m = re.fullmatch(r":INIT \(@([12])\)", line)
        if m:
            smu = self.smus[f"b29.{m[1]}"]
            assert smu.on, "pulse with the output off"
            smu.pulses.append((self._peak, self._width))
            i = self.current(smu.name, level=self._peak)
            self._trip[smu.name] = abs(i) >= smu.limit
            self._pulse_i = float(np.sign(i) * min(abs(i), smu.limit))
            return None
        m = re.fullmatch(r":FETC:SCAL:CURR\? \(@([12])\)", line)
        if m:  # :FORM:DATA REAL,64 with :FORM:BORD NORM: one big-endian double in a block
            return b"#18" + struct.pack(">d", self._pulse_i) + b"\n"
        m = re.fullmatch(r":MEAS:CURR\? \(@([12])\)", line)
        if m:
            smu = self.smus[f"b29.{m[1]}"]
            i = self.current(smu.name)
            self._trip[smu.name] = abs(i) >= smu.limit
            return b"#18" + struct.pack(">d", np.sign(i) * min(abs(i), smu.limit)) + b"\n"
        m = re.fullmatch(r":SENS([12]):CURR:PROT:TRIP\?", line)
        if m:
            return "1" if self._trip.get(f"b29.{m[1]}") else "0"
        if re.fullmatch(r":ABOR \(@[12]\)", line) or re.fullmatch(
                r"(:SOUR[12]:FUNC:MODE VOLT|:SOUR[12]:FUNC:SHAP (DC|PULS)|:SOUR[12]:VOLT:MODE FIX"
                r"|:SOUR[12]:VOLT:RANG:AUTO OFF|:SENS[12]:FUNC \"CURR\"|:SENS[12]:CURR:RANG:AUTO ON"
                r"|:SOUR[12]:PULS:DEL 0|:TRIG[12]:COUN 1)", line) or re.fullmatch(
                r"(:SOUR[12]:VOLT:RANG|:SENS[12]:CURR:NPLC|:SENS[12]:CURR:APER|:TRIG[12]:ACQ:DEL) "
                + NUM, line):
            return None
        raise AssertionError(f"B2900 fake: unexpected {line!r}")

    def k707b(self, line: str, query: bool) -> str | None:
        r = self._common("mtx", line, query)
        if r is not None:
            return r
        if line == "print(errorqueue.count)":
            return f"{len(self.errors.get('mtx', [])):.5e}"
        if line == "*OPC?":
            return "1"
        if line == "channel.connectrule = channel.BREAK_BEFORE_MAKE":
            return None
        if line == 'channel.open("allslots")':
            self.closed.clear()
            return None
        m = re.fullmatch(r'channel\.close\("([0-9A-H,]+)"\)', line)
        if m:
            live = [s.name for s in self.smus.values() if s.on]
            if live:
                self.violations.append(f"relays closed with outputs on: {live}")
            self.closed |= set(m[1].split(","))
            return None
        if line == 'print(channel.getclose("allslots"))':
            return ";".join(sorted(self.closed)) if self.closed else "nil"
        raise AssertionError(f"707B fake: unexpected {line!r}")

    # -- wiring into drivers -----------------------------------------------------------------
    def transport(self, name: str, cfg: InstrumentConfig) -> Transport:
        handlers = {
            "k2600": self.k2600,
            "brow": lambda line, q: self.k2450("brow", line, q),
            "bcol": lambda line, q: self.k2450("bcol", line, q),
            "mtx": self.k707b,
            "b29": self.b2900,
        }
        return CallbackTransport(handlers[name], address=cfg.address)


B2900_BUSES = {"A": "b29.1", "B": "b29.2", "C": "brow", "D": "bcol"}


def bench_config(rows: int = 3, cols: int = 3, smu: str = "k2600", **limits: float
                 ) -> BenchConfig:
    """The fake bench: drive/sense on a 2636B (``smu="k2600"``) or a B2902A (``"b29"``)."""
    data = {
        "name": "fake",
        "rows": rows, "cols": cols, "settle": 0.0, "nplc": 1.0,
        "instruments": {
            "k2600": {"driver": "keithley2600", "address": "TCPIP::10.0.0.2::INSTR",
                      "identity": "Model 2636B"},
            "brow": {"driver": "keithley2450", "address": "TCPIP::10.0.0.3::INSTR",
                     "identity": "MODEL 2450"},
            "bcol": {"driver": "keithley2450", "address": "TCPIP::10.0.0.4::INSTR",
                     "identity": "MODEL 2450"},
            "mtx": {"driver": "keithley707b", "address": "TCPIP::10.0.0.5::INSTR",
                    "identity": "Model 707B"},
            "b29": {"driver": "keysight_b2900", "address": "TCPIP::10.0.0.7::INSTR",
                    "identity": "B2902A"},
        },
        "roles": {"drive": "k2600.a" if smu == "k2600" else "b29.1",
                  "sense": "k2600.b" if smu == "k2600" else "b29.2",
                  "bias_row": "brow", "bias_col": "bcol", "matrix": "mtx"},
        "pins": {"slot": 1, "rows": list(range(1, rows + 1)),
                 "cols": list(range(rows + 1, rows + cols + 1)),
                 "drive": "A", "sense": "B", "bias_row": "C", "bias_col": "D"},
        "limits": {"v_max": 3.0, "compliance": 1e-3, **limits},
    }
    return validate_config(data, BenchConfig, "fake bench")
