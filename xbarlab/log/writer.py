"""`HDF5Writer`: the run-engine subscriber that records a run into an HDF5 file.

Per event the writer only checks the event and packs bytes (`xbarlab.log.blocks`): a
fixed-size header that holds the cell of a 1-cell event, or a header and a copy of the cell
arrays. A block of them becomes /events and /measurements rows with a few numpy operations
and is appended to the file in one go (when `block_rows` events or rows are buffered, every
`flush_interval` seconds, on RunStop and on close), so the per-event path makes no h5py call
and builds no numpy array; whole chunks go to the file with `write_direct_chunk`. The file is
in SWMR mode from the RunStart on: a reader can follow it live, and a killed writer loses at
most the rows not yet flushed while the file stays readable. See `xbarlab.log.schema` for the
layout (unchanged by this buffering).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import re
import shutil
import struct
import sys
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from xbarlab.cells import CellMeasurement
from xbarlab.devnull import to_devnull
from xbarlab.documents import Document, Event, RunStart, RunStop
from xbarlab.log import blocks
from xbarlab.log import schema as sc
from xbarlab.log.errors import LogCreateFailed, LogSpaceLow, LogWriteFailed
from xbarlab.log.fletcher import with_checksum
from xbarlab.log.ownership import claim_log, writer_identity

_I8, _F8, _B = blocks.INT, blocks.FLOAT, blocks.BOOL
_CELL_BYTES = blocks.CELL_BYTES
_pack_head = blocks.HEAD.pack
_NO_CELL = (0, 0, 0.0, 0.0, 0.0, False)  # the 1-cell fields of a header of 0 or k > 1 cells
_join = b"".join
_NO_EXTRAS = (sc.NO_INDEX, 0, sc.NO_INDEX, 0, sc.NO_INDEX, 0)
_SIG_DTYPE = np.dtype([("kind", np.uint8), ("protocol", np.uint16), ("step", np.uint16),
                       ("scheme", np.uint8)])
CHECKSUMS = True
"""fletcher32 on every dataset. Switched off only by bench/bench_log.py to measure its cost."""
MIN_FREE = 64 << 20
"""bytes: the free space the log keeps in reserve on its disk (`min_free`)."""
_WRITE_ERRORS = (OSError, RuntimeError)  # what h5py raises when HDF5 cannot write the file
_EXTRA_COLUMNS = ("mvm_start", "mvm_count", "message_start", "message_len", "data_start",
                  "data_len")


def _start_swmr(f: h5py.File, attempts: int = 20) -> None:
    """Switch `f` to SWMR writing. HDF5 refuses while any attribute of the file is open; a
    transient attribute handle can outlive its statement when another thread holds the
    frame that made it (a sampling profiler, as in Dask workers): collect and retry."""
    for attempt in range(attempts):
        try:
            f.swmr_mode = True
            return
        except RuntimeError as exc:
            if "swmr" not in str(exc).lower() or attempt == attempts - 1:
                raise
            gc.collect()
            time.sleep(0.005 * (attempt + 1))


class HDF5Writer:
    """Log every document of one run to `path`.

    - `overwrite`: replace an existing file (otherwise `FileExistsError`).
    - `block_rows`: rows buffered per table before a block is appended (also the tables'
      chunk size). A block ends when /events or /measurements reaches the next multiple of
      `block_rows` rows, so after an early (timed) flush the next block is shorter and later
      blocks fill whole chunks again.
    - `flush_interval`: also flush when this many seconds passed since the last flush, so a
      live reader of a slow run sees rows soon (``None``: only on full blocks and at the end).
      Checked at each event through a flag a daemon thread sets (ended by `close`).
    - `durable` (or its old name `fsync`): fsync the file at every flush and its directory
      at creation, so that what was flushed also survives a power cut, not just a process kill.
    - `min_free`: bytes kept free on the log's disk. When a flush leaves less, the next event
      raises `LogSpaceLow` in the run's thread (once): the run engine stops the run and makes
      the bench safe, and the reserve takes the fault, the run stop and the close, so the log
      ends sound and complete instead of cut off by a full disk. 0: no check.

    A write the file system refuses (a disk or quota full, a file-size limit, an I/O error)
    raises `LogWriteFailed` once, naming the file and the cause; from then on the writer
    drops what it is given and closes without writing (HDF5 would crash the process trying),
    and the file keeps what was flushed before (`xbarlab log recover` salvages it).

    Every dataset carries HDF5's fletcher32 checksum; an end-of-data marker (/eod: row counts
    and file size) is rewritten after each flush, once the rows it counts are in the file.
    Multi-cell operations may stream their cells as they are measured (`partial`).
    Thread-safe: the flush clock thread flushes buffered rows itself when the run is idle.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        block_rows: int = 1024,
        flush_interval: float | None = 1.0,
        fsync: bool = False,
        durable: bool = False,
        min_free: int = MIN_FREE,
    ) -> None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if flush_interval is not None and not flush_interval >= 0:
            raise ValueError(f"flush_interval must be >= 0 s or None, got {flush_interval}")
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory, not an HDF5 log file")
        # one writer per log, host-wide, for as long as it is open: `--overwrite` of a log a
        # running session fills would truncate it under that session (HDF5's own file lock
        # is gone once a writer is in SWMR mode)
        self._owner = claim_log(self.path)
        try:
            if self.path.exists() and not overwrite:
                raise FileExistsError(
                    f"{self.path} exists: a measurement log is never overwritten silently; "
                    "choose another file or pass overwrite=True (CLI: --overwrite)"
                )
            try:
                self._file = h5py.File(self.path, "w" if overwrite else "x", libver=sc.LIBVER)
            except FileExistsError:
                raise
            except OSError as exc:
                if not overwrite and self.path.exists():
                    raise FileExistsError(f"{self.path} appeared while opening it: "
                                          f"{exc}") from None
                why = os.strerror(exc.errno) if exc.errno else str(exc).split(" (")[0]
                raise LogCreateFailed(f"cannot create the log {self.path}: {why}") from None
            self._file.attrs["schema"] = sc.SCHEMA_NAME
            self._file.attrs["schema_version"] = sc.SCHEMA_VERSION
            self._file.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            for key, value in writer_identity().items():  # whether it still runs: `writer_state`
                self._file.attrs[key] = value
        except BaseException:
            self._owner.release()
            raise
        self.block_rows = block_rows
        self.flush_interval = flush_interval
        self.durable = self.fsync = bool(durable or fsync)
        self.min_free = int(min_free)
        self.failed: LogWriteFailed | None = None  # the write the file system refused
        self.restored: Path | None = None  # where a log deleted while written was copied back
        self.lost_on_delete = ""  # why it could not be (it was deleted, and that copy failed)
        self._failure_unsaid = False  # refused in the flush clock's thread: the run must hear it
        self._space_alarm: LogSpaceLow | None = None
        self._alarm_raised = False
        if self.durable:
            sync_directory(self.path)
        self._lock = threading.Lock()
        self._eod: h5py.Dataset | None = None
        self._flushes = 0
        self._stop_rows = 0
        # cells a multi-cell operation streamed before its event (`partial`)
        self._part: list[tuple[Any, ...]] = []
        self._part_seq: int | None = None
        self._part_first = 0  # row of /measurements of its first cell
        self._part_n = 0  # cells streamed so far
        self._meas_ref: dict[int, tuple[int, int]] = {}  # block position -> (start, count)
        self._started = False
        self._stopped = False
        self._closed = False
        self._live = False  # started and not closed: events are accepted
        self._run_id = ""
        self._shape = (0, 0)
        self._last_flush = time.monotonic()
        self._interval = float("inf") if flush_interval is None else float(flush_interval)
        self._marked = time.monotonic()  # when the end-of-data marker was last written
        self._marked_rows = {"measurements": 0, "events": 0, "mvm": 0}
        self._mark_every = min(self._interval / 4, 0.25)
        # `_due`: flush at every event (flush_interval 0). Otherwise the flush clock thread
        # flushes on its own (`_flush_clock`).
        self._due = self._interval == 0
        self._clock_stop = threading.Event()
        self._clock: threading.Thread | None = None

        self._meas = np.zeros(block_rows, dtype=sc.MEASUREMENT_DTYPE)
        self._events = np.zeros(block_rows, dtype=sc.EVENT_DTYPE)
        # Buffered events other than plain 1-cell ones, and their rows: the block holds
        # len(_heads) - _n_other + _rows_other measurement rows.
        self._n_other = self._rows_other = 0
        self._meas_total = self._events_total = 0  # rows in the file
        self._meas_next = self._events_next = 0  # rows in the file or converted for it
        self._unwritten: list[tuple[str, np.ndarray[Any, Any] | None]] = []
        self._heads: list[bytes] = []  # one packed header per buffered event
        self._cells: list[bytes] = []  # one cell record per buffered event with cells
        self._extras: dict[int, tuple[int, int, int, int, int, int]] = {}  # MVM/text refs
        self._sigs: dict[tuple[Any, str, str, str], int] = {}  # (kind, protocol, step, scheme)
        self._sig_rows: list[tuple[int, int, int, int]] = []  # their codes
        self._sig_table = np.zeros(0, dtype=_SIG_DTYPE)
        self._by_step: dict[str, tuple[Any, str, str, int]] = {}
        self._extras_dirty = True  # the MVM/text columns of `_events` need (re)setting
        # A block ends at the next multiple of `block_rows` rows of /events or /measurements
        # (their chunk size), so that blocks after a partial (timed) flush realign to chunks.
        self._room_events = self._room_rows = block_rows
        self._left = block_rows  # 1-cell events the block can still take
        self._text = bytearray()
        self._text_total = 0
        self._labels: dict[str, int] = {}
        self._pending_labels: list[tuple[int, int]] = []
        self._labels_total = 0
        self._mvm_cap = 0
        self._mvm_in = np.zeros((0, 0))
        self._mvm_out = np.zeros((0, 0))
        self._mvm_comp = np.zeros((0, 0), dtype=bool)
        self._n_mvm = 0
        self._mvm_total = 0
        self._sinks: dict[str, _Sink] = {}

    # -- subscriber -------------------------------------------------------------------------

    def __call__(self, doc: Document) -> None:
        """Record one document (the run engine calls this).

        The body is the per-event path, kept in this one function because it runs once per
        operation: pack the event's header (with its cell, for a 1-cell event) or its header
        and a copy of its cell arrays, flush when a block is full or `flush_interval` passed.
        A 1-cell event needs no dtype checks: ``item()`` gives exact Python numbers (and
        refuses arrays of another size), ``struct`` refuses what is not a number.
        """
        with self._lock:
            if type(doc) is not Event and not isinstance(doc, Event):
                self._document(doc)
                return
            if not self._live:
                if self.failed is not None:
                    self._say_failure()
                    return  # said once: the run stops on it
                self._not_live()
            if doc.mvm_in is not None or doc.message or doc.data or self._part_seq is not None:
                if self._part_seq is not None and doc.seq == self._part_seq:
                    self._finish_part(doc)
                else:
                    self._stage_with_extras(doc)
                return
            known = self._by_step.get(doc.step)
            if (known is not None and known[0] is doc.kind and known[1] is doc.protocol
                    and known[2] is doc.scheme):
                sig = known[3]
            else:
                sig = self._signature(doc)
            cells = doc.cells
            k = len(cells)
            if k == 1:
                try:
                    (r, c), = cells.tolist()
                    head = _pack_head(doc.seq, doc.time, doc.width, sig, 1, r, c,
                                      doc.voltages.item(), doc.currents.item(),
                                      doc.conductances.item(), doc.compliance.item())
                except (ValueError, TypeError, AttributeError, struct.error):  # other shapes/types
                    head = self._single_head(doc, sig)
                self._heads.append(head)
                left = self._left - 1
                self._left = left
                if left <= 0 or self._due:
                    self._flush_staged()
            else:
                record = self._cell_bytes(doc, k) if k else b""
                self._stage(_pack_head(doc.seq, doc.time, doc.width, sig, k, *_NO_CELL), k, record)

    def _single_head(self, doc: Event, sig: int) -> bytes:
        """Header of a 1-cell event whose arrays are not plain numbers of the usual shape."""
        record = blocks.cell_record(doc.seq, doc.cells, doc.voltages, doc.currents,
                                    doc.conductances, doc.compliance)
        return blocks.single_head(doc.seq, doc.time, doc.width, sig, record)

    @staticmethod
    def _cell_bytes(doc: Event, k: int) -> bytes:
        """The cell record of an event of `k` cells (checked, converted when needed)."""
        cells, v, i, g, comp = doc.cells, doc.voltages, doc.currents, doc.conductances, \
            doc.compliance
        record = b""
        try:
            if (cells.dtype is _I8 and v.dtype is _F8 and i.dtype is _F8 and g.dtype is _F8
                    and comp.dtype is _B and len(v) == k and len(i) == k and len(g) == k
                    and len(comp) == k):
                record = _join((cells, v, i, g, comp))  # type: ignore[arg-type]
        except (TypeError, AttributeError):  # not C-contiguous, or not arrays
            record = b""
        if len(record) != _CELL_BYTES * k:  # other dtypes, layouts or shapes
            record = blocks.cell_record(doc.seq, cells, v, i, g, comp)
        return record

    def _stage_with_extras(self, doc: Event) -> None:
        """The per-event path of an event with MVM rows, a message or data."""
        sig = self._signature(doc)
        k = len(doc.cells)
        record = b""
        if k == 1:
            head = self._single_head(doc, sig)
        else:
            record = self._cell_bytes(doc, k) if k else b""
            head = _pack_head(doc.seq, doc.time, doc.width, sig, k, *_NO_CELL)
        extras = self._add_extras(doc)  # may flush the block
        self._stage(head, k, record, extras)

    def _stage(self, head: bytes, k: int, record: bytes,
               extras: tuple[int, int, int, int, int, int] | None = None) -> None:
        """Buffer an event other than a plain 1-cell one; flush when its block is full."""
        heads = self._heads
        rows = len(heads) - self._n_other + self._rows_other + k
        if rows > self._room_rows and heads:  # the block cannot take these rows
            self._flush()
            rows = k
        if extras is not None:
            self._extras[len(heads)] = extras
        heads.append(head)
        if k > 1:
            self._cells.append(record)
        self._n_other += 1
        self._rows_other += k
        left_events, left_rows = self._room_events - len(heads), self._room_rows - rows
        left = left_events if left_events < left_rows else left_rows
        self._left = left
        if left <= 0 or self._due:
            self._flush_staged()

    # -- cells streamed by a multi-cell operation -------------------------------------------

    def partial(self, doc: CellMeasurement) -> None:
        """One cell of a multi-cell operation, measured just now (before the operation's event).

        Its row goes to /measurements with the next flush (at the latest `flush_interval` / 2
        later through the flush clock), so a kill during a long read map or MVM loses only
        the cells of the last interval. The operation's event (same `seq`) then refers to
        these rows instead of writing its first cells again.
        """
        with self._lock:
            if not self._live:
                if self.failed is not None:
                    self._say_failure()
                    return
                self._not_live()
            if self._part_seq != doc.seq:
                self._write_all()  # earlier events first: this operation's rows follow theirs
                self._part_seq, self._part_first, self._part_n = doc.seq, self._meas_next, 0
            sig = self._signature(doc)  # type: ignore[arg-type]
            kind, proto, step, scheme = self._sig_rows[sig]
            v, i = float(doc.voltage), float(doc.current)
            r, c = doc.cell
            self._part.append((self._events_next, doc.time, kind, int(r), int(c), v, doc.width,
                               i, i / v if v else float("nan"), bool(doc.compliance), scheme,
                               proto, step))
            self._part_n += 1
            if len(self._part) >= self.block_rows or self._due:
                self._flush_staged()

    def _write_part(self) -> None:
        """Append the streamed cells buffered so far to /measurements (no file flush)."""
        if not self._part:
            return
        rows = np.array(self._part, dtype=sc.MEASUREMENT_DTYPE)
        self._part.clear()
        self._meas_next += len(rows)
        cap = self.block_rows
        self._room_rows = cap - self._meas_next % cap
        self._left = min(self._room_rows, self._room_events)
        self._append_rows([(sc.MEASUREMENTS, rows)])

    def _finish_part(self, doc: Event) -> None:
        """The event of an operation whose first cells were streamed: refer to their rows."""
        self._write_all()
        first, s = self._part_first, self._part_n
        self._part_seq, self._part_n = None, 0
        k = len(doc.cells)
        rest = doc
        if k:  # the event repeats the streamed cells first: keep only the others
            cut = min(s, k)
            rest = replace(doc, cells=np.asarray(doc.cells)[cut:],
                           voltages=np.asarray(doc.voltages)[cut:],
                           currents=np.asarray(doc.currents)[cut:],
                           conductances=np.asarray(doc.conductances)[cut:],
                           compliance=np.asarray(doc.compliance).reshape(-1)[cut:]
                           if len(np.asarray(doc.compliance).reshape(-1)) == k else doc.compliance)
        self._meas_ref[len(self._heads)] = (first, s + max(k - s, 0))
        self._stage_with_extras(rest)

    def _not_live(self) -> None:
        self._check_open()
        raise RuntimeError("HDF5Writer got an Event before the RunStart")

    def _document(self, doc: Document) -> None:
        if self.failed is not None:
            return
        if isinstance(doc, RunStart):
            self._start(doc)
        elif isinstance(doc, RunStop):
            self._stop(doc)
        else:
            raise TypeError(f"HDF5Writer got {type(doc).__name__}, not a RunStart/Event/RunStop")

    @property
    def flushed_rows(self) -> dict[str, int]:
        """Rows in the file and counted by its end-of-data marker (what a reader trusts, and
        what survives a process kill), per table."""
        return dict(self._marked_rows)

    @property
    def written_rows(self) -> dict[str, int]:
        """Rows appended to the file's tables so far (flushed or not, marked or not)."""
        return {"measurements": self._meas_total, "events": self._events_total,
                "mvm": self._mvm_total}

    # -- run start ----------------------------------------------------------------------------

    def _start(self, doc: RunStart) -> None:
        self._check_open()
        if self._started:
            raise RuntimeError(
                f"{self.path} already holds run {self._run_id}: one run per log file, "
                "open a new HDF5Writer for the next run"
            )
        try:
            self._create(doc)
        except _WRITE_ERRORS as exc:
            raise self._broken(exc) from None
        if 0 < self._interval < float("inf"):
            self._clock = threading.Thread(
                target=_flush_clock, args=(weakref.ref(self), self._clock_stop, self._interval),
                name=f"HDF5Writer flush clock {self.path.name}", daemon=True)
            self._clock.start()

    def _create(self, doc: RunStart) -> None:
        """The run's group, attributes and tables; SWMR from here on."""
        f = self._file
        run = f.create_group(sc.RUN)
        run.attrs["run_id"] = doc.run_id
        run.attrs["start_time"] = float(doc.time)
        run.attrs["protocol"] = doc.protocol
        if doc.seed is not None:
            run.attrs["seed"] = int(doc.seed)
        run.attrs["version"] = doc.version
        if doc.git_revision is not None:
            run.attrs["git_revision"] = doc.git_revision
        run.attrs["shape"] = np.asarray(doc.shape, dtype=np.int64)
        for name in sc.RUN_JSON_ATTRS:
            run.attrs[name] = sc.to_json(getattr(doc, name))
        run.attrs["units"] = sc.to_json({"start_time": "s"})

        rows = self.block_rows
        datasets = {
            sc.MEASUREMENTS: self._table(sc.MEASUREMENTS, sc.MEASUREMENT_DTYPE, rows,
                                        sc.MEASUREMENT_UNITS),
            sc.EVENTS: self._table(sc.EVENTS, sc.EVENT_DTYPE, rows, sc.EVENT_UNITS),
            sc.LABELS: self._table(sc.LABELS, sc.LABEL_DTYPE, 256, {}),
            sc.STOP: self._table(sc.STOP, sc.STOP_DTYPE, 1, sc.STOP_UNITS),
        }
        text = f.create_dataset(sc.TEXT, shape=(0,), maxshape=(None,), dtype=np.uint8,
                                chunks=(16384,), fletcher32=CHECKSUMS)
        text.attrs["encoding"] = "utf-8"
        datasets[sc.TEXT] = text
        m, n = (int(x) for x in doc.shape)
        self._shape = (m, n)
        self._mvm_cap = max(1, min(rows, (1 << 20) // max(m, n, 1)))
        self._mvm_in = np.zeros((self._mvm_cap, m))
        self._mvm_out = np.zeros((self._mvm_cap, n))
        self._mvm_comp = np.zeros((self._mvm_cap, n), dtype=bool)
        for name, width, dtype, units in ((sc.MVM_INPUTS, m, np.float64, "V"),
                                          (sc.MVM_OUTPUTS, n, np.float64, "A"),
                                          (sc.MVM_COMPLIANCE, n, np.bool_, "")):
            ds = f.create_dataset(name, shape=(0, width), maxshape=(None, width), dtype=dtype,
                                  chunks=(self._mvm_cap, max(width, 1)),
                                  fletcher32=CHECKSUMS)
            if units:
                ds.attrs["units"] = units
            datasets[name] = ds
        self._sinks = {name: _Sink(ds) for name, ds in datasets.items()}
        self._run_id = doc.run_id
        self._started = self._live = True
        self._intern(doc.protocol)
        self._eod = f.create_dataset(sc.EOD, shape=(1,), dtype=sc.EOD_DTYPE, chunks=(1,),
                                     fletcher32=True)
        f.attrs[sc.DIGEST_ATTR] = np.bytes_(sc.attrs_digest(f))
        _start_swmr(self._file)  # every object exists now; from here on only appends
        self._flush(marker=True)

    def _table(
        self, name: str, dtype: np.dtype[Any], chunk: int, units: dict[str, str]
    ) -> h5py.Dataset:
        ds = self._file.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                       chunks=(chunk,), fletcher32=CHECKSUMS)
        ds.attrs["units"] = sc.to_json(units)
        return ds

    # -- events -------------------------------------------------------------------------------

    def _signature(self, ev: Event) -> int:
        """Index of the event's (kind, protocol, step, scheme) in the table; validates the kind.

        The last combination seen per step is also kept by identity (`_by_step`): the
        per-event path then finds it without building and hashing a tuple.
        """
        key = (ev.kind, ev.protocol, ev.step, ev.scheme)
        sig = self._sigs.get(key)
        if sig is None:
            try:
                kind = sc.KIND_CODE[ev.kind]
            except KeyError:
                raise ValueError(f"event {ev.seq}: unknown kind {ev.kind!r}; "
                                 f"allowed: {', '.join(sc.KINDS)}") from None
            labels = self._labels
            proto = labels.get(ev.protocol)
            if proto is None:
                proto = self._intern(ev.protocol)
            step = labels.get(ev.step)
            if step is None:
                step = self._intern(ev.step)
            sig = len(self._sig_rows)
            self._sig_rows.append((kind, proto, step, sc.SCHEME_CODE.get(ev.scheme, 5)))
            self._sig_table = np.array(self._sig_rows, dtype=_SIG_DTYPE)
            self._sigs[key] = sig
        self._by_step[ev.step] = (ev.kind, ev.protocol, ev.scheme, sig)
        return sig

    def _add_extras(self, ev: Event) -> tuple[int, int, int, int, int, int]:
        """Buffer the MVM rows, message and data of `ev`; their references for its row."""
        mvm_start, mvm_count = sc.NO_INDEX, 0
        if ev.mvm_in is not None:
            mvm_start, mvm_count = self._add_mvm(ev)
        msg_start, msg_len, data_start, data_len = sc.NO_INDEX, 0, sc.NO_INDEX, 0
        if ev.message:
            msg_start, msg_len = self._add_text(ev.message)
        if ev.data:
            data_start, data_len = self._add_text(sc.to_json(ev.data))
        return mvm_start, mvm_count, msg_start, msg_len, data_start, data_len

    def _write_block(self) -> None:
        """Turn the buffered events into /measurements and /events rows and append them."""
        n = len(self._heads)
        if not n:
            return
        head = blocks.unpack_heads(self._heads)
        k = head["k"]
        sig = head["sig"]
        # one kind of event in the block: its codes broadcast
        codes = self._sig_table[sig[0] if (sig == sig[0]).all() else sig]
        kind, proto, step, scheme = (codes[name] for name in _SIG_DTYPE.names or ())
        first = self._events_next
        n_rows = int(k.sum())
        single = n_rows == n and bool((k == 1).all())  # one cell per event: no repeats
        m: np.ndarray[Any, Any] | None = None
        if n_rows:
            cells = blocks.block_cells(head, _join(self._cells))
            m = self._meas[:n_rows] if n_rows <= len(self._meas) else np.empty(
                n_rows, dtype=sc.MEASUREMENT_DTYPE)
            if single:
                m["event"] = np.arange(first, first + n)
                for name, values in (("time", head["time"]), ("kind", kind),
                                     ("width", head["width"]), ("scheme", scheme),
                                     ("protocol", proto), ("step", step)):
                    m[name] = values
            else:
                m["event"] = np.repeat(np.arange(first, first + n), k)
                for name, values in (("time", head["time"]), ("kind", kind),
                                     ("width", head["width"]), ("scheme", scheme),
                                     ("protocol", proto), ("step", step)):
                    m[name] = np.repeat(values, k) if np.ndim(values) else values
            for name, values in (("row", cells.row), ("col", cells.col),
                                 ("voltage", cells.voltage), ("current", cells.current),
                                 ("conductance", cells.conductance),
                                 ("compliance", cells.compliance)):
                blocks.put(m[name], values)
        if n <= len(self._events):
            e = self._events[:n]
        else:
            e = np.empty(n, dtype=sc.EVENT_DTYPE)
            self._extras_dirty = True
        e["seq"] = head["seq"]
        e["time"] = head["time"]
        e["kind"] = kind
        e["protocol"] = proto
        e["step"] = step
        e["scheme"] = scheme
        e["width"] = head["width"]
        e["meas_start"] = np.cumsum(k) - k + self._meas_next
        if not single:
            e["meas_start"][k == 0] = sc.NO_INDEX
        e["meas_count"] = k
        for pos, (start, count) in self._meas_ref.items():  # rows streamed before the event
            e["meas_start"][pos] = start
            e["meas_count"][pos] = count
        if self._extras_dirty or self._extras:  # the reference columns of MVM/text events
            refs = np.empty((n, len(_NO_EXTRAS)), dtype=np.int64)
            refs[:] = _NO_EXTRAS
            for pos, values in self._extras.items():
                refs[pos] = values
            for j, name in enumerate(_EXTRA_COLUMNS):
                e[name] = refs[:, j]
            # the preallocated block keeps these columns for the next, unless they differ
            self._extras_dirty = bool(self._extras) or e.base is not self._events
        if self._meas_ref:
            self._extras_dirty = True  # the preallocated block's meas columns were overridden
            self._meas_ref.clear()
        self._heads.clear()
        self._cells.clear()
        self._extras.clear()
        self._n_other = self._rows_other = 0
        self._meas_next += n_rows
        self._events_next += n
        cap = self.block_rows
        self._room_rows = cap - self._meas_next % cap
        self._room_events = cap - self._events_next % cap
        self._left = min(self._room_rows, self._room_events)
        # measurements before their events: a reader never sees an event without its rows
        self._append_rows([(sc.MEASUREMENTS, m), (sc.EVENTS, e)])

    def _append_rows(self, tables: list[tuple[str, np.ndarray[Any, Any] | None]]) -> None:
        """Append row blocks in order; what a failed append left out is kept for the next try."""
        for j, (name, rows) in enumerate(tables):
            if rows is None or not len(rows):
                continue
            try:
                if name == sc.MEASUREMENTS:
                    self._meas_total = self._append(name, rows, len(rows), self._meas_total)
                else:
                    self._events_total = self._append(name, rows, len(rows), self._events_total)
            except BaseException:
                self._unwritten = [(nm, None if r is None else r.copy()) for nm, r in tables[j:]]
                raise

    def _add_mvm(self, ev: Event) -> tuple[int, int]:
        m, n = self._shape
        x = np.asarray(ev.mvm_in, dtype=np.float64)
        y = np.asarray(ev.mvm_out, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if y.ndim == 1:
            y = y.reshape(1, -1)
        b = x.shape[0]
        if x.shape != (b, m) or y.shape != (b, n):
            raise ValueError(
                f"event {ev.seq}: MVM input {x.shape} / output {y.shape} do not match the "
                f"{m} x {n} array (expected (B, {m}) and (B, {n}))"
            )
        comp = np.asarray(ev.compliance, dtype=bool)
        comp = comp.reshape(b, n) if comp.size == b * n else np.zeros((b, n), dtype=bool)
        j = self._n_mvm
        if j + b > self._mvm_cap:
            self._flush()
            j = 0
        if b > self._mvm_cap:
            start = self._mvm_total
            self._append(sc.MVM_INPUTS, x, b, start)
            self._append(sc.MVM_OUTPUTS, y, b, start)
            self._mvm_total = self._append(sc.MVM_COMPLIANCE, comp, b, start)
            return start, b
        self._mvm_in[j:j + b] = x
        self._mvm_out[j:j + b] = y
        self._mvm_comp[j:j + b] = comp
        self._n_mvm = j + b
        return self._mvm_total + j, b

    def _add_text(self, text: str) -> tuple[int, int]:
        data = text.encode("utf-8")
        start = self._text_total + len(self._text)
        self._text += data
        return start, len(data)

    def _intern(self, label: str) -> int:
        index = len(self._labels)
        if index > np.iinfo(np.uint16).max:
            raise ValueError(f"more than {index} distinct protocol/step names in one run")
        self._pending_labels.append(self._add_text(label))
        self._labels[label] = index
        return index

    # -- run stop, flush, close -----------------------------------------------------------------

    def _stop(self, doc: RunStop) -> None:
        self._check_open()
        if not self._started:
            raise RuntimeError("HDF5Writer got a RunStop before the RunStart")
        if self._stopped:
            raise RuntimeError(f"run {self._run_id} already stopped")
        start, length = self._add_text(doc.reason) if doc.reason else (-1, 0)
        row = np.array([(doc.time, sc.STATUS_CODE[doc.status], doc.n_events, start, length)],
                       dtype=sc.STOP_DTYPE)
        self._write_all()  # rows before the stop row; the marker then counts them all
        try:
            self._append(sc.STOP, row, 1, 0)
        except _WRITE_ERRORS as exc:
            raise self._broken(exc) from None
        self._stop_rows = 1
        self._stopped = True
        self._sync(marker=True)

    def _append(self, name: str, block: np.ndarray[Any, Any], n: int, total: int) -> int:
        return self._sinks[name].append(block, n, total)

    def flush(self) -> None:
        """Append every buffered row to the file and flush it (readers see them after this)."""
        with self._lock:
            self._flush(marker=True)

    def _pending(self) -> bool:
        """Rows are buffered that the file does not have yet."""
        return bool(self._heads or self._part or self._text or self._pending_labels
                    or self._n_mvm or self._unwritten)

    def _clock_flush(self, since: float) -> None:
        """The flush clock's flush: only if nobody flushed since `since` and rows wait."""
        with self._lock:
            if self._last_flush <= since and (self._pending() or self._marked < since):
                self._flush(marker=True)

    def _flush(self, marker: bool | None = None) -> None:
        if self._closed or not self._started or self.failed is not None:
            return
        self._write_all()
        self._sync(marker)

    def _flush_staged(self) -> None:
        """Flush once the event is staged; a low-disk alarm is raised here, in the run's
        thread, so the run stops with nothing it measured left out of the log."""
        self._flush()
        if self._space_alarm is not None and not self._alarm_raised:
            self._alarm_raised = True
            raise self._space_alarm

    def _write_all(self) -> None:
        """Append every buffered row to its table (no file flush); `LogWriteFailed` if the
        file system refuses."""
        try:
            self._write_rows()
        except _WRITE_ERRORS as exc:
            raise self._broken(exc) from None

    def _write_rows(self) -> None:
        """Append every buffered row to its table, strings and labels first (no file flush)."""
        if self._text:
            self._text_total = self._append(
                sc.TEXT, np.frombuffer(bytes(self._text), dtype=np.uint8), len(self._text),
                self._text_total,
            )
            self._text.clear()
        if self._pending_labels:
            rows = np.array(self._pending_labels, dtype=sc.LABEL_DTYPE)
            self._labels_total = self._append(sc.LABELS, rows, len(rows), self._labels_total)
            self._pending_labels.clear()
        if self._n_mvm:
            j, t = self._n_mvm, self._mvm_total
            self._append(sc.MVM_INPUTS, self._mvm_in, j, t)
            self._append(sc.MVM_OUTPUTS, self._mvm_out, j, t)
            self._mvm_total = self._append(sc.MVM_COMPLIANCE, self._mvm_comp, j, t)
            self._n_mvm = 0
        if self._unwritten:  # rows a failed append left out, before any later ones
            tables, self._unwritten = self._unwritten, []
            self._append_rows(tables)
        self._write_block()
        self._write_part()

    def _sync(self, marker: bool | None = None) -> None:
        """`_sync_file`; `LogWriteFailed` if the file system refuses, then the free space."""
        try:
            self._sync_file(marker)
        except _WRITE_ERRORS as exc:
            raise self._broken(exc) from None
        if self.min_free > 0 and self._space_alarm is None:
            self._check_space()

    def _check_space(self) -> None:
        try:
            st = os.statvfs(self.path.parent if str(self.path.parent) else ".")
        except OSError:  # a file system that cannot say: no check
            return
        free = st.f_bavail * st.f_frsize
        if free < self.min_free:
            self._space_alarm = LogSpaceLow(
                f"{self.path}: only {_size(free)} free on its disk, less than the "
                f"{_size(self.min_free)} the log keeps in reserve: the run was stopped so that "
                "the log ends sound; free some space before the next run")
            self._due = True  # the next event flushes and hears it

    def _say_failure(self) -> None:
        """Raise the refused write in the run's thread if only the flush clock met it."""
        if self._failure_unsaid:
            self._failure_unsaid = False
            assert self.failed is not None
            raise self.failed

    def _broken(self, exc: BaseException) -> LogWriteFailed:
        """The file system refused a write: remember it, and send the file's later writes
        (HDF5's own, at close) to /dev/null so that closing cannot crash the process; the
        file keeps what was written before."""
        if self.failed is None:
            self.failed = LogWriteFailed(
                f"cannot write the log {self.path}: {_write_error(exc)}; what was flushed "
                f"before is in the file, `xbarlab log recover {self.path}` salvages it")
            self._live = False
            self._failure_unsaid = threading.current_thread() is self._clock
            with contextlib.suppress(Exception):
                to_devnull([self._file.id.get_vfd_handle()])
        return self.failed

    def _sync_file(self, marker: bool | None = None) -> None:
        """Flush the file, then record the end-of-data marker of what it now holds.

        The marker is written only once the rows it counts are in the file (and, when
        durable, on disk), so a reader trusting the marker never trusts rows that are not.
        It is written at every timed or explicit flush, at the run stop and at close; the
        flushes of full blocks in a fast run update it at most every `_mark_every` s (it
        costs a second file flush).
        """
        f = self._file
        f.flush()
        fd = f.id.get_vfd_handle()
        if self.durable:
            os.fsync(fd)
        now = time.monotonic()
        if marker is None:
            marker = self._due or now - self._marked >= self._mark_every
        if self._eod is not None and marker:
            self._marked = now
            self._marked_rows = {"measurements": self._meas_total, "events": self._events_total,
                                 "mvm": self._mvm_total}
            self._flushes += 1
            self._eod[0] = (self._flushes, os.fstat(fd).st_size, self._meas_total,
                            self._events_total, self._labels_total, self._text_total,
                            self._mvm_total, self._stop_rows)
            f.flush()
            if self.durable:
                os.fsync(fd)
        self._last_flush = time.monotonic()
        self._due = self._interval == 0

    def close(self) -> None:
        """Flush what is buffered and close the file. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._live = False
            self._clock_stop.set()
            if self._clock is not None:
                self._clock.join(timeout=5.0)
            try:
                if self.failed is None:
                    keep = self._if_deleted()
                    self._file.close()
                    if keep is not None:
                        self._bring_back(keep)
                else:  # its writes go to /dev/null now; what HDF5 still says is moot
                    with contextlib.suppress(Exception):
                        self._file.close()
            finally:
                self._owner.release()

    def _if_deleted(self) -> int | None:
        """A second descriptor of the log's file if it was deleted while being written (no
        name left: `rm`, or replaced by another file), so that its content outlives HDF5's
        close; None otherwise (a log that was moved is where it was moved to)."""
        with contextlib.suppress(Exception):
            fd = self._file.id.get_vfd_handle()
            if os.fstat(fd).st_nlink == 0:
                return os.dup(fd)
        return None

    def _bring_back(self, keep: int) -> None:
        """Copy the closed, complete log of a deleted file back: to its path if that is
        free, else next to it (`restored` says where)."""
        target = self.path
        if target.exists():
            target = self.path.with_name(self.path.name.removesuffix(".h5") + ".restored.h5")
        try:
            with os.fdopen(keep, "rb") as src, open(target, "xb") as dst:
                src.seek(0)
                shutil.copyfileobj(src, dst, 1 << 20)
                if self.durable:
                    dst.flush()
                    os.fsync(dst.fileno())
            self.restored = target
        except OSError as exc:
            self.restored = None
            self.lost_on_delete = f"{exc.strerror or exc}"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"HDF5Writer for {self.path} is closed")

    def __enter__(self) -> HDF5Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _size(n: int) -> str:
    """Bytes in binary units, as `df -h` says them."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n / 1024:.3g} KiB"


def _write_error(exc: BaseException) -> str:
    """The cause of a refused write in a few words (HDF5 buries errno in a long text)."""
    text = str(exc)
    found = re.search(r"errno = (\d+), error message = '([^']*)'", text)
    code, why = (int(found[1]), found[2]) if found else (
        (exc.errno, exc.strerror) if isinstance(exc, OSError) and exc.errno else (0, ""))
    if not why:
        return text.strip().split("\n")[0][:160] or type(exc).__name__
    if code == errno.ENOSPC:
        why = "no space left on its disk"
    return f"{why} ({errno.errorcode.get(code, code)})"


def _flush_clock(writer: weakref.ref[HDF5Writer], stop: threading.Event, interval: float) -> None:
    """Flush `writer` whenever rows wait and `interval` / 2 passed since its last flush.

    Wakes every `interval` / 4 at most, so no row waits longer than about 3/4 of `interval`
    (plus the flush itself) even while the run is busy inside one long operation. Holds the
    writer only weakly and only between waits, so a writer that was never closed can still
    be collected (the thread then ends at its next wake-up).
    """
    half, quarter = interval / 2, interval / 4
    while True:
        w = writer()
        if w is None:
            return
        last = w._last_flush
        wait = last + half - time.monotonic()
        if wait <= 0:
            with contextlib.suppress(Exception):  # the next flush in the run raises it
                w._clock_flush(last)
            wait = quarter
        del w
        if stop.wait(min(wait, quarter)):
            return


def sync_directory(path: Path) -> None:
    """fsync the directory holding `path`, so that the file's entry survives a power cut."""
    fd = os.open(path.parent if str(path.parent) else Path("."), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Sink:
    """A growing dataset appended to through h5py's low-level API.

    h5py's `Dataset.__setitem__` converts compound rows member by member; when the in-memory
    layout equals the file's (packed little-endian rows, as created from the same numpy dtype)
    the file type is passed as the memory type and HDF5 copies the bytes as they are. Whole
    chunks of such a 1-D table are written with `write_direct_chunk` (the writer aligns its
    blocks to chunks): the bytes go to the file without HDF5's chunk cache and type path.
    """

    def __init__(self, ds: h5py.Dataset) -> None:
        self.id = ds.id
        self.tail: tuple[int, ...] = tuple(ds.shape[1:])
        ftype = ds.id.get_type()
        same = (sys.byteorder == "little" and ftype.get_size() == ds.dtype.itemsize
                and ftype.dtype.descr == ds.dtype.descr)
        self.mtype = ftype if same else h5py.h5t.py_create(ds.dtype)
        chunks: tuple[int, ...] = ds.chunks or ()
        # fletcher32 alone: whole chunks still go direct, with the checksum computed here
        direct = ds.compression is None and not ds.shuffle
        self.checksum = bool(ds.fletcher32)
        self.chunk = chunks[0] if same and direct and len(chunks) == 1 else 0
        self._zeros = (0,) * len(self.tail)
        self._mspaces: dict[int, h5py.h5s.SpaceID] = {}  # memory spaces by row count

    def append(self, block: np.ndarray[Any, Any], n: int, total: int) -> int:
        """Write the first `n` rows of `block` after row `total`; returns the new length."""
        if n <= 0:
            return total
        rows = np.ascontiguousarray(block[:n])
        self.id.set_extent((total + n, *self.tail))
        c = self.chunk
        a = -total % c if c else n  # rows before the first chunk boundary
        b = a + (n - a) // c * c if a < n else a  # end of the last whole chunk
        if b == a:
            self._write(rows, 0, n, total)
            return total + n
        if a:
            self._write(rows, 0, a, total)
        for j in range(a, b, c):
            part = rows[j:j + c]
            self.id.write_direct_chunk((total + j,), with_checksum(part) if self.checksum
                                       else part)
        if b < n:
            self._write(rows, b, n, total)
        return total + n

    def _write(self, rows: np.ndarray[Any, Any], a: int, b: int, total: int) -> None:
        """Rows `a:b` of `rows` to rows `total + a` onwards of the (already extended) dataset."""
        n = b - a
        mspace = self._mspaces.get(n)
        if mspace is None:
            mspace = h5py.h5s.create_simple((n, *self.tail))
            if len(self._mspaces) < 8:
                self._mspaces[n] = mspace
        fspace = self.id.get_space()
        fspace.select_hyperslab((total + a, *self._zeros), (n, *self.tail))
        part = rows if (a, b) == (0, len(rows)) else rows[a:b]
        self.id.write(mspace, fspace, part, mtype=self.mtype)
