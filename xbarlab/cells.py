"""One cell of a multi-cell operation, reported as soon as it is measured.

A backend that measures the cells of one operation one after the other (a bench read map, a
superposition MVM) calls its ``on_cell`` hook (`xbarlab.crossbar.CellSink`) after each cell;
the run engine turns each call into a `CellMeasurement` for the subscribers that have a
``partial`` method (the HDF5 writer), before the operation's `Event`. A process killed in
the middle of a long operation then loses only the cells not yet flushed, not all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarlab.crossbar import Cell
from xbarlab.documents import EventKind


@dataclass(frozen=True, slots=True)
class CellMeasurement:
    """A cell measured by the operation that will be event `seq` (same kind, step, scheme)."""

    seq: int
    time: float  # Unix time, s
    kind: EventKind
    protocol: str
    step: str
    scheme: str
    width: float  # s; NaN for reads and MVMs
    cell: Cell
    voltage: float  # V applied to the cell's row
    current: float  # A measured at its column
    compliance: bool
