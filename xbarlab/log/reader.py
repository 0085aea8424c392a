"""`LogReader`: numpy arrays and pandas DataFrames from an xbarlab HDF5 log, finished or live.

Files are opened in SWMR read mode, so a file that is still being written (or whose writer was
killed) can be read; `refresh()` picks up rows flushed since, and `follow()` yields new
measurement rows as they arrive until the run stops.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import pandas as pd

from xbarlab.log import schema as sc


class LogError(OSError):
    """A log file that cannot be opened or is not an xbarlab log."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The RunStart of the logged run."""

    run_id: str
    protocol: str
    start_time: float  # Unix time, s
    seed: int | None
    version: str
    git_revision: str | None
    shape: tuple[int, int]
    config: dict[str, Any]
    backend: dict[str, Any]
    limits: dict[str, Any]
    schema_version: int


@dataclass(frozen=True, slots=True)
class RunEnd:
    """The RunStop of the logged run."""

    time: float  # Unix time, s
    status: str  # success, failed, aborted
    n_events: int
    reason: str


@dataclass(frozen=True, slots=True)
class MvmData:
    """Every MVM of the run: row `i` of each array came from event `event[i]`."""

    inputs: np.ndarray[Any, np.dtype[np.float64]]  # (T, M) V
    outputs: np.ndarray[Any, np.dtype[np.float64]]  # (T, N) A
    compliance: np.ndarray[Any, np.dtype[np.bool_]]  # (T, N)
    event: np.ndarray[Any, np.dtype[np.int64]]  # (T,) row of the events table


class LogReader:
    """Read an xbarlab log. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such log file")
        try:
            self._file = h5py.File(self.path, "r", swmr=True)
        except OSError as exc:
            raise LogError(
                f"cannot open {self.path} as HDF5: {exc}. If its writer was killed, "
                f"`xbarlab log recover {self.path}` may make it readable"
            ) from None
        try:
            name = self._file.attrs.get("schema")
            if name != sc.SCHEMA_NAME:
                raise LogError(f"{self.path} is not an xbarlab log (attribute 'schema' is "
                               f"{name!r}, expected {sc.SCHEMA_NAME!r})")
            version = int(self._file.attrs.get("schema_version", -1))
            if not 1 <= version <= sc.SCHEMA_VERSION:
                raise LogError(f"{self.path}: schema version {version} is not supported "
                               f"(this xbarlab reads 1 to {sc.SCHEMA_VERSION})")
        except BaseException:
            self._file.close()
            raise
        self.schema_version = version

    # -- file -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether the RunStart was written (a writer that never got one leaves no tables)."""
        return sc.RUN in self._file and sc.EVENTS in self._file

    def _ds(self, name: str) -> h5py.Dataset:
        if not self.started:
            raise LogError(f"{self.path} holds no run yet (no RunStart was logged)")
        ds = self._file[name]
        assert isinstance(ds, h5py.Dataset)
        return ds

    def refresh(self) -> None:
        """See rows a live writer flushed since the file was opened or last refreshed."""
        if not self.started:
            return
        for name in (sc.TEXT, sc.LABELS, sc.MVM_INPUTS, sc.MVM_OUTPUTS, sc.MVM_COMPLIANCE,
                     sc.MEASUREMENTS, sc.EVENTS, sc.STOP):
            self._ds(name).refresh()

    def counts(self) -> dict[str, int]:
        """Rows visible now per table."""
        return {"events": len(self._ds(sc.EVENTS)), "measurements": len(self._ds(sc.MEASUREMENTS)),
                "mvm": len(self._ds(sc.MVM_INPUTS))}

    def text_length(self) -> int:
        """Bytes of /text visible now (an event's strings are readable once inside it)."""
        return len(self._ds(sc.TEXT))

    # -- run metadata ---------------------------------------------------------------------------

    @property
    def info(self) -> RunInfo:
        """The RunStart: protocol, config, seed, versions, backend, limits, shape."""
        self._ds(sc.EVENTS)  # raises if no run was started
        a = self._file[sc.RUN].attrs
        seed = a.get("seed")
        git = a.get("git_revision")
        shape = tuple(int(x) for x in a["shape"])
        return RunInfo(
            run_id=str(a["run_id"]), protocol=str(a["protocol"]),
            start_time=float(a["start_time"]), seed=None if seed is None else int(seed),
            version=str(a["version"]), git_revision=None if git is None else str(git),
            shape=(shape[0], shape[1]),
            config=json.loads(a["config"]), backend=json.loads(a["backend"]),
            limits=json.loads(a["limits"]), schema_version=self.schema_version,
        )

    @property
    def end(self) -> RunEnd | None:
        """The RunStop, or ``None`` while the run goes on (or if its writer died)."""
        stop = self._ds(sc.STOP)
        if len(stop) == 0:
            return None
        row = stop[0]
        start, length = int(row["reason_start"]), int(row["reason_len"])
        reason = (self._text_bytes()[start:start + length].decode("utf-8", errors="replace")
                  if start >= 0 else "")
        return RunEnd(float(row["time"]), sc.STATUSES[int(row["status"])],
                      int(row["n_events"]), reason)

    @property
    def status(self) -> str:
        """success / failed / aborted, or "unfinished" (still running, or the writer died)."""
        end = self.end
        return "unfinished" if end is None else end.status

    # -- strings --------------------------------------------------------------------------------

    def _text_bytes(self) -> bytes:
        return bytes(self._ds(sc.TEXT)[()])

    def labels(self) -> list[str]:
        """Interned protocol and step names, by label id."""
        text = self._text_bytes()
        return [text[s:s + n].decode("utf-8", errors="replace")
                for s, n in self._ds(sc.LABELS)[()].tolist()]

    # -- tables ---------------------------------------------------------------------------------

    def measurements_array(self, start: int = 0, stop: int | None = None) -> np.ndarray[Any, Any]:
        """Rows of the measurements table as a numpy structured array (see schema)."""
        return self._ds(sc.MEASUREMENTS)[start:stop]

    def events_array(self, start: int = 0, stop: int | None = None) -> np.ndarray[Any, Any]:
        """Rows of the events table (all by default) as a numpy structured array (see schema)."""
        return self._ds(sc.EVENTS)[start:stop]

    def text(self, start: int, length: int) -> str:
        """One string of /text by its reference (an event's message or data JSON); "" for
        an absent reference (start < 0)."""
        if start < 0:
            return ""
        return bytes(self._ds(sc.TEXT)[start:start + length]).decode("utf-8", errors="replace")

    def measurements(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """One row per cell measurement (reads and pulses), in the order they were made.

        Columns: event (row of the events table), seq (the engine's sequence number, -1 if
        its event row is not flushed yet), time (s), kind, row, col, voltage (V), width (s),
        current (A), conductance (S), compliance, scheme, protocol, step.
        """
        m = self.measurements_array(start, stop)
        seqs = self._ds(sc.EVENTS)["seq"]
        event = m["event"].astype(np.int64)
        seq = np.full(len(m), -1, dtype=np.int64)
        ok = event < len(seqs)
        seq[ok] = seqs[event[ok]]
        return self._frame(m, {"event": event, "seq": seq}, ["time", "kind", "row", "col",
                           "voltage", "width", "current", "conductance", "compliance",
                           "scheme", "protocol", "step"])

    def events(self) -> pd.DataFrame:
        """One row per event, with its message and checkpoint data (parsed JSON) decoded."""
        e = self.events_array()
        text = self._text_bytes()

        def strings(starts: np.ndarray[Any, Any], lens: np.ndarray[Any, Any]) -> list[str]:
            return [text[s:s + n].decode("utf-8", errors="replace") if s >= 0 else ""
                    for s, n in zip(starts.tolist(), lens.tolist(), strict=True)]

        data = [json.loads(d) if d else None for d in strings(e["data_start"], e["data_len"])]
        extra = {"message": strings(e["message_start"], e["message_len"]), "data": data}
        return self._frame(e, {}, ["seq", "time", "kind", "protocol", "step", "scheme", "width",
                                   "meas_start", "meas_count", "mvm_start", "mvm_count"], extra)

    def _frame(
        self, table: np.ndarray[Any, Any], first: dict[str, Any], columns: list[str],
        last: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        labels = self.labels()
        cols: dict[str, Any] = dict(first)
        for name in columns:
            values = table[name]
            if name == "kind":
                cols[name] = pd.Categorical.from_codes(values.astype(np.int8), sc.KINDS)
            elif name == "scheme":
                cols[name] = pd.Categorical.from_codes(values.astype(np.int8), sc.SCHEMES)
            elif name in ("protocol", "step"):
                codes = values.astype(np.int64)
                codes[codes >= len(labels)] = -1  # label not flushed yet
                cols[name] = pd.Categorical.from_codes(codes, _unique(labels))
            else:
                cols[name] = values
        cols.update(last or {})
        return pd.DataFrame(cols)

    def annotations(self) -> pd.DataFrame:
        """Checkpoints, refusals and faults with their messages and data."""
        ev = self.events()
        keep = ev["kind"].isin(["checkpoint", "refused", "fault"])
        return ev.loc[keep, ["seq", "time", "kind", "step", "message", "data"]].reset_index(
            drop=True)

    def mvm(self) -> MvmData:
        """Every MVM's inputs and outputs, with the event each batch row belongs to."""
        x = self._ds(sc.MVM_INPUTS)[()]
        y = self._ds(sc.MVM_OUTPUTS)[()]
        c = self._ds(sc.MVM_COMPLIANCE)[()]
        t = min(len(x), len(y), len(c))
        e = self.events_array()
        owner = np.full(t, -1, dtype=np.int64)
        for idx in np.flatnonzero(e["mvm_start"] >= 0):
            s, n = int(e["mvm_start"][idx]), int(e["mvm_count"][idx])
            owner[s:min(s + n, t)] = idx
        return MvmData(x[:t], y[:t], c[:t], owner)

    def final_conductances(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """(M, N) conductance of each cell's last read (S); NaN for cells never read."""
        m, n = self.info.shape
        rows = self.measurements_array()
        reads = rows[rows["kind"] == sc.KIND_CODE["read"]]
        out = np.full((m, n), np.nan)
        out[reads["row"], reads["col"]] = reads["conductance"]  # later rows win
        return out

    # -- live -----------------------------------------------------------------------------------

    def follow(
        self, poll_interval: float = 0.05, timeout: float | None = None, start: int = 0
    ) -> Iterator[np.ndarray[Any, Any]]:
        """Yield blocks of new measurement rows as the writer flushes them.

        Ends once the run has stopped and its last rows were yielded, or after `timeout`
        seconds (``None``: no limit).
        """
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 s, got {poll_interval}")
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = start
        while True:
            self.refresh()
            stopped = len(self._ds(sc.STOP)) > 0  # the writer flushes every row before the stop
            n = len(self._ds(sc.MEASUREMENTS))
            if n > seen:
                yield self.measurements_array(seen, n)
                seen = n
            elif stopped:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if n <= seen:
                time.sleep(poll_interval)


def _unique(labels: list[str]) -> list[str]:
    """Categories must be unique; interned labels are, unless a file was written by hand."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        k = seen.get(lab, 0)
        seen[lab] = k + 1
        out.append(lab if k == 0 else f"{lab}#{k}")
    return out


def follow(
    path: str | os.PathLike[str], poll_interval: float = 0.05, timeout: float | None = None
) -> Iterator[np.ndarray[Any, Any]]:
    """Open `path` (waiting up to `timeout` s for its run to start) and follow it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            reader = LogReader(path)
        except (FileNotFoundError, LogError):
            if deadline is not None and time.monotonic() >= deadline:
                raise
            time.sleep(poll_interval)
            continue
        with reader:
            if reader.started:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                yield from reader.follow(poll_interval, remaining)
                return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll_interval)
