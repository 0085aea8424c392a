"""Small building blocks the characterisation plans share."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from xbarlab.crossbar import BiasScheme, Cell, ReadResult
from xbarlab.messages import Checkpoint, Message, Read


def read_cell(
    cell: Cell, v_read: float, scheme: BiasScheme, tag: str, n: int = 1
) -> Generator[Message, Any, tuple[float, float]]:
    """Read `cell` `n` times; returns (mean, std) of the apparent conductance (S)."""
    g = np.empty(n)
    for k in range(n):
        r: ReadResult = yield Read((cell,), v_read, scheme, tag=tag)
        g[k] = float(r.conductances[0])
    return float(g.mean()), float(g.std(ddof=1)) if n > 1 else 0.0


def cell_done(done: int, total: int, cell: Cell, **data: Any) -> Checkpoint:
    """The checkpoint every per-cell plan yields after a cell: progress bar, log, resume."""
    return Checkpoint("cell_done", {"progress": (done, total), "cell": cell, **data})


def as_cell(cell: Any) -> Cell:
    return (int(cell[0]), int(cell[1]))
