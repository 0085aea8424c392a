"""`verify`: is a log sound? Structure, checksums, row counts, run start/stop consistency.

A log is sound when HDF5 opens it, its attributes match their digest, every block of every
table is stored within the file and passes its fletcher32 checksum, the tables agree with the
end-of-data marker, and the tables agree with each other (every measurement row belongs to
its event, every reference points inside its table, codes are in range, the run stop counts
the events). A sound log whose writer holds it or was killed (no run stop) is reported as
unfinished.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.log import schema as sc
from xbarlab.log.errors import LogError, NoRunLogged, NotALog
from xbarlab.log.ownership import WRITER_HOST, WRITER_PID, WriterState, writer_state
from xbarlab.log.scan import TableScan, describe_loss, open_any, scan_file


@dataclass
class VerifyReport:
    """What `verify` found. `problems` empty: sound."""

    path: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "unknown"  # a run stop status (`RunStatus`), or unfinished
    writer: WriterState = "unknown"  # unfinished: its writer running, or gone (killed)
    recovered: bool = False
    no_run: bool = False  # nothing was ever logged: nothing to recover either
    not_a_log: bool = False  # a directory, an empty file, no HDF5 in it: nothing to recover

    @property
    def sound(self) -> bool:
        return not self.problems

    @property
    def finished(self) -> bool:
        return self.status in sc.STATUSES  # every status a run stop can carry

    @property
    def exit_code(self) -> int:
        """0 sound and complete (or a salvaged copy), 1 sound but unfinished, 2 damaged."""
        if self.problems:
            return 2
        return 0 if self.finished or self.recovered else 1


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every part of the log at `path`; never raises for a damaged file."""
    p = Path(path)
    report = VerifyReport(p)
    try:
        f, sb = open_any(p)
    except FileNotFoundError as exc:
        report.problems.append(str(exc).removeprefix(f"{p}: "))
        report.not_a_log = True
        return report
    except LogError as exc:
        report.problems.append(str(exc).removeprefix(f"{p}: "))
        report.no_run = isinstance(exc, NoRunLogged)
        report.not_a_log = isinstance(exc, NotALog)
        return report
    try:
        with f:
            if sb.truncated:
                report.problems.append(f"cut short: {sb.size} bytes of the {sb.eof} its "
                                       "writer recorded")
            _check(f, p, sb.size, report)
    except NoRunLogged as exc:
        report.problems.append(str(exc).removeprefix(f"{p}: "))
        report.no_run = True
    except Exception as exc:  # anything HDF5 raises on a damaged structure
        report.problems.append(f"unreadable structure: {str(exc).strip()[:160]}")
    return report


def _check(f: Any, p: Path, size: int, report: VerifyReport) -> None:
    attrs = f.attrs
    if attrs.get("schema") != sc.SCHEMA_NAME:
        report.problems.append(f"not an xbarlab log (schema attribute {attrs.get('schema')!r})")
        return
    version = int(attrs.get("schema_version", -1))
    if version < 2:
        report.notes.append(f"schema v{version}: no checksums or end-of-data marker to check")
    if sc.RUN not in f:
        raise NoRunLogged(f"{p}: no run was logged (its writer stopped before the run start)")
    report.recovered = "recovered_from" in attrs
    if version >= 2:
        stored = attrs.get(sc.DIGEST_ATTR)
        stored = stored.decode("ascii", "replace") if isinstance(stored, bytes) else stored
        if stored != sc.attrs_digest(f):
            report.problems.append("attributes (run start, units) do not match their digest")
    run = f[sc.RUN].attrs
    for key in sc.RUN_JSON_ATTRS:
        try:
            json.loads(run[key])
        except Exception:
            report.problems.append(f"run start attribute {key!r} is not valid JSON")
    try:
        shape = tuple(int(x) for x in run["shape"])
        start_time = float(run["start_time"])
    except Exception:
        report.problems.append("run start attributes shape / start_time unreadable")
        return
    scans, eod, notes = scan_file(f, p)
    report.problems.extend(notes)
    if version >= 2 and eod is not None:
        if size < eod["file_size"] and not any("cut short" in x for x in report.problems):
            report.problems.append(f"cut short: {size} bytes, {eod['file_size']} at the "
                                   "writer's last flush")
        for name, scan in scans.items():
            have = int(f[name].shape[0])
            if have > scan.claimed and eod["stop"] > 0:
                report.problems.append(f"/{name} has {have} rows, the end-of-data marker "
                                       f"says {scan.claimed}")
            elif have > scan.claimed:
                report.notes.append(f"/{name}: {have - scan.claimed} rows past the last "
                                    "complete flush (not counted)")
    for scan in scans.values():
        report.problems.extend(describe_loss(scan))
    if len(scans) < len(sc.TABLES):
        return
    report.counts = {"measurements": scans[sc.MEASUREMENTS].claimed,
                     "events": scans[sc.EVENTS].claimed, "mvm": scans[sc.MVM_INPUTS].claimed}
    if any(s.lost for s in scans.values()):
        return  # the cross-checks below need every row
    _cross_check(scans, shape, start_time, report)
    if report.status == "unfinished" and not report.recovered:
        host, pid = attrs.get(WRITER_HOST), attrs.get(WRITER_PID)
        report.writer = writer_state(p, host)
        if report.writer == "running":
            report.notes.insert(0, f"its writer is running (pid {pid})")
        elif report.writer == "gone":
            report.notes.insert(0, f"its writer (pid {pid}) is gone without a run stop: "
                                   "killed or crashed; `xbarlab log recover` makes a finished "
                                   "copy")


def _cross_check(scans: dict[str, TableScan], shape: tuple[int, ...], start_time: float,
                 report: VerifyReport) -> None:
    bad = report.problems.append
    m = scans[sc.MEASUREMENTS].data
    e = scans[sc.EVENTS].data
    labels = scans[sc.LABELS].data
    n_text = scans[sc.TEXT].claimed
    n_mvm = min(scans[name].claimed for name in (sc.MVM_INPUTS, sc.MVM_OUTPUTS,
                                                 sc.MVM_COMPLIANCE))
    if len({scans[name].claimed for name in (sc.MVM_INPUTS, sc.MVM_OUTPUTS,
                                             sc.MVM_COMPLIANCE)}) > 1:
        bad("the three /mvm tables differ in length")
    n_labels = len(labels)
    if n_labels and ((labels["start"] < 0) | (labels["length"] < 0)
                     | (labels["start"] + labels["length"] > n_text)).any():
        bad("a label points outside /text")
    for table, rows in (("measurements", m), ("events", e)):
        if not len(rows):
            continue
        if int(rows["kind"].max()) >= len(sc.KINDS) or int(rows["scheme"].max()) >= len(
                sc.SCHEMES):
            bad(f"/{table} holds an unknown kind or scheme code")
        if int(rows["protocol"].max()) >= n_labels or int(rows["step"].max()) >= n_labels:
            bad(f"/{table} refers to a label that does not exist")
        if not np.isfinite(rows["time"]).all():
            bad(f"/{table} holds a time that is not a number")
    m_rows, m_cols = (int(shape[0]), int(shape[1])) if len(shape) == 2 else (0, 0)
    if len(m) and ((m["row"] < 0) | (m["row"] >= m_rows) | (m["col"] < 0)
                   | (m["col"] >= m_cols)).any():
        bad(f"/measurements holds a cell outside the {m_rows} x {m_cols} array")
    if len(e) and (np.diff(e["seq"]) <= 0).any():
        bad("/events sequence numbers do not increase")
    # every measurement row belongs to exactly the event that claims it, in order
    owner = np.full(len(m), -2, dtype=np.int64)
    for idx in np.flatnonzero(e["meas_count"] > 0) if len(e) else []:
        s, k = int(e["meas_start"][idx]), int(e["meas_count"][idx])
        if s < 0 or s + k > len(m) or (owner[s:s + k] != -2).any():
            bad(f"event {idx} claims measurement rows {s}-{s + k - 1}, which do not fit")
            return
        owner[s:s + k] = idx
    lost_event = (m["event"] == sc.NO_INDEX) & report.recovered  # salvaged without its event
    tail = (owner == -2) & ~lost_event
    if tail.any():
        first = int(np.argmax(tail))
        orphans = m["event"][first:]
        if tail[first:].all() and (orphans == len(e)).all():
            report.notes.append(f"{len(orphans)} cells of an operation interrupted by the "
                                "writer's end (no event row)")
            owner[first:] = len(e)
        else:
            bad(f"{int(tail.sum())} measurement rows belong to no event")
    if len(m) and ((m["event"] != owner) & ~lost_event).any():
        bad("measurement rows name another event than the one that claims them")
    refs: tuple[tuple[str, str, str, int], ...] = (
        ("MVM rows", "mvm_start", "mvm_count", n_mvm),
                                      ("message", "message_start", "message_len", n_text),
                                      ("data", "data_start", "data_len", n_text))
    for what, start_col, count_col, limit in refs:
        if not len(e):
            continue
        st, ln = e[start_col], e[count_col]
        used = st >= 0
        if ((st[used] + ln[used]) > limit).any() or (ln[used] < 0).any():
            bad(f"an event's {what} point outside their table")
    stop = scans[sc.STOP].data
    if len(stop):
        row = stop[0]
        if not 0 <= int(row["status"]) < len(sc.STATUSES):
            bad(f"run stop status code {int(row['status'])} is unknown")
            return
        report.status = sc.STATUSES[int(row["status"])]
        if int(row["n_events"]) != len(e):
            bad(f"the run stop counts {int(row['n_events'])} events, /events holds {len(e)}")
        if not float(row["time"]) >= start_time:
            bad("the run stopped before it started")
        if report.notes and any("interrupted by the writer" in n for n in report.notes):
            bad("measurement rows without an event in a run that stopped")
    else:
        report.status = "unfinished"
    report.notes.append(f"{len(m)} measurement rows, {len(e)} events, {n_mvm} MVM rows")
