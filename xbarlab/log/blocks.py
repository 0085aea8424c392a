"""What the HDF5 writer keeps per event until a block is written, and how a block is unpacked.

Per event the writer only packs bytes (it builds no numpy array and assigns no structured row):

- a fixed-size header, `HEAD`: sequence number, time, pulse width, signature (the index of the
  event's (kind, protocol, step, scheme) combination in the writer's table), cell count `k`,
  and, for an event of exactly one cell, that cell's row, column, voltage, current,
  conductance and compliance flag (the common write-verify read or pulse needs nothing else);
- for an event of several cells, one cell record: the raw bytes of its arrays one after the
  other, ``cells`` (k, 2) int64, ``voltages``, ``currents``, ``conductances`` (k,) float64,
  ``compliance`` (k,) bool, i.e. `CELL_BYTES` per cell (`cell_record` makes one from arrays of
  any dtype, with the writer's checks).

Both are copies taken when the event arrives, so a producer that reuses its arrays cannot
change what is logged. A block of headers and records becomes the measurement columns with a
few numpy operations (`unpack_heads`, `block_cells`). Native byte order throughout: the bytes
never leave the process.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

HEAD: Final = struct.Struct("=qddqqqqddd?")
"""seq, time (s), width (s), signature, cell count; row, col, V, I, G, compliance of a 1-cell event
(zeros otherwise)."""
HEAD_DTYPE: Final = np.dtype([
    ("seq", np.int64), ("time", np.float64), ("width", np.float64), ("sig", np.int64),
    ("k", np.int64), ("row", np.int64), ("col", np.int64), ("voltage", np.float64),
    ("current", np.float64), ("conductance", np.float64), ("compliance", np.bool_),
])
INT: Final = np.dtype(np.int64)
FLOAT: Final = np.dtype(np.float64)
BOOL: Final = np.dtype(np.bool_)
CELL_BYTES: Final = 2 * INT.itemsize + 3 * FLOAT.itemsize + BOOL.itemsize
"""Bytes per cell in a cell record: row, col, voltage, current, conductance, compliance."""

assert HEAD.size == HEAD_DTYPE.itemsize


def cell_record(seq: int, cells: Any, voltages: Any, currents: Any, conductances: Any,
                compliance: Any) -> bytes:
    """The cell record of one event, from arrays of any dtype and memory layout.

    Raises ``ValueError`` naming the event when the arrays do not describe the same cells:
    `cells` must be (k, 2) whole numbers, the other arrays k long (`compliance` may be empty:
    no flags, all False).
    """
    c = np.asarray(cells)
    k = len(c) if c.ndim else 0
    v, i, g = (np.asarray(x).reshape(-1) for x in (voltages, currents, conductances))
    comp = np.asarray(compliance).reshape(-1)
    if len(v) != k or len(i) != k or len(g) != k or (len(comp) != k and len(comp)):
        raise ValueError(
            f"event {seq}: {k} cells but {len(v)} voltages, {len(i)} currents, "
            f"{len(g)} conductances, {len(comp)} compliance flags"
        )
    if c.shape != (k, 2):
        raise ValueError(f"event {seq}: cells must be (row, col) pairs of shape ({k}, 2), "
                         f"got shape {c.shape}")
    whole = c.dtype.kind in "iub" or (
        c.dtype.kind == "f" and bool(np.isfinite(c).all()) and bool((c == np.trunc(c)).all()))
    if not whole:
        raise ValueError(f"event {seq}: cells must be whole numbers, got {c.tolist()}")
    ci = c.astype(INT)
    if not len(comp):
        comp = np.zeros(k, dtype=BOOL)
    parts = (ci, v.astype(FLOAT), i.astype(FLOAT), g.astype(FLOAT), comp.astype(BOOL))
    return b"".join(np.ascontiguousarray(p).tobytes() for p in parts)


def unpack_heads(heads: list[bytes]) -> np.ndarray[Any, Any]:
    """The headers of a block as a structured array (fields of `HEAD_DTYPE`)."""
    return np.frombuffer(b"".join(heads), dtype=HEAD_DTYPE)


def single_head(seq: int, time: float, width: float, sig: int, record: bytes) -> bytes:
    """The header of a 1-cell event from its cell record (the path for unusual arrays)."""
    c = unpack_cells(record, np.ones(1, dtype=np.int64))
    return HEAD.pack(seq, time, width, sig, 1, c.row.item(), c.col.item(), c.voltage.item(),
                     c.current.item(), c.conductance.item(), c.compliance.item())


@dataclass(frozen=True, slots=True)
class CellColumns:
    """The cells of a block, one entry per measurement row, in event order.

    Each column is 1-D, or (events, cells per event) when every event of the block has the
    same number of cells (views into the records: flatten them, or write them through a
    2-D view of the destination, see `put`).
    """

    row: np.ndarray[Any, Any]
    col: np.ndarray[Any, Any]
    voltage: np.ndarray[Any, Any]
    current: np.ndarray[Any, Any]
    conductance: np.ndarray[Any, Any]
    compliance: np.ndarray[Any, Any]


@functools.lru_cache(maxsize=64)
def _record_dtype(k: int) -> np.dtype[Any]:
    """The cell record of an event of `k` cells as one structured item."""
    return np.dtype([("cells", INT, (k, 2)), ("v", FLOAT, (k,)), ("i", FLOAT, (k,)),
                     ("g", FLOAT, (k,)), ("c", BOOL, (k,))])


def unpack_cells(records: bytes, counts: np.ndarray[Any, Any]) -> CellColumns:
    """Columns of the concatenated cell `records` of events with `counts` (> 0) cells each."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if len(records) != CELL_BYTES * total:
        raise ValueError(f"{len(records)} bytes of cell records for {total} cells "
                         f"({CELL_BYTES} bytes each)")
    if total == 0:
        empty_i, empty_f = np.zeros(0, INT), np.zeros(0, FLOAT)
        return CellColumns(empty_i, empty_i, empty_f, empty_f, empty_f, np.zeros(0, BOOL))
    k0 = int(counts[0])
    if (counts == k0).all():  # one record layout: zero-copy views, (events, k0) each
        a = np.frombuffer(records, dtype=_record_dtype(k0))
        cells = a["cells"]
        return CellColumns(cells[..., 0], cells[..., 1], a["v"], a["i"], a["g"], a["c"])
    # Mixed sizes: gather each value by its byte offset.
    first_row = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(counts)), counts)
    r = np.arange(total) - first_row[owner]  # position of the cell in its event
    base = CELL_BYTES * first_row[owner]
    k = counts[owner]
    raw = np.frombuffer(records, dtype=np.uint8)

    def take(offset: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
        index = offset[:, None] + np.arange(dtype.itemsize)
        return raw[index].view(dtype).reshape(total)

    return CellColumns(
        take(base + 16 * r, INT), take(base + 16 * r + 8, INT),
        take(base + 16 * k + 8 * r, FLOAT), take(base + 24 * k + 8 * r, FLOAT),
        take(base + 32 * k + 8 * r, FLOAT), take(base + 40 * k + r, BOOL),
    )


def block_cells(head: np.ndarray[Any, Any], records: bytes) -> CellColumns:
    """The cells of a block in event order: 1-cell events from their headers, the others from
    their concatenated cell `records`."""
    k = head["k"]
    single = k == 1
    if single.all():
        return CellColumns(head["row"], head["col"], head["voltage"], head["current"],
                           head["conductance"], head["compliance"])
    multi = k > 1
    many = unpack_cells(records, k[multi])
    if not single.any():  # the records alone hold every row, in order
        return many
    total = int(k.sum())
    first = np.cumsum(k) - k  # row of each event's first cell
    kk = k[multi]
    # rows of the multi-cell events: each event's first row, then consecutive
    at = np.repeat(first[multi] - (np.cumsum(kk) - kk), kk) + np.arange(int(kk.sum()))
    out = []
    for name in ("row", "col", "voltage", "current", "conductance", "compliance"):
        column = np.empty(total, dtype=head.dtype[name])
        column[first[single]] = head[name][single]
        column[at] = getattr(many, name).reshape(-1)
        out.append(column)
    return CellColumns(*out)


def put(dest: np.ndarray[Any, Any], values: np.ndarray[Any, Any]) -> None:
    """Write `values` (1-D, or 2-D in row order) into the 1-D array (or field view) `dest`."""
    if values.ndim == 1:
        dest[...] = values
    else:  # a 1-D view always splits into a 2-D view: no copy, the writes reach `dest`
        np.reshape(dest, values.shape, copy=False)[...] = values
