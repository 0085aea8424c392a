"""Emulated crossbar board speaking XBL v1 (the line protocol of `xbarlab.drivers.serial_board`),
with a simulated crossbar on its lines.

The board has one line driver per row and column (a level in volts or ``Z`` = floating), a
read/pulse driver and a sense amplifier (virtual ground) that ``SEL`` connects to one row and
one column. ``READ``/``PULSE``/``ICOL?`` solve the simulated array for the line potentials the
board applies (floating lines by Kirchhoff's law); a pulse evolves the devices for its width.
A current beyond ``ILIM`` is clipped to the limit, flagged ``C = 1`` and queues error 6.

Board limits: |V| <= `v_max` (default 5 V) on every driver, pulse width 100 ns .. 1 s,
ILIM 1 nA .. 100 mA; anything beyond is refused (``ERR 3``), never clamped.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.crossbar import SimCrossbar

ERRORS = {1: "unknown command", 2: "bad argument", 3: "out of range", 4: "nothing selected",
          5: "hardware fault", 6: "compliance"}
_NUM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class BoardError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.text = ERRORS[code] + (f": {detail}" if detail else "")


class Board:
    """An XBL v1 board wired to `sim` (or to nothing: every current is 0)."""

    def __init__(self, name: str = "board", sim: SimCrossbar | None = None,
                 shape: tuple[int, int] | None = None, *, v_max: float = 5.0,
                 serial: str = "EMU0001") -> None:
        if sim is None and shape is None:
            raise ValueError("give the simulated crossbar or at least the board's shape")
        self.name = name
        self.sim = sim
        resolved = sim.shape if sim is not None else shape
        assert resolved is not None
        self.shape: tuple[int, int] = (int(resolved[0]), int(resolved[1]))
        self.v_max = float(v_max)
        self.identity = f"XBLAB,XBL-{self.shape[0]}x{self.shape[1]},{serial},1.0"
        self.lock = threading.RLock()
        self.errors: list[tuple[int, str]] = []
        self.received: list[str] = []
        self.force_trip = False
        self.pulses: list[tuple[FloatArray, FloatArray, float]] = []  # row_v, col_v, width
        self.ilim = 1e-3  # A, until ILIM sets it (OFF keeps it)
        self._off()

    def _off(self) -> None:
        self.rows = np.full(self.shape[0], np.nan)
        self.cols = np.full(self.shape[1], np.nan)
        self.selected: tuple[int, int] | None = None

    @property
    def safe(self) -> bool:
        return (self.selected is None and bool(np.isnan(self.rows).all())
                and bool(np.isnan(self.cols).all()))

    def inject(self, kind: str, line: str = "") -> None:
        if kind == "trip":
            self.force_trip = True
        elif kind == "error":
            self.errors.append((5, "hardware fault: injected"))

    # -- protocol -----------------------------------------------------------------------------
    def handle(self, line: str) -> str | None:
        self.received.append(line)
        words = line.split()
        if not words:
            return None
        try:
            with self.lock:
                return self._dispatch(words[0].upper(), words[1:])
        except BoardError as err:
            self.errors.append((err.code, err.text))
            return f"ERR {err.code} {err.text}"

    def _dispatch(self, cmd: str, args: list[str]) -> str:
        if cmd == "*IDN?" and not args:
            return self.identity
        if cmd == "SHAPE?" and not args:
            return f"{self.shape[0]},{self.shape[1]}"
        if cmd == "ERR?" and not args:
            code, text = self.errors.pop(0) if self.errors else (0, "No error")
            return f"{code},{text}"
        if cmd == "ILIM" and len(args) == 1:
            self.ilim = self._num(args[0], 1e-9, 0.1)
            return "OK"
        if cmd in ("ROW", "COL") and len(args) == 2:
            lines = self.rows if cmd == "ROW" else self.cols
            i = self._index(args[0], len(lines))
            lines[i] = math.nan if args[1].upper() == "Z" else self._num(args[1], -self.v_max,
                                                                       self.v_max)
            return "OK"
        if cmd == "SEL" and args == ["NONE"]:
            self.selected = None
            return "OK"
        if cmd == "SEL" and len(args) == 2:
            self.selected = (self._index(args[0], self.shape[0]),
                             self._index(args[1], self.shape[1]))
            return "OK"
        if cmd == "READ" and len(args) == 1:
            cur, c = self._drive(self._num(args[0], -self.v_max, self.v_max), None)
            return f"{cur!r},{int(c)}"
        if cmd == "PULSE" and len(args) == 2:
            v = self._num(args[0], -self.v_max, self.v_max)
            cur, c = self._drive(v, self._num(args[1], 1e-7, 1.0))
            return f"{cur!r},{int(c)}"
        if cmd == "ICOL?" and not args:
            return self._columns()
        if cmd == "OFF" and not args:
            self._off()
            return "OK"
        known = {"*IDN?", "SHAPE?", "ERR?", "ILIM", "ROW", "COL", "SEL", "READ", "PULSE",
                 "ICOL?", "OFF"}
        raise BoardError(2 if cmd in known else 1, f"{cmd} {' '.join(args)}".strip())

    @staticmethod
    def _num(text: str, lo: float, hi: float) -> float:
        if not _NUM.fullmatch(text):
            raise BoardError(2, f"not a number: {text!r}")
        v = float(text)
        if not lo <= v <= hi:
            raise BoardError(3, f"{v:g} not in [{lo:g}, {hi:g}]")
        return v

    @staticmethod
    def _index(text: str, n: int) -> int:
        if not text.isdigit():
            raise BoardError(2, f"not an index: {text!r}")
        i = int(text)
        if i >= n:
            raise BoardError(3, f"index {i} not in 0..{n - 1}")
        return i

    # -- physics ------------------------------------------------------------------------------
    def _clip(self, i: float) -> tuple[float, bool]:
        if self.force_trip:
            self.force_trip = False
            i = math.copysign(self.ilim * 2, i or 1.0)
        if abs(i) > self.ilim:
            self.errors.append((6, ERRORS[6]))
            return math.copysign(self.ilim, i), True
        return i, False

    def _drive(self, volts: float, width: float | None) -> tuple[float, bool]:
        if self.selected is None:
            raise BoardError(4)
        r, c = self.selected
        row_v, col_v = self.rows.copy(), self.cols.copy()
        row_v[r], col_v[c] = volts, 0.0
        if self.sim is None:
            return self._clip(0.0)
        sol = self.sim.circuit.solve(self.sim.devices, row_v[None], col_v[None])
        i = float(sol.i_cols[0, c])
        if width is None:
            i = float(self.sim.devices.read_noise(np.array([i]), self.sim.rng)[0])
        else:
            self.sim.devices.apply_voltage(sol.v_dev[0], width, self.sim.rng)
            self.pulses.append((row_v, col_v, width))
        return self._clip(i)

    def _columns(self) -> str:
        n = self.shape[1]
        if self.sim is None:
            currents = np.zeros(n)
        else:
            row_v = self.rows.copy()
            sol = self.sim.circuit.solve(self.sim.devices, row_v[None], np.zeros((1, n)))
            currents = self.sim.devices.read_noise(sol.i_cols[0], self.sim.rng)
        out, tripped = [], False
        for i in currents:
            v, t = self._clip(float(i))
            out.append(repr(v))
            tripped |= t
        return ",".join(out) + f";{int(tripped)}"
