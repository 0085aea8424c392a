"""The plan vocabulary: small, inert, typed messages a protocol yields to the run engine.

A plan is a generator: it yields a message, the engine executes it (after the safety check)
and sends the result back::

    def read_then_set(cell):
        before = yield Read(cells=(cell,), v_read=0.2)
        yield Pulse(cell=cell, voltage=1.2, width=1e-6)
        after = yield Read(cells=(cell,), v_read=0.2)
        return after.conductances[0] - before.conductances[0]

`tag` names the step of the protocol a message belongs to; it is recorded in the log.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.crossbar import BiasScheme, Cell, FloatArray, MvmResult, PulseResult, ReadResult


@dataclass(frozen=True, slots=True)
class Read:
    """Read `cells` (``None``: the whole array) at `v_read` under `scheme`."""

    cells: tuple[Cell, ...] | None
    v_read: float
    scheme: BiasScheme = BiasScheme.GROUNDED
    tag: str = "read"


@dataclass(frozen=True, slots=True)
class Pulse:
    """One programming pulse of signed `voltage` (V) and `width` (s) on `cell`."""

    cell: Cell
    voltage: float
    width: float
    scheme: BiasScheme = BiasScheme.HALF
    tag: str = "pulse"


@dataclass(frozen=True, slots=True)
class Mvm:
    """Drive the rows with `v_rows` ((M,) or (B, M)) and measure the column currents."""

    v_rows: FloatArray
    tag: str = "mvm"

    def __post_init__(self) -> None:
        v = np.atleast_2d(np.asarray(self.v_rows, dtype=np.float64))
        object.__setattr__(self, "v_rows", v)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A named point in the protocol with optional data (e.g. a cell's final state)."""

    label: str
    data: Mapping[str, Any] = field(default_factory=dict)
    tag: str = "checkpoint"


@dataclass(frozen=True, slots=True)
class Wait:
    """Let `seconds` pass with nothing applied (retention, relaxation, inter-pulse delays).

    The simulator advances its device clock instead of sleeping; a bench really waits. The
    result is a `WaitResult` with the backend's clock after the wait."""

    seconds: float
    tag: str = "wait"


@dataclass(frozen=True, slots=True)
class WaitResult:
    """The backend's clock (s since the backend was created) after a `Wait`."""

    seconds: float
    clock: float


Message = Read | Pulse | Mvm | Checkpoint | Wait
Result = ReadResult | PulseResult | MvmResult | WaitResult | None
Plan = Generator[Message, Any, Any]
"""A protocol: yields messages, receives their results, returns its own summary value."""
