"""Layout of the xbarlab HDF5 measurement log (schema version 1).

One file holds one run::

    /                      attrs: schema, schema_version, created
    /run                   attrs: the RunStart (run_id, start_time, protocol, seed, version,
                           git_revision, shape, config/backend/limits as JSON)
    /run/stop      (0|1,)  the RunStop: time, status, n_events, reason (text reference)
    /events        (E,)    one row per document Event, in order
    /measurements  (R,)    one row per cell measurement (read cell or pulse), with its event
    /mvm/inputs    (T, M)  MVM row voltages, T = total batch rows of all MVM events
    /mvm/outputs   (T, N)  MVM column currents
    /mvm/compliance (T, N) MVM compliance flags
    /labels        (L,)    interned protocol and step names (references into /text)
    /text          (C,)    UTF-8 bytes of every string (labels, messages, checkpoint data JSON)
    /eod           (1,)    end-of-data marker (v2): flush count, file size and rows per table
                           at the last flush; rewritten once those rows are in the file

Version 2 adds integrity: every dataset has HDF5's fletcher32 checksum filter, the root
attribute ``digest`` (fixed-size, so inside the checksummed object header) is the SHA-256 of
every attribute of the file (strings live in the global heap, which HDF5 does not checksum),
and /eod lets a reader tell a cut-short or half-written file from a complete one.

Every table has fixed-size rows (no variable-length types, which SWMR does not handle) and
grows along its first axis. Strings live in /text and are referenced by (start, length).
Units are NeXus-like ``units`` attributes (a JSON object per column for compound tables).
The format is pinned to HDF5 1.10 so that 1.10 tools (h5dump, h5clear) open the files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import h5py
import numpy as np

from xbarlab.documents import EventKind, RunStatus

SCHEMA_NAME: Final = "xbarlab.log"
SCHEMA_VERSION: Final = 2
LIBVER: Final = ("v110", "v110")
"""HDF5 format bounds: SWMR needs >= 1.10; newer bounds make files h5dump 1.10 cannot read."""

KINDS: Final[tuple[str, ...]] = tuple(k.value for k in EventKind)
KIND_CODE: Final[dict[str, int]] = {k: i for i, k in enumerate(KINDS)}
SCHEMES: Final[tuple[str, ...]] = ("none", "v/2", "v/3", "grounded", "floating", "other")
SCHEME_CODE: Final[dict[str, int]] = {s: i for i, s in enumerate(SCHEMES)} | {"": 0}
STATUSES: Final[tuple[str, ...]] = tuple(s.value for s in RunStatus)
STATUS_CODE: Final[dict[str, int]] = {s: i for i, s in enumerate(STATUSES)}

KIND_DTYPE = h5py.enum_dtype(KIND_CODE, basetype="u1")
SCHEME_DTYPE = h5py.enum_dtype({s: i for i, s in enumerate(SCHEMES)}, basetype="u1")
STATUS_DTYPE = h5py.enum_dtype(STATUS_CODE, basetype="u1")

NO_INDEX: Final = -1
"""Marks an absent reference (an event without measurements, MVM rows, message or data)."""

MEASUREMENT_DTYPE = np.dtype([
    ("event", "<i8"),  # row of /events this measurement belongs to
    ("time", "<f8"),
    ("kind", KIND_DTYPE),
    ("row", "<i4"),
    ("col", "<i4"),
    ("voltage", "<f8"),  # applied, signed
    ("width", "<f8"),  # pulse width; NaN for reads
    ("current", "<f8"),  # measured; NaN when the backend does not measure it
    ("conductance", "<f8"),  # derived I / V
    ("compliance", "?"),  # the instrument hit its current limit
    ("scheme", SCHEME_DTYPE),
    ("protocol", "<u2"),  # row of /labels
    ("step", "<u2"),  # row of /labels
])
MEASUREMENT_UNITS: Final = {"time": "s", "voltage": "V", "width": "s", "current": "A",
                            "conductance": "S"}

EVENT_DTYPE = np.dtype([
    ("seq", "<i8"),  # the engine's sequence number (1-based)
    ("time", "<f8"),
    ("kind", KIND_DTYPE),
    ("protocol", "<u2"),
    ("step", "<u2"),
    ("scheme", SCHEME_DTYPE),
    ("width", "<f8"),
    ("meas_start", "<i8"),  # first row in /measurements, or -1
    ("meas_count", "<i4"),
    ("mvm_start", "<i8"),  # first row in /mvm/*, or -1
    ("mvm_count", "<i4"),
    ("message_start", "<i8"),  # byte offset in /text, or -1
    ("message_len", "<i4"),
    ("data_start", "<i8"),  # JSON of Event.data in /text, or -1
    ("data_len", "<i4"),
])
EVENT_UNITS: Final = {"time": "s", "width": "s"}

LABEL_DTYPE = np.dtype([("start", "<i8"), ("length", "<i4")])

STOP_DTYPE = np.dtype([
    ("time", "<f8"),
    ("status", STATUS_DTYPE),
    ("n_events", "<i8"),
    ("reason_start", "<i8"),
    ("reason_len", "<i4"),
])
STOP_UNITS: Final = {"time": "s"}

MEASUREMENTS: Final = "measurements"
EVENTS: Final = "events"
LABELS: Final = "labels"
TEXT: Final = "text"
RUN: Final = "run"
STOP: Final = "run/stop"
MVM_INPUTS: Final = "mvm/inputs"
MVM_OUTPUTS: Final = "mvm/outputs"
MVM_COMPLIANCE: Final = "mvm/compliance"

EOD: Final = "eod"
EOD_DTYPE = np.dtype([
    ("flushes", "<i8"),
    ("file_size", "<i8"),  # bytes on disk right after the flush
    ("measurements", "<i8"),
    ("events", "<i8"),
    ("labels", "<i8"),
    ("text", "<i8"),
    ("mvm", "<i8"),
    ("stop", "<i8"),
])
TABLES: Final = (MEASUREMENTS, EVENTS, LABELS, TEXT, MVM_INPUTS, MVM_OUTPUTS, MVM_COMPLIANCE,
                 STOP)
"""Every growing table; /eod counts rows of each (the three MVM tables share one count)."""
EOD_FIELD: Final = {MEASUREMENTS: "measurements", EVENTS: "events", LABELS: "labels",
                    TEXT: "text", MVM_INPUTS: "mvm", MVM_OUTPUTS: "mvm", MVM_COMPLIANCE: "mvm",
                    STOP: "stop"}
DIGEST_ATTR: Final = "digest"
DIGESTED: Final = ("/", RUN, *TABLES, EOD)
"""Objects whose attributes `attrs_digest` covers."""

RUN_JSON_ATTRS: Final = ("config", "backend", "limits")
"""RunStart fields stored as JSON strings in /run attributes."""


def to_json(value: Any) -> str:
    """JSON of `value`, with numpy scalars and arrays turned into plain numbers and lists.

    Never fails on odd content: keys that are not strings become their ``str``, objects
    JSON does not know become their ``str``.
    """
    try:
        return json.dumps(value, default=_jsonable, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps(_plain(value), default=_jsonable, allow_nan=True,
                          separators=(",", ":"))


def _plain(obj: Any) -> Any:
    """`obj` with every mapping key turned into a string, recursively."""
    if isinstance(obj, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    return obj


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def attrs_digest(f: h5py.File) -> str:
    """SHA-256 (hex) of every attribute of the objects in `DIGESTED`, except the digest."""
    h = hashlib.sha256()
    for name in DIGESTED:
        if name not in f:
            h.update(f"{name}:absent;".encode())
            continue
        attrs = f[name].attrs
        for key in sorted(attrs.keys()):
            if name == "/" and key == DIGEST_ATTR:
                continue
            value = attrs[key]
            if isinstance(value, str):
                raw = b"s" + value.encode("utf-8", errors="surrogateescape")
            elif isinstance(value, bytes):
                raw = b"b" + value
            else:
                arr = np.asarray(value)
                raw = arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes()
            h.update(f"{name}/{key}:{len(raw)}:".encode())
            h.update(raw)
    return h.hexdigest()
