"""The backend-agnostic `Crossbar` interface and its value types.

Every backend (the physics simulator, the bench, the emulated bench) implements `Crossbar`;
protocols only ever see this interface. Units are SI throughout: volts, amperes, siemens,
seconds.

Sign convention: a voltage "on a cell" is the potential of its row line minus that of its
column line. A positive pulse is a SET (conductance goes up), a negative pulse a RESET.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Cell = tuple[int, int]
"""(row, column), zero-based."""

CellSink = Callable[[Cell, float, float, bool], None]
"""``on_cell(cell, voltage, current, compliance)``: an optional hook of a backend that measures
the cells of one read or MVM one after the other; it calls it after each cell (outputs off),
so that the run engine can log every cell as it is measured (`xbarlab.cells`)."""

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


class BiasScheme(StrEnum):
    """How the unselected lines are biased while one cell is read or pulsed.

    - ``HALF`` (V/2): every unselected line at V/2; half-selected cells see V/2.
    - ``THIRD`` (V/3): unselected rows at V/3, unselected columns at 2V/3; every other cell
      sees +-V/3.
    - ``GROUNDED``: every unselected line at 0 V (the usual read scheme: the sensed column then
      collects only the selected cell's current when wires are ideal).
    - ``FLOATING``: unselected lines left open (worst-case sneak paths).
    """

    HALF = "v/2"
    THIRD = "v/3"
    GROUNDED = "grounded"
    FLOATING = "floating"


def as_cells(cells: Sequence[Cell] | IntArray) -> IntArray:
    """Cells as an int64 array of shape (k, 2)."""
    arr = np.asarray(cells, dtype=np.int64)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"cells must be a sequence of (row, col) pairs, got shape {arr.shape}")
    return arr


def all_cells(shape: tuple[int, int]) -> IntArray:
    """Every cell of an array of `shape`, row-major."""
    rows, cols = np.indices(shape)
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.int64)


def check_cells(cells: IntArray, shape: tuple[int, int]) -> None:
    """Raise ``IndexError`` naming the first cell outside an array of `shape`."""
    bad = (cells[:, 0] < 0) | (cells[:, 0] >= shape[0]) | (cells[:, 1] < 0) | (
        cells[:, 1] >= shape[1]
    )
    if bad.any():
        r, c = cells[np.argmax(bad)]
        raise IndexError(f"cell ({r}, {c}) is outside the {shape[0]} x {shape[1]} array")


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Currents measured at the sensed (selected) column for each read cell."""

    cells: IntArray  # (k, 2)
    v_read: float  # V
    currents: FloatArray  # (k,) A
    compliance: BoolArray  # (k,) True where the instrument hit its current limit

    @property
    def conductances(self) -> FloatArray:
        """Apparent conductance I / V (S): what a bench derives, sneak currents included.

        NaN where the read hit the current compliance: the current was clamped by the
        instrument, so I / V says nothing about the cell (never use it as a conductance)."""
        cur, hit = self.currents, self.compliance
        if type(cur) is np.ndarray and cur.shape == (1,) and cur.dtype == np.float64 \
                and type(hit) is np.ndarray and hit.shape == (1,):
            # one read (a verify): the same value on floats
            return np.array([math.nan if hit[0] else float(cur[0]) / self.v_read])
        g = cur / self.v_read
        return np.where(np.asarray(hit, dtype=bool), np.nan, g)

    @property
    def any_compliance(self) -> bool:
        return bool(np.asarray(self.compliance, dtype=bool).any())


@dataclass(frozen=True, slots=True)
class PulseResult:
    """A programming pulse that was applied."""

    cell: Cell
    voltage: float  # V, signed: + SET, - RESET
    width: float  # s
    current: float = float("nan")  # A during the pulse, when the backend measures it
    compliance: bool = False


@dataclass(frozen=True, slots=True)
class MvmResult:
    """Matrix-vector multiply: row voltages in, column currents out (columns at virtual ground)."""

    v_rows: FloatArray  # (B, M) V
    currents: FloatArray  # (B, N) A
    compliance: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class SafeStateFailure(RuntimeError):
    """A backend tried its safe state after a fault and could not confirm it. Raised once;
    callers must not try again in the same process (the session's supervisor does, on fresh
    links, once the session has ended)."""


@runtime_checkable
class ReportsNotices(Protocol):
    """A backend that has things to log besides results (a link reopened, a warning)."""

    def drain_notices(self) -> list[tuple[str, str]]:
        """(kind, message) pairs since the last call; kind is "reconnect" or "fault"."""
        ...


@runtime_checkable
class Crossbar(Protocol):
    """A passive M x N crossbar, simulated or on the bench."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        ...

    def read(
        self, cells: Sequence[Cell] | IntArray | None, v_read: float, scheme: BiasScheme
    ) -> ReadResult:
        """Read `cells` (``None``: the whole array, row-major) one at a time at `v_read`."""
        ...

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        """Apply one programming pulse of signed `voltage` and `width` seconds to `cell`."""
        ...

    def mvm(self, v_rows: FloatArray) -> MvmResult:
        """Drive rows with `v_rows` ((M,) or (B, M)), return column currents ((B, N))."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description of this backend, for provenance."""
        ...

    def safe_state(self) -> None:
        """Put everything in a safe state: no output, 0 V, relays open. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class PulseCapability:
    """What pulses (and biasing) a backend can produce, stated by the backend itself.

    A backend that states one has a ``pulse_capability`` attribute; sessions are checked
    against it before they start (`xbarlab.bench.preflight`).
    """

    source: str  # what makes the pulses, e.g. "ArC TWO high-speed drivers"
    width_min: float  # s
    width_max: float  # s
    step: float = 0.0  # s, width resolution (0: continuous)
    edge: float = 0.0  # s, rise/fall time of the pulses (0: not stated / ideal)
    pulse_schemes: tuple[BiasScheme, ...] = tuple(BiasScheme)
    read_schemes: tuple[BiasScheme, ...] = tuple(BiasScheme)
    note: str = ""

    def width_problem(self, width: float) -> str | None:
        """Why `width` cannot be produced (None if it can)."""
        if not self.width_min <= width <= self.width_max:
            return (f"pulse width {width:.4g} s is outside what {self.source} produces "
                    f"[{self.width_min:.4g}, {self.width_max:.4g}] s")
        if self.step > 0:
            n = width / self.step
            if abs(n - round(n)) > 1e-6 * max(1.0, n):
                return (f"pulse width {width:.4g} s is not a multiple of the {self.step:.4g} s "
                        f"step of {self.source}")
        return None


@runtime_checkable
class Clocked(Protocol):
    """A backend with its own clock (the simulator): `wait` advances device time instead of
    sleeping. Backends without it (the bench) are waited on for real by the engine."""

    def wait(self, seconds: float) -> float:
        """Let `seconds` pass; return the backend clock (s) afterwards."""
        ...
