"""`LiveLog`: what the watch page shows, kept up to date from a log that may still be written.

`poll()` opens the file once it exists and holds a run (it may be started before the session),
then reads only the rows flushed since the last poll: the latest conductance of every cell,
pulses per cell, operation counts, progress checkpoints, and the events a person must see
(refusals, faults, compliance hits). No plotting here: `xbarlab.watch.page` draws it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.log import schema as sc
from xbarlab.log.reader import LogError, LogReader, RunInfo

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
MAX_ANNOTATIONS = 500  # the events table keeps the latest ones


@dataclass(frozen=True)
class Annotation:
    """One line of the events table."""

    time: float  # s since the run started
    kind: str  # refused, fault, compliance
    cell: str  # "(r, c)" or ""
    message: str


@dataclass
class Counts:
    """Operation and event counts so far."""

    operations: dict[str, int] = field(default_factory=lambda: {"read": 0, "pulse": 0,
                                                                "mvm": 0})
    measurements: int = 0
    compliance: int = 0
    refused: int = 0
    faults: int = 0


def _targets_from_config(config: dict[str, Any], shape: tuple[int, int]
                         ) -> tuple[FloatArray | None, float | None]:
    """Target map and tolerance of a write-verify session config (None where unknown)."""
    proto = config.get("protocol") if isinstance(config, dict) else None
    if not isinstance(proto, dict) or proto.get("kind") != "write_verify_array":
        return None, None
    try:
        from xbarlab.config import WriteVerifyArrayProtocol
        from xbarlab.protocols.patterns import target_map

        p = WriteVerifyArrayProtocol.model_validate(proto)
        return np.asarray(target_map(p.target, shape), dtype=np.float64), p.params.tolerance
    except Exception:  # a config written by another version: fall back to checkpoints
        return None, None


class LiveLog:
    """The state of one log, as far as it has been flushed."""

    def __init__(self, path: str | Path, stall_after: float = 10.0) -> None:
        self.path = Path(path)
        self.stall_after = stall_after  # s without new rows before a running log is "stalled"
        self._last_change = time.monotonic()
        self.reader: LogReader | None = None
        self.info: RunInfo | None = None
        self.status = "waiting"
        self.detail = f"waiting for {self.path} to be created"
        self.reason = ""
        self.g: FloatArray = np.zeros((0, 0))
        self.targets: FloatArray | None = None
        self.tolerance: float | None = None
        self.pulses = np.zeros((0, 0), dtype=np.int64)
        self.counts = Counts()
        self.progress: tuple[int, int] | None = None  # cells done / total in this pass
        self.passes = 0
        self.last_time = 0.0  # s since start, of the newest row seen
        self.last_cell: tuple[int, int] | None = None
        self.annotations: deque[Annotation] = deque(maxlen=MAX_ANNOTATIONS)
        self._seen_meas = 0
        self._seen_events = 0
        self._blocks: list[np.ndarray[Any, Any]] = []
        self._rows: np.ndarray[Any, Any] | None = None
        self.version = 0  # bumps whenever anything visible changed

    # -- reading ---------------------------------------------------------------------------------
    def _open(self) -> bool:
        if not self.path.exists():
            self.detail = f"waiting for {self.path} to be created"
            return False
        try:
            reader = LogReader(self.path)
        except (FileNotFoundError, LogError, OSError) as exc:
            self.detail = f"waiting: {exc}"
            return False
        if not reader.started:  # a reader opened before the RunStart never sees it: reopen
            reader.close()
            self.detail = f"{self.path} holds no run yet; waiting for it to start"
            return False
        self.reader = reader
        self.info = info = reader.info
        m, n = info.shape
        self.g = np.full((m, n), np.nan)
        self.pulses = np.zeros((m, n), dtype=np.int64)
        self.targets, self.tolerance = _targets_from_config(info.config, info.shape)
        self.status, self.detail = "running", ""
        return True

    def poll(self) -> bool:
        """Read what was flushed since the last call; True if anything visible changed."""
        if self.reader is None:
            before = self.detail
            if not self._open():
                return self.detail != before
            self.version += 1
        reader = self.reader
        assert reader is not None
        try:
            reader.refresh()
            counts = reader.counts()
            changed = self._read_events(reader, counts["events"], reader.text_length())
            changed |= self._read_measurements(reader, counts["measurements"])
            end = reader.end
        except (OSError, KeyError, ValueError) as exc:  # a writer killed mid-flush, a lost disk
            self.detail = f"cannot read {self.path}: {exc}"
            return True
        if end is not None and self.status == "running":
            self.status, self.reason, self.detail = end.status, end.reason, ""
            changed = True
        now = time.monotonic()
        if changed:
            self._last_change = now
        if self.status == "running":
            idle = now - self._last_change
            detail = ""
            if idle >= self.stall_after:
                detail = (f"no new rows for {idle:.0f} s: its writer is gone without a run "
                          "stop (killed or crashed)" if reader.writer == "gone" else
                          f"no new rows for {idle:.0f} s: the session is slow or paused"
                          if reader.writer == "running" else
                          f"no new rows for {idle:.0f} s: the session is slow, paused, or its "
                          "writer died")
            if detail != self.detail:
                self.detail = detail
                changed = True
        if changed:
            self.version += 1
        return changed

    def _read_measurements(self, reader: LogReader, n: int) -> bool:
        if n <= self._seen_meas:
            return False
        rows = reader.measurements_array(self._seen_meas, n)
        self._seen_meas = n
        assert self.info is not None
        t0 = self.info.start_time
        block = np.zeros(len(rows), dtype=[("t", "f8"), ("kind", "u1"), ("row", "i4"),
                                           ("col", "i4"), ("v", "f8"), ("g", "f8")])
        block["t"] = rows["time"] - t0
        block["kind"] = rows["kind"]
        block["row"], block["col"] = rows["row"], rows["col"]
        block["v"], block["g"] = rows["voltage"], rows["conductance"]
        self._blocks.append(block)
        self._rows = None
        reads = rows["kind"] == sc.KIND_CODE["read"]
        self.g[rows["row"][reads], rows["col"][reads]] = rows["conductance"][reads]
        pulses = rows["kind"] == sc.KIND_CODE["pulse"]
        np.add.at(self.pulses, (rows["row"][pulses], rows["col"][pulses]), 1)
        self.counts.measurements = n
        hits = np.flatnonzero(rows["compliance"])
        self.counts.compliance += len(hits)
        for i in hits[-MAX_ANNOTATIONS:]:
            r = rows[i]
            self.annotations.append(Annotation(
                float(r["time"] - t0), "compliance", f"({int(r['row'])}, {int(r['col'])})",
                f"{sc.KINDS[int(r['kind'])]} at {float(r['voltage']):+.3f} V reached the "
                f"current limit ({float(r['current']) * 1e3:.3g} mA)"))
        self.last_time = float(block["t"][-1])
        self.last_cell = (int(rows["row"][-1]), int(rows["col"][-1]))
        return True

    def _read_events(self, reader: LogReader, n: int, text_len: int) -> bool:
        if n <= self._seen_events:
            return False
        ev = reader.events_array(self._seen_events, n)
        # an event whose message or data is not visible yet waits for the next poll
        late = (ev["message_start"] + ev["message_len"] > text_len) | (
            ev["data_start"] + ev["data_len"] > text_len)
        if late.any():
            ev = ev[:int(np.argmax(late))]
        if len(ev) == 0:
            return False
        self._seen_events += len(ev)
        assert self.info is not None
        t0 = self.info.start_time
        kinds = ev["kind"].astype(np.int64)
        for name in ("read", "pulse", "mvm"):
            self.counts.operations[name] += int(np.sum(kinds == sc.KIND_CODE[name]))
        for i in np.flatnonzero(np.isin(kinds, [sc.KIND_CODE["checkpoint"],
                                                sc.KIND_CODE["refused"],
                                                sc.KIND_CODE["fault"]])):
            e = ev[i]
            kind = sc.KINDS[int(e["kind"])]
            message = reader.text(int(e["message_start"]), int(e["message_len"]))
            data_text = reader.text(int(e["data_start"]), int(e["data_len"]))
            if kind == "checkpoint":
                self._checkpoint(data_text)
                continue
            if kind == "refused":
                self.counts.refused += 1
            else:
                self.counts.faults += 1
            self.annotations.append(Annotation(float(e["time"] - t0), kind, "", message))
        return True

    def _checkpoint(self, data_text: str) -> None:
        try:
            data = json.loads(data_text) if data_text else None
        except json.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        progress, cell, target = data.get("progress"), data.get("cell"), data.get("target")
        if isinstance(progress, list) and len(progress) == 2:
            self.progress = (int(progress[0]), int(progress[1]))
        if isinstance(data.get("pass"), int):
            self.passes = int(data["pass"])
        if isinstance(cell, list) and len(cell) == 2 and isinstance(target, int | float):
            if self.targets is None:
                self.targets = np.full(self.g.shape, np.nan)
            r, c = int(cell[0]), int(cell[1])
            if 0 <= r < self.g.shape[0] and 0 <= c < self.g.shape[1]:
                self.targets[r, c] = float(target)

    # -- what the page asks --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape[0], self.g.shape[1]

    @property
    def cells_read(self) -> int:
        return int(np.isfinite(self.g).sum())

    @property
    def in_tolerance(self) -> int | None:
        """Cells whose latest read lies within the protocol's tolerance of their target."""
        if self.targets is None or self.tolerance is None:
            return None
        with np.errstate(invalid="ignore"):
            ok = np.abs(self.g - self.targets) <= self.tolerance * self.targets
        return int(np.sum(ok))

    def rows(self) -> np.ndarray[Any, Any]:
        """Every measurement row seen so far (t since start, kind, row, col, v, g)."""
        if self._rows is None:
            self._rows = (np.concatenate(self._blocks) if self._blocks else np.zeros(
                0, dtype=[("t", "f8"), ("kind", "u1"), ("row", "i4"), ("col", "i4"),
                          ("v", "f8"), ("g", "f8")]))
            self._blocks = [self._rows] if len(self._rows) else []
        return self._rows

    def trace(self, cell: tuple[int, int]) -> dict[str, FloatArray]:
        """One cell's history: reads (time, number among the cell's operations from 1,
        conductance) and pulses (time, number, voltage)."""
        rows = self.rows()
        mine = rows[(rows["row"] == cell[0]) & (rows["col"] == cell[1])]
        number = np.arange(1, len(mine) + 1, dtype=np.float64)
        is_read = mine["kind"] == sc.KIND_CODE["read"]
        is_pulse = mine["kind"] == sc.KIND_CODE["pulse"]
        return {"read_t": mine["t"][is_read], "read_n": number[is_read],
                "read_g": mine["g"][is_read], "pulse_t": mine["t"][is_pulse],
                "pulse_n": number[is_pulse], "pulse_v": mine["v"][is_pulse]}

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
