"""`ArcTwoCrossbar`: the `Crossbar` interface on an ArC TWO through pyarc2 (the only module
that imports pyarc2; install with the ``arc2`` extra).

Every call is one of pyarc2 0.6.0's `Instrument` methods, checked against the installed package
(``inspect.signature``) and its documentation:

- read, grounded scheme: ``read_one(low=word channel, high=bit channel, -vread)`` (low, the
  row, at +vread; every other channel at 0 V; the current read on high, the selected column:
  the cell sees +vread and is sensed on its column, as every xbarlab backend senses it). The
  instrument grounds the levels after the read.
- read, V/2, V/3: ``config_channels([(ch, V), ...], 0.0)`` puts the selected row at +vread,
  the selected column at 0 V and the unselected lines at the scheme's levels, then
  ``read_slice_open([column channel], True)`` measures the current on the selected column
  (as the sim backend senses it), then ``finalise_operation(idle)``.
- floating-unselected reads are refused: ``read_slice_open`` puts every channel back in
  arbitrary-voltage mode (libarc2: global channel state VoltArb) before it reads, so no line
  stays floating during a read.
- pulse, V/2: ``ground_all()``, ``pulse_one(low=bit, high=word, V, nanos)`` (+V/2 on the row,
  -V/2 on the column, every other line at 0 V: the V/2 scheme shifted by -V/2, which no cell
  can tell from the usual one), ``finalise_operation(idle)``, all in one command buffer.
- pulse, floating: ``connect_to_gnd([])``, ``float_all()``, ``pulse_one(...)`` (floating
  channels stay floating), ``finalise_operation(idle)``.
- V/3 and grounded-unselected pulses are refused: the high-speed path (``pulse_one``) sets only
  the selected pair; DAC-timed arbitrary levels (``config_channels`` + ``delay``) are not a
  nanosecond pulse.
- MVM: rows at their inputs and columns at 0 V with ``config_channels``, every column current
  with one ``read_slice_open``.
- widths: 40 ns .. 500 ms on the high-speed drivers in 10 ns steps; anything not a multiple of
  10 ns, shorter than 40 ns (pyarc2 would silently make it 40 ns) or 500 ms and longer (the
  slow path stays biased until the next grounding command) is refused.
- voltages: pyarc2 does not check them (clamps silently to +-10 V, NaN becomes -10 V), so every
  level is checked here against the bench limits before any call; the bench v_max must lie in
  the standard +-10 V range (the extended range is never selected).
- current: the instrument has no compliance; a reading at or beyond the bench compliance is
  flagged (after the fact), and a bench compliance above the largest current the read path
  converts (~12.3 mA, `I_READ_MAX`) is refused.
- safe state: ``finalise_operation(IdleMode.<idle>)`` (Float by default: every channel
  disconnected; SoftGnd: every channel at 0 V; HardGnd: tied to ground). Every operation ends
  with it inside the same command buffer as the operation (reads: the instrument's own
  grounding after ``read_one``), so the instrument is idle between buffers whatever the host
  does next. Between a V/2 / V/3 read and its finalise call the unselected lines stay at their
  read levels (at most ``read_v_max``).

Current sign: a reading is the current out of the read channel into the array; the selected
column's current is reported as the current into it (`ReadResult` convention).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import pyarc2

from xbarlab.bench.arctwo_config import I_READ_MAX, V_RANGE_STD, ArcTwoBenchConfig, ChannelMap
from xbarlab.bench.safety import (
    SafeStateError,
    check_array_levels,
    check_mvm,
    check_pulse,
    check_read,
    guarded,
)
from xbarlab.biasing import line_biases
from xbarlab.crossbar import (
    BiasScheme,
    Cell,
    FloatArray,
    IntArray,
    MvmResult,
    PulseCapability,
    PulseResult,
    ReadResult,
    all_cells,
    as_cells,
    check_cells,
)
from xbarlab.limits import BenchLimits, LimitViolation

HS_STEP = 10e-9  # s, high-speed driver resolution
HS_MIN = 40e-9  # s, shortest high-speed pulse (1-40 ns become 40 ns)
HS_MAX = 0.5 - HS_STEP  # s, longest pulse of the high-speed path
IDLE = {"float": "Float", "soft_gnd": "SoftGnd", "hard_gnd": "HardGnd"}
CAPABILITY = PulseCapability(
    source="ArC TWO high-speed drivers (pulse_one)", width_min=HS_MIN, width_max=HS_MAX,
    step=HS_STEP, pulse_schemes=(BiasScheme.HALF, BiasScheme.FLOATING),
    read_schemes=(BiasScheme.GROUNDED, BiasScheme.HALF, BiasScheme.THIRD),
    note="V/2 in hardware (+V/2 on the row, -V/2 on the column); V/3 and grounded-unselected "
         "pulses need arbitrary DAC levels, which are not nanosecond pulses")


class Arc2Instrument(Protocol):
    """The part of `pyarc2.Instrument` this backend uses (names and argument order as pyarc2)."""

    def read_one(self, low: int, high: int, vread: float) -> float: ...
    def read_slice_open(self, highs: Any, ground_after: bool) -> Any: ...
    def config_channels(self, input: Any, base: float | None) -> Any: ...
    def pulse_one(self, low: int, high: int, voltage: float, nanos: int) -> Any: ...
    def ground_all(self) -> Any: ...
    def float_all(self) -> Any: ...
    def connect_to_gnd(self, chans: Any) -> Any: ...
    def execute(self) -> Any: ...
    def wait(self) -> None: ...
    def finalise_operation(self, mode: Any = None, control: Any = None) -> None: ...


def width_nanos(width: float) -> int:
    """`width` (s) as the integer nanoseconds pyarc2 takes; refuses what it cannot produce."""
    problem = CAPABILITY.width_problem(width)
    if problem is not None:
        raise LimitViolation(problem)
    return round(width / HS_STEP) * 10


class ArcTwoCrossbar:
    """A passive crossbar on an ArC TWO. No I/O in the constructor."""

    pulse_capability = CAPABILITY

    def __init__(self, instrument: Arc2Instrument, mapping: ChannelMap, shape: tuple[int, int],
                 limits: BenchLimits, *, idle: str = "float", operation_timeout: float = 30.0,
                 description: dict[str, Any] | None = None) -> None:
        if limits.v_max > V_RANGE_STD:
            raise ValueError(f"bench v_max {limits.v_max:g} V is beyond the ArC TWO standard "
                             f"range +-{V_RANGE_STD:g} V")
        if limits.compliance > I_READ_MAX:
            raise ValueError(f"bench compliance {limits.compliance:g} A is beyond what the "
                             f"ArC TWO reads ({I_READ_MAX * 1e3:.1f} mA)")
        mapping.check(shape, "mapping")
        self.instrument = instrument
        self.mapping = mapping
        self._shape = (int(shape[0]), int(shape[1]))
        self.limits = limits
        self.idle = pyarc2.IdleMode[IDLE[idle]]
        self.operation_timeout = operation_timeout
        self._description = dict(description or {})
        self._rows = np.array(mapping.words[: shape[0]], dtype=np.int64)
        self._cols = np.array(mapping.bits[: shape[1]], dtype=np.int64)
        self.closer: Any = None  # set by whoever opened the link

    # -- Crossbar interface -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def read(self, cells: Sequence[Cell] | IntArray | None, v_read: float,
             scheme: BiasScheme) -> ReadResult:
        check_read(self.limits, v_read)
        idx = all_cells(self._shape) if cells is None else as_cells(cells)
        check_cells(idx, self._shape)
        scheme = BiasScheme(scheme)
        if scheme not in CAPABILITY.read_schemes:
            raise LimitViolation(f"read scheme {scheme.value}: the ArC TWO backend reads with "
                                 "grounded, v/2 or v/3 unselected lines only")
        v = float(v_read)
        plans = [None if scheme is BiasScheme.GROUNDED else self._levels((int(r), int(c)), v,
                                                                          scheme)
                 for r, c in idx]
        currents = np.empty(len(idx))
        with self._operation():
            for k, ((r, c), plan) in enumerate(zip(idx, plans, strict=True)):
                row, col = int(self._rows[r]), int(self._cols[c])
                if plan is None:
                    currents[k] = -float(self.instrument.read_one(row, col, -v))
                    continue
                self.instrument.config_channels(plan, 0.0)
                got = self.instrument.read_slice_open([col], True)
                currents[k] = -float(got[col])
                self.instrument.finalise_operation(self.idle)
        if not np.isfinite(currents).all():
            raise SafeStateError("ArC TWO returned a non-finite current")
        comp = np.abs(currents) >= self.limits.compliance
        return ReadResult(idx, v, currents, comp)

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        check_pulse(self.limits, cell, voltage, width)
        check_cells(as_cells([cell]), self._shape)
        scheme = BiasScheme(scheme)
        if scheme not in CAPABILITY.pulse_schemes:
            raise LimitViolation(f"pulse scheme {scheme.value}: the ArC TWO backend pulses "
                                 "with v/2 or floating unselected lines only")
        nanos = width_nanos(float(width))
        r, c = int(cell[0]), int(cell[1])
        v = float(voltage)
        if abs(v) / 2 > self.limits.v_max:
            raise LimitViolation(f"pulse of {v:+.4g} V puts {abs(v) / 2:.4g} V on a channel, "
                                 f"beyond the bench limit {self.limits.v_max:.4g} V")
        row, col = int(self._rows[r]), int(self._cols[c])
        with self._operation():
            if scheme is BiasScheme.FLOATING:
                self.instrument.connect_to_gnd([])
                self.instrument.float_all()
            else:
                self.instrument.connect_to_gnd([])
                self.instrument.ground_all()
            self.instrument.pulse_one(col, row, v, nanos)
            self.instrument.finalise_operation(self.idle)  # executes the whole buffer
            self.instrument.wait()
        return PulseResult((r, c), v, nanos / 1e9)

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
        if v.shape[1] != self._shape[0]:
            raise ValueError(f"v_rows has {v.shape[1]} entries per vector, the array has "
                             f"{self._shape[0]} rows")
        check_mvm(self.limits, v)
        out = np.zeros((v.shape[0], self._shape[1]))
        cols = [int(c) for c in self._cols]
        with self._operation():
            for b, vec in enumerate(v):
                cfg = [(int(ch), float(x)) for ch, x in zip(self._rows, vec, strict=True)]
                cfg += [(ch, 0.0) for ch in cols]
                self.instrument.config_channels(cfg, 0.0)
                got = self.instrument.read_slice_open(cols, True)
                out[b] = [-float(got[ch]) for ch in cols]
                self.instrument.finalise_operation(self.idle)
        comp = np.abs(out) >= self.limits.compliance
        return MvmResult(v, out, comp.ravel())

    def describe(self) -> dict[str, Any]:
        cap = CAPABILITY
        out: dict[str, Any] = {
            "backend": "arc2", "shape": list(self._shape), "mapping": self.mapping.name,
            "words": [int(x) for x in self._rows], "bits": [int(x) for x in self._cols],
            "idle": self.idle.name, "limits": self.limits.model_dump(),
            "pulse_width": [cap.width_min, cap.width_max], "pulse_step": cap.step,
            "pulse_schemes": [s.value for s in cap.pulse_schemes],
            "compliance": "not enforced by the instrument; readings at or beyond it flagged",
        }
        out.update(self._description)
        return out

    def safe_state(self) -> None:
        try:
            self.instrument.finalise_operation(self.idle)
            self.instrument.wait()
        except BaseException as exc:
            raise SafeStateError(f"ArC TWO idle ({self.idle.name}) failed: {exc}") from exc

    def close(self) -> None:
        """Safe state, then close the link (when the opener registered a `closer`)."""
        if self.closer is not None:
            self.closer()
        else:
            self.safe_state()

    # -- helpers -------------------------------------------------------------------------------
    @contextmanager
    def _operation(self) -> Iterator[None]:
        with guarded(self.safe_state, self.operation_timeout):
            yield

    def _levels(self, cell: Cell, volts: float, scheme: BiasScheme) -> list[tuple[int, float]]:
        """(channel, V) for every mapped line (floating lines left out); checked first."""
        row_v, col_v = line_biases(self._shape, cell, volts, scheme)
        check_array_levels(self.limits, "row line", row_v)
        check_array_levels(self.limits, "column line", col_v)
        out = [(int(ch), float(x)) for ch, x in zip(self._rows, row_v, strict=True)
               if not math.isnan(x)]
        out += [(int(ch), float(x)) for ch, x in zip(self._cols, col_v, strict=True)
                if not math.isnan(x)]
        return out


def connect_instrument(config: ArcTwoBenchConfig) -> Arc2Instrument:  # pragma: no cover
    """The real ArC TWO of `config` (EFM id and firmware); needs the hardware."""
    ids = pyarc2.find_ids()
    if int(config.address) not in ids:
        raise ConnectionError(f"no ArC TWO with id {config.address} (found {ids})")
    inst: Arc2Instrument = pyarc2.Instrument(int(config.address), str(config.firmware))
    return inst


def find_instrument_ids() -> list[int]:
    """The EFM ids of the connected ArC TWOs (pyarc2.find_ids; empty when none or when the
    platform has no driver)."""
    try:
        return [int(i) for i in pyarc2.find_ids()]
    except Exception:  # pyarc2 raises for an unsupported platform or a USB error
        return []
