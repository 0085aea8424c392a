"""An emulated ArC TWO: the methods of `pyarc2.Instrument` (0.6.0) over a simulated crossbar.

Same method names, argument order and semantics as the installed pyarc2 (checked with
``inspect.signature`` and the docstrings of pyarc2 0.6.0 and the libarc2 source):

- Queued mode: ``config_channels``, ``ground_all``, ``ground_all_fast``, ``float_all``,
  ``open_channels``, ``connect_to_gnd``, ``delay``, ``pulse_one`` only queue; ``execute()``
  runs the queue; a call that returns data (``read_one``, ``read_slice_open``) runs the queue
  first. ``wait()`` returns once the queue has run (here at once); ``busy()`` is False.
- ``read_one(low, high, vread)``: every channel to arbitrary-voltage mode at 0 V, ``low`` at
  -vread, the current read on ``high``; afterwards every level back to 0 V
  (libarc2: ``ground_all_fast`` after the read). Returned as a 32-bit float, like the ADC path.
- ``read_slice_open(highs, ground_after)``: currents on ``highs`` at the levels the channels
  were configured to (no bias set-up), after every channel is put in arbitrary-voltage mode
  (libarc2 sets the global channel state to VoltArb: a floating channel is driven again at its
  DAC level); 64 values indexed by channel, NaN where not read; with ``ground_after`` the read
  channels go to 0 V afterwards (the others keep their levels).
- ``pulse_one(low, high, voltage, nanos)``: +voltage/2 on ``high``, -voltage/2 on ``low`` for
  the width, every other channel at 0 V unless it is floating (floating channels stay
  floating); both pulsed channels back at 0 V afterwards.
- widths: below 500 ms in 10 ns steps (1-40 ns become 40 ns); 500 ms or more not emulated
  (the library keeps those biased until the next grounding command).
- ``finalise_operation(IdleMode.Float | SoftGnd | HardGnd)``: what pyarc2's Python layer
  queues for each mode, then ``execute()``.
- Voltages are NOT checked by pyarc2: every level is clamped to +-10 V and NaN becomes -10 V.
  The emulator does the same and records each such event in `clamped`, so tests can assert
  the backend never relied on it. A channel >= 64 raises `Arc2Panic` (a BaseException, like
  pyo3's PanicException for calls that return data).

Current sign: the current out of the read channel into the array (positive for ``read_one``
of a cell of positive conductance: ``high`` at 0 V sources the current that ``low`` at -vread
sinks). The real instrument's sign convention is not documented; arc2control uses |V / I|.

Channels reach crossbar lines through an arc2control-style mapping: crossbar row i is word
``words[i]``, column j is bit ``bits[j]``. Channels not mapped touch nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim.crossbar import SimCrossbar

N_CHANNELS = 64
V_CLAMP = 10.0  # V, standard output range
HS_LIMIT_NS = 500_000_000  # widths from here on use the slow (DAC) path
HS_STEP_NS = 10
HS_MIN_NS = 40


class Arc2Panic(BaseException):
    """What pyarc2 raises (pyo3_runtime.PanicException) for e.g. a channel number >= 64."""


class Arc2Error(Exception):
    """Stand-in for pyarc2.ArC2Error (queued methods)."""


def hs_nanos(nanos: int) -> int:
    """The width the high-speed drivers produce for a requested width in ns."""
    if nanos <= 0:
        raise Arc2Error(f"HS Channel pulse width {nanos} too short")
    n = max(HS_MIN_NS, round(nanos / HS_STEP_NS) * HS_STEP_NS)
    return n


@dataclass
class AppliedPulse:
    """One pulse as it reached the array (for tests)."""

    row_v: FloatArray
    col_v: FloatArray
    nanos: int


@dataclass
class EmulatedInstrument:
    """A pyarc2.Instrument stand-in wired to `sim` by `words` (rows) and `bits` (columns)."""

    sim: SimCrossbar
    words: Sequence[int]
    bits: Sequence[int]
    mode: list[str] = field(default_factory=lambda: ["arb"] * N_CHANNELS)  # arb | open
    level: list[float] = field(default_factory=lambda: [0.0] * N_CHANNELS)
    grounded: set[int] = field(default_factory=set)  # hard ground overlay (connect_to_gnd)
    clamped: list[str] = field(default_factory=list)
    pulses: list[AppliedPulse] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        m, n = self.sim.shape
        if len(self.words) < m or len(self.bits) < n:
            raise ValueError(f"mapping has {len(self.words)} words x {len(self.bits)} bits, "
                             f"the array is {m} x {n}")
        self._queue: list[Callable[[], None]] = []
        self._row_of = {int(ch): i for i, ch in enumerate(self.words[:m])}
        self._col_of = {int(ch): j for j, ch in enumerate(self.bits[:n])}

    # -- state ----------------------------------------------------------------------------------
    def potential(self, ch: int) -> float:
        if ch in self.grounded:
            return 0.0
        return self.level[ch] if self.mode[ch] == "arb" else math.nan

    @property
    def safe(self) -> bool:
        """Every channel at 0 V or floating, nothing queued."""
        return not self._queue and all(
            math.isnan(v) or v == 0.0 for v in (self.potential(c) for c in range(N_CHANNELS)))

    def _lines(self, pot: Callable[[int], float]) -> tuple[FloatArray, FloatArray]:
        m, n = self.sim.shape
        row_v, col_v = np.full(m, np.nan), np.full(n, np.nan)
        for ch, i in self._row_of.items():
            row_v[i] = pot(ch)
        for ch, j in self._col_of.items():
            col_v[j] = pot(ch)
        return row_v, col_v

    def _current_out_of(self, ch: int, row_v: FloatArray, col_v: FloatArray) -> float:
        if (ch not in self._row_of and ch not in self._col_of) or (
                np.isnan(row_v).all() and np.isnan(col_v).all()):
            return 0.0
        sol = self.sim.circuit.solve(self.sim.devices, row_v[None], col_v[None])
        if ch in self._row_of:
            i = float(sol.i_rows[0, self._row_of[ch]])
        else:
            i = -float(sol.i_cols[0, self._col_of[ch]])
        return float(self.sim.devices.read_noise(np.array([i]), self.sim.rng)[0])

    # -- argument handling as pyarc2 does it ----------------------------------------------------
    @staticmethod
    def _chan(ch: Any) -> int:
        c = int(ch)
        if c < 0:  # numpy uint64 conversion wraps negatives
            c %= 2**64
        if c >= N_CHANNELS:
            raise Arc2Panic(f"channel {c} out of range")
        return c

    def _volts(self, v: float, where: str) -> float:
        x = float(v)
        if math.isnan(x):
            self.clamped.append(f"{where}: NaN became -10 V")
            return -V_CLAMP
        if abs(x) > V_CLAMP:
            self.clamped.append(f"{where}: {x:+g} V clamped to +-10 V")
            return math.copysign(V_CLAMP, x)
        return x

    def _q(self, name: str, op: Callable[[], None]) -> EmulatedInstrument:
        with self.lock:
            self.calls.append(name)
            self._queue.append(op)
        return self

    # -- queued methods -------------------------------------------------------------------------
    def config_channels(self, input: Iterable[tuple[int, float]],
                        base: float | None = None) -> EmulatedInstrument:
        cfg = [(self._chan(c), self._volts(v, f"config_channels ch {c}")) for c, v in input]
        b = None if base is None else self._volts(base, "config_channels base")

        def op() -> None:
            given = {c for c, _ in cfg}
            if b is not None:
                for c in range(N_CHANNELS):
                    if c not in given:
                        self.mode[c], self.level[c] = "arb", b
            for c, v in cfg:
                self.mode[c], self.level[c] = "arb", v
        return self._q("config_channels", op)

    def ground_all(self) -> EmulatedInstrument:
        def op() -> None:
            self.mode = ["arb"] * N_CHANNELS
            self.level = [0.0] * N_CHANNELS
        return self._q("ground_all", op)

    def ground_all_fast(self) -> EmulatedInstrument:
        def op() -> None:
            self.level = [0.0] * N_CHANNELS
        return self._q("ground_all_fast", op)

    def float_all(self) -> EmulatedInstrument:
        def op() -> None:
            self.mode = ["open"] * N_CHANNELS
        return self._q("float_all", op)

    def open_channels(self, channels: Iterable[int]) -> EmulatedInstrument:
        chans = [self._chan(c) for c in channels]

        def op() -> None:
            for c in chans:
                self.mode[c] = "open"
        return self._q("open_channels", op)

    def connect_to_gnd(self, chans: Iterable[int]) -> EmulatedInstrument:
        chosen = {self._chan(c) for c in chans}

        def op() -> None:
            self.grounded = set(chosen)
        return self._q("connect_to_gnd", op)

    def delay(self, nanos: int) -> EmulatedInstrument:
        if int(nanos) < 0:
            raise OverflowError("can't convert negative int to unsigned")
        return self._q("delay", lambda: None)

    def pulse_one(self, low: int, high: int, voltage: float, nanos: int) -> EmulatedInstrument:
        lo, hi = self._chan(low), self._chan(high)
        v = self._volts(voltage, "pulse_one")
        if int(nanos) >= HS_LIMIT_NS:
            raise Arc2Error("pulses of 500 ms or longer are not emulated")
        width_ns = hs_nanos(int(nanos))

        def op() -> None:
            def pot(c: int) -> float:
                if c == hi:
                    return v / 2
                if c == lo:
                    return -v / 2
                p = self.potential(c)
                return p if math.isnan(p) else 0.0
            row_v, col_v = self._lines(pot)
            sol = self.sim.circuit.solve(self.sim.devices, row_v[None], col_v[None])
            self.sim.devices.apply_voltage(sol.v_dev[0], width_ns / 1e9, self.sim.rng)
            self.sim.n_pulses += 1
            self.pulses.append(AppliedPulse(row_v, col_v, width_ns))
            for c in (lo, hi):
                self.mode[c], self.level[c] = "arb", 0.0
        return self._q("pulse_one", op)

    def execute(self) -> EmulatedInstrument:
        with self.lock:
            self.calls.append("execute")
            queue, self._queue = self._queue, []
            for op in queue:
                op()
        return self

    def wait(self) -> None:
        return None

    def busy(self) -> bool:
        return False

    def finalise_operation(self, mode: Any = None, control: Any = None) -> None:
        """`mode`: an IdleMode member (pyarc2's, or anything with the same member names)."""
        name = None if mode is None else getattr(mode, "name", str(mode))
        if name == "Float":
            self.connect_to_gnd([]).ground_all_fast().float_all().execute()
        elif name == "SoftGnd":
            self.connect_to_gnd([]).ground_all().execute()
        elif name == "HardGnd":
            self.ground_all_fast().float_all().connect_to_gnd(range(N_CHANNELS)).execute()
        elif name is not None:
            raise Arc2Error("Invalid idle mode")

    # -- methods that return data ---------------------------------------------------------------
    def read_one(self, low: int, high: int, vread: float) -> float:
        lo, hi = self._chan(low), self._chan(high)
        v = self._volts(-float(vread), "read_one")
        with self.lock:
            self.execute()
            self.calls[-1] = "read_one"
            self.mode = ["arb"] * N_CHANNELS
            self.level = [0.0] * N_CHANNELS
            self.level[lo] = v
            row_v, col_v = self._lines(self.potential)
            i = self._current_out_of(hi, row_v, col_v)
            self.level = [0.0] * N_CHANNELS
        return float(np.float32(i))

    def read_slice_open(self, highs: Iterable[int], ground_after: bool) -> np.ndarray:
        chans = [self._chan(c) for c in highs]
        out = np.full(N_CHANNELS, np.nan, dtype=np.float32)
        with self.lock:
            self.execute()
            self.calls[-1] = "read_slice_open"
            self.mode = ["arb"] * N_CHANNELS
            row_v, col_v = self._lines(self.potential)
            for c in chans:
                out[c] = np.float32(self._current_out_of(c, row_v, col_v))
            if ground_after or ground_after is None:
                for c in chans:
                    self.level[c] = 0.0
        return out
