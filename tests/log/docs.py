"""Document factories for the log tests, and the deterministic stream the child writer emits."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.documents import Event, EventKind, RunStart, RunStatus, RunStop


def run_start(shape: tuple[int, int] = (4, 4), seed: int | None = 5) -> RunStart:
    return RunStart(
        run_id="run-under-test", time=1_700_000_000.0, protocol="unit", config={"a": 1, "b": [1.5]},
        seed=seed, version="9.9.9", git_revision="abc123", backend={"backend": "fake", "n": 2},
        limits={"read_v_max": 0.5}, shape=shape,
    )


def read_event(seq: int, cells: list[tuple[int, int]], v: float, g: list[float],
               step: str = "read", compliance: list[bool] | None = None) -> Event:
    k = len(cells)
    gg = np.asarray(g, dtype=float)
    return Event(seq, 1_700_000_000.0 + seq, EventKind.READ, "unit", step, "grounded",
                 cells=np.asarray(cells, dtype=np.int64).reshape(k, 2),
                 voltages=np.full(k, v), currents=gg * v, conductances=gg,
                 compliance=np.asarray(compliance if compliance is not None else [False] * k))


def pulse_event(seq: int, cell: tuple[int, int], v: float, width: float,
                step: str = "set") -> Event:
    return Event(seq, 1_700_000_000.0 + seq, EventKind.PULSE, "unit", step, "v/2", width=width,
                 cells=np.asarray([cell], dtype=np.int64), voltages=np.asarray([v]),
                 currents=np.asarray([np.nan]), conductances=np.asarray([np.nan]),
                 compliance=np.asarray([True]))


def mvm_event(seq: int, x: np.ndarray, y: np.ndarray, comp: np.ndarray | None = None) -> Event:
    return Event(seq, 1_700_000_000.0 + seq, EventKind.MVM, "unit", "mvm",
                 mvm_in=x, mvm_out=y,
                 compliance=np.zeros(0, bool) if comp is None else comp.ravel())


def note_event(seq: int, kind: EventKind, message: str, data: dict[str, Any] | None = None,
               step: str = "note") -> Event:
    return Event(seq, 1_700_000_000.0 + seq, kind, "unit", step, message=message, data=data)


def run_stop(n: int, status: RunStatus = RunStatus.SUCCESS, reason: str = "") -> RunStop:
    return RunStop("run-under-test", 1_700_000_000.0 + n + 1, status, reason, n)


# The stream of the child writer: event `seq` reads one cell with values derived from seq.
STREAM_SHAPE = (8, 8)


def stream_cell(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return seq % STREAM_SHAPE[0], (seq // STREAM_SHAPE[0]) % STREAM_SHAPE[1]


def stream_voltage(seq: np.ndarray) -> np.ndarray:
    return 0.1 + (seq % 7) * 0.01


def stream_conductance(seq: np.ndarray) -> np.ndarray:
    return 1e-4 + (seq % 1000) * 1e-7


def stream_event(seq: int) -> Event:
    s = np.asarray([seq])
    r, c = stream_cell(s)
    v, g = stream_voltage(s), stream_conductance(s)
    return Event(seq, float(seq), EventKind.READ, "stream", "read", "grounded",
                 cells=np.stack([r, c], axis=1).astype(np.int64), voltages=v, currents=g * v,
                 conductances=g, compliance=np.zeros(1, bool))


# The mixed stream: event `seq` reads seq % 4 cells (0 to 3), so blocks hold 1-cell headers,
# cell records and events without cells, and flushes fall mid-chunk.
def mixed_count(seq: int) -> int:
    return seq % 4


def mixed_event(seq: int) -> Event:
    k = mixed_count(seq)
    if not k:
        return Event(seq, float(seq), EventKind.CHECKPOINT, "stream", "note")
    j = np.arange(k)
    r, c = stream_cell(seq + j)
    v, g = stream_voltage(seq + j), stream_conductance(seq + j)
    return Event(seq, float(seq), EventKind.READ, "stream", "read", "grounded",
                 cells=np.stack([r, c], axis=1).astype(np.int64), voltages=v, currents=g * v,
                 conductances=g, compliance=(seq + j) % 5 == 0)


def expected_rows(events: list[Event]) -> dict[str, np.ndarray]:
    """The cell measurements the events hold, concatenated in order (the reference)."""
    with_cells = [(i, e) for i, e in enumerate(events) if len(e.cells)]
    return {
        "event": np.concatenate([np.full(len(e.cells), i) for i, e in with_cells]),
        "row": np.concatenate([e.cells[:, 0] for _, e in with_cells]),
        "col": np.concatenate([e.cells[:, 1] for _, e in with_cells]),
        "voltage": np.concatenate([e.voltages for _, e in with_cells]),
        "current": np.concatenate([e.currents for _, e in with_cells]),
        "conductance": np.concatenate([e.conductances for _, e in with_cells]),
        "compliance": np.concatenate([e.compliance for _, e in with_cells]),
        "width": np.concatenate([np.full(len(e.cells), e.width) for _, e in with_cells]),
        "time": np.concatenate([np.full(len(e.cells), e.time) for _, e in with_cells]),
    }
