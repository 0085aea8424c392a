"""`LogReader`: numpy arrays and pandas DataFrames from an xbarlab HDF5 log, finished or live.

A finished log is opened in plain read mode (HDF5 checks its end of file), a live one (or one
whose writer was killed) in SWMR read mode with bounded retries (`xbarlab.log.h5open`), so no
read hangs. In a schema v2 log the end-of-data marker is checked on open: a cut-short file is
refused with what is intact, and a live or killed file is read only up to the rows its
writer had flushed completely. Every damaged-file case raises `LogDamaged` with one line
(checksum mismatch, inconsistent tables), never another exception; `refresh()` picks up
rows flushed since, and `follow()` yields new measurement rows until the run stops.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import h5py
import numpy as np
import pandas as pd

from xbarlab.log import schema as sc
from xbarlab.log.errors import LogDamaged, LogError, NoRunLogged
from xbarlab.log.h5open import eod_row, open_checked
from xbarlab.log.notes import compliance_note, flagged_operations
from xbarlab.log.ownership import WRITER_HOST, WriterState, writer_state

__all__ = ["LogDamaged", "LogError", "LogReader", "MvmData", "NoRunLogged", "RunEnd",
           "RunInfo", "follow"]

F = TypeVar("F", bound=Callable[..., Any])


def _damage(path: Path, exc: BaseException) -> LogDamaged:
    text = str(exc).strip().strip("'\"") or type(exc).__name__
    if "checksum" in text.lower() or "filter returned failure" in text.lower():
        what = "a checksum does not match (a flipped bit or an overwritten block)"
    else:
        what = text.replace("Unable to synchronously ", "").split("\n")[0][:200]
    return LogDamaged(f"{path}: damaged: {what}; `xbarlab log verify {path}` lists what is "
                      f"sound, `xbarlab log recover {path}` salvages every intact block")


def _guarded(method: F) -> F:
    """Turn any error of a read on a damaged file into one `LogDamaged` line."""

    @functools.wraps(method)
    def wrapper(self: LogReader, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except LogError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError, IndexError, TypeError,
                UnicodeError, AttributeError) as exc:
            raise _damage(self.path, exc) from None

    return cast(F, wrapper)


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
        self._file, self.superblock = open_checked(self.path)
        self._limits: dict[str, int] = {}
        self._eod: dict[str, int] | None = None
        try:
            self.schema_version = self._check_header()
            if self.started:
                self._check_digest()
                self._load_eod(opening=True)
        except BaseException as exc:
            self._file.close()
            if isinstance(exc, LogError) or not isinstance(exc, Exception):
                raise
            raise _damage(self.path, exc) from None

    @property
    def live(self) -> bool:
        """The file was opened while its writer held it (running, or killed)."""
        return self.superblock.writer_open

    def _check_header(self) -> int:
        name = self._file.attrs.get("schema")
        if name != sc.SCHEMA_NAME:
            raise LogError(f"{self.path} is not an xbarlab log (attribute 'schema' is "
                           f"{name!r}, expected {sc.SCHEMA_NAME!r})")
        raw = self._file.attrs.get("schema_version", -1)
        version = int(raw) if np.ndim(raw) == 0 else -1
        if not 1 <= version <= sc.SCHEMA_VERSION:
            raise LogError(f"{self.path}: schema version {version} is not supported "
                           f"(this xbarlab reads 1 to {sc.SCHEMA_VERSION})")
        return version

    def _check_digest(self) -> None:
        """Attributes (run start, units) against the digest written with them (schema v2)."""
        if self.schema_version < 2:
            return
        stored = self._file.attrs.get(sc.DIGEST_ATTR)
        if isinstance(stored, np.bytes_ | bytes):
            stored = stored.decode("ascii", errors="replace")
        if stored != sc.attrs_digest(self._file):
            raise LogDamaged(
                f"{self.path}: damaged: the run's metadata (attributes) do not match their "
                f"digest; `xbarlab log recover {self.path}` salvages the measurements")

    def _load_eod(self, opening: bool = False) -> None:
        """Read the end-of-data marker; set how many rows of each table may be read."""
        if self.schema_version < 2:
            self._limits = {name: len(self._file[name]) for name in sc.TABLES
                            if name in self._file}
            return
        eod = eod_row(self._file)
        if eod is None:
            raise LogDamaged(f"{self.path}: damaged: the end-of-data marker (/eod) is missing")
        size = os.stat(self.path).st_size
        if size < eod["file_size"]:
            raise LogDamaged(
                f"{self.path} is cut short: {size} bytes, {eod['file_size']} at its writer's "
                f"last flush; `xbarlab log recover {self.path}` salvages every intact block")
        limits = {}
        for name in sc.TABLES:
            ds = self._file[name]
            if self.live and not opening:
                ds.refresh()
            want = eod[sc.EOD_FIELD[name]]
            have = int(ds.shape[0])
            finished = not self.live or eod["stop"] > 0
            if have < want or (finished and not self.live and have != want):
                raise LogDamaged(
                    f"{self.path}: damaged: /{name} has {have} rows, its end-of-data marker "
                    f"says {want}; `xbarlab log recover {self.path}` salvages every intact "
                    "block")
            limits[name] = want
        self._eod, self._limits = eod, limits
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
    @_guarded
    def started(self) -> bool:
        """Whether the RunStart was written (a writer that never got one leaves no tables)."""
        return sc.RUN in self._file and sc.EVENTS in self._file

    def _ds(self, name: str) -> h5py.Dataset:
        if not self.started:
            raise NoRunLogged(f"{self.path} holds no run (its writer never got a run start)")
        ds = self._file[name]
        if not isinstance(ds, h5py.Dataset):
            raise LogDamaged(f"{self.path}: damaged: /{name} is not a dataset")
        return ds

    def _n(self, name: str) -> int:
        """Rows of table `name` that are complete (up to the end-of-data marker)."""
        self._ds(name)
        return self._limits.get(name, 0)

    def _rows(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray[Any, Any]:
        """Rows `start:stop` of table `name`, never past the complete ones."""
        n = self._n(name)
        a, b, _ = slice(start, stop).indices(n)
        return self._ds(name)[a:max(a, b)]

    @_guarded
    def refresh(self) -> None:
        """See rows a live writer flushed since the file was opened or last refreshed."""
        if not self.started:
            return
        if self.live:
            self._load_eod()

    @_guarded
    def counts(self) -> dict[str, int]:
        """Rows readable now per table."""
        return {"events": self._n(sc.EVENTS), "measurements": self._n(sc.MEASUREMENTS),
                "mvm": self._n(sc.MVM_INPUTS)}

    @_guarded
    def text_length(self) -> int:
        """Bytes of /text readable now (an event's strings are readable once inside it)."""
        return self._n(sc.TEXT)

    # -- run metadata ---------------------------------------------------------------------------

    @property
    @_guarded
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
    @_guarded
    def end(self) -> RunEnd | None:
        """The RunStop, or ``None`` while the run goes on (or if its writer died)."""
        stop = self._rows(sc.STOP)
        if len(stop) == 0:
            return None
        row = stop[0]
        if not 0 <= int(row["status"]) < len(sc.STATUSES):
            raise LogDamaged(f"{self.path}: damaged: run stop status code {int(row['status'])}")
        start, length = int(row["reason_start"]), int(row["reason_len"])
        reason = (self._text_bytes()[start:start + length].decode("utf-8", errors="replace")
                  if start >= 0 else "")
        return RunEnd(float(row["time"]), sc.STATUSES[int(row["status"])],
                      int(row["n_events"]), reason)

    @property
    def writer(self) -> WriterState:
        """Whether the writer of this log runs: "running", "gone" (killed, for a log without a
        run stop), or "unknown" (another host's, or an older xbarlab's)."""
        return writer_state(self.path, self._file.attrs.get(WRITER_HOST))

    @property
    @_guarded
    def status(self) -> str:
        """success / failed / aborted, or "unfinished" (still running, or the writer died)."""
        end = self.end
        return "unfinished" if end is None else end.status

    # -- strings --------------------------------------------------------------------------------

    def _text_bytes(self) -> bytes:
        return bytes(self._rows(sc.TEXT))

    @_guarded
    def labels(self) -> list[str]:
        """Interned protocol and step names, by label id."""
        text = self._text_bytes()
        out = []
        for s, n in self._rows(sc.LABELS).tolist():
            if s < 0 or n < 0 or s + n > len(text):
                raise LogDamaged(f"{self.path}: damaged: a label points outside /text")
            out.append(text[s:s + n].decode("utf-8", errors="replace"))
        return out

    # -- tables ---------------------------------------------------------------------------------

    @_guarded
    def measurements_array(self, start: int = 0, stop: int | None = None) -> np.ndarray[Any, Any]:
        """Rows of the measurements table as a numpy structured array (see schema)."""
        rows = self._rows(sc.MEASUREMENTS, start, stop)
        self._check_codes(rows, "measurements")
        return rows

    @_guarded
    def events_array(self, start: int = 0, stop: int | None = None) -> np.ndarray[Any, Any]:
        """Rows of the events table (all by default) as a numpy structured array (see schema)."""
        rows = self._rows(sc.EVENTS, start, stop)
        self._check_codes(rows, "events")
        return rows

    @_guarded
    def text(self, start: int, length: int) -> str:
        """One string of /text by its reference (an event's message or data JSON); "" for
        an absent reference (start < 0)."""
        if start < 0:
            return ""
        return bytes(self._rows(sc.TEXT, start, start + length)).decode("utf-8",
                                                                       errors="replace")

    def _check_codes(self, rows: np.ndarray[Any, Any], table: str) -> None:
        """Enum codes within their range (a writer bug or a damaged v1 file otherwise)."""
        for name, allowed in (("kind", len(sc.KINDS)), ("scheme", len(sc.SCHEMES))):
            if len(rows) and int(rows[name].max()) >= allowed:
                raise LogDamaged(f"{self.path}: damaged: /{table} holds {name} code "
                                 f"{int(rows[name].max())} (allowed 0 to {allowed - 1})")

    @_guarded
    def measurements(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """One row per cell measurement (reads and pulses), in the order they were made.

        Columns: event (row of the events table), seq (the engine's sequence number, -1 if
        its event row is not flushed yet), time (s), kind, row, col, voltage (V), width (s),
        current (A), conductance (S), compliance, scheme, protocol, step.
        """
        m = self.measurements_array(start, stop)
        seqs = self._rows(sc.EVENTS)["seq"]
        event = m["event"].astype(np.int64)
        seq = np.full(len(m), -1, dtype=np.int64)
        ok = (event >= 0) & (event < len(seqs))  # -1: event lost (salvaged log)
        seq[ok] = seqs[event[ok]]
        return self._frame(m, {"event": event, "seq": seq}, ["time", "kind", "row", "col",
                           "voltage", "width", "current", "conductance", "compliance",
                           "scheme", "protocol", "step"])

    @_guarded
    def events(self) -> pd.DataFrame:
        """One row per event, with its message and checkpoint data (parsed JSON) decoded."""
        e = self.events_array()
        text = self._text_bytes()

        def strings(starts: np.ndarray[Any, Any], lens: np.ndarray[Any, Any]) -> list[str]:
            out = []
            for s, n in zip(starts.tolist(), lens.tolist(), strict=True):
                if s >= 0 and (n < 0 or s + n > len(text)):
                    raise LogDamaged(f"{self.path}: damaged: an event's text points outside "
                                     "/text")
                out.append(text[s:s + n].decode("utf-8", errors="replace") if s >= 0 else "")
            return out

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

    @_guarded
    def annotations(self) -> pd.DataFrame:
        """Checkpoints, refusals, faults, compliance trips, safe state and reconnects with
        their messages and data, in order.

        A read or pulse that hit the current compliance gets a ``compliance`` note with the
        operation's seq, time and step (rebuilt from its measurement rows' flags; logs of
        earlier xbarlab hold it as an event of its own, listed once: `xbarlab.log.notes`)."""
        ev = self.events()
        cols = ["seq", "time", "kind", "step", "message", "data"]
        keep = ev["kind"].isin(["checkpoint", "refused", "fault", "compliance", "safe_state",
                                 "reconnect"])
        notes = ev.loc[keep, cols]
        ops = flagged_operations(self.measurements_array(),
                                 ev["kind"].cat.codes.to_numpy())
        if ops:
            limit = float(self.info.limits.get("compliance", float("nan")))
            made = ev.iloc[[row for row, _, _ in ops]][cols[:4]].copy()
            made["kind"] = pd.Categorical.from_codes(
                np.full(len(ops), sc.KIND_CODE["compliance"], dtype=np.int8), sc.KINDS)
            text = [compliance_note(limit, during, cells) for _, during, cells in ops]
            made["message"] = [m for m, _ in text]
            made["data"] = [d for _, d in text]
            notes = pd.concat([notes, made]).sort_values("seq", kind="stable")
        return notes.reset_index(drop=True)

    @_guarded
    def mvm(self) -> MvmData:
        """Every MVM's inputs and outputs, with the event each batch row belongs to."""
        x = self._rows(sc.MVM_INPUTS)
        y = self._rows(sc.MVM_OUTPUTS)
        c = self._rows(sc.MVM_COMPLIANCE)
        t = min(len(x), len(y), len(c))
        e = self.events_array()
        owner = np.full(t, -1, dtype=np.int64)
        for idx in np.flatnonzero(e["mvm_start"] >= 0):
            s, n = int(e["mvm_start"][idx]), int(e["mvm_count"][idx])
            owner[s:min(s + n, t)] = idx
        return MvmData(x[:t], y[:t], c[:t], owner)

    @_guarded
    def final_conductances(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """(M, N) conductance of each cell's last read (S); NaN for cells never read."""
        m, n = self.info.shape
        rows = self.measurements_array()
        reads = rows[rows["kind"] == sc.KIND_CODE["read"]]
        out = np.full((m, n), np.nan)
        bad = (reads["row"] < 0) | (reads["row"] >= m) | (reads["col"] < 0) | (reads["col"] >= n)
        if bad.any():
            raise LogDamaged(f"{self.path}: damaged: a read of a cell outside the {m} x {n} "
                             "array")
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
        asked = time.monotonic()
        while True:
            self.refresh()
            stopped = self._n(sc.STOP) > 0  # the writer flushes every row before the stop
            n = self._n(sc.MEASUREMENTS)
            if n > seen:
                yield self.measurements_array(seen, n)
                seen = n
            elif stopped:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if n <= seen:
                if time.monotonic() - asked >= WRITER_CHECK:  # killed: nothing more will come
                    asked = time.monotonic()
                    if self.writer == "gone":
                        self.refresh()
                        n = self._n(sc.MEASUREMENTS)
                        if n > seen:  # what it flushed before it went
                            yield self.measurements_array(seen, n)
                        return
                time.sleep(poll_interval)


WRITER_CHECK = 1.0
"""s between checks, while a followed log is quiet, that its writer still runs."""


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
