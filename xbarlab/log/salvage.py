"""`salvage`: copy every intact block of a damaged or cut-short log into a new, sound log.

Each table is read block by block (`xbarlab.log.scan`); lost blocks are dropped and the
references between tables are renumbered: an event keeps the measurement rows and MVM rows
that survived (its counts shrink if some were lost), a measurement whose event row was lost
names event -1, a message whose bytes were lost is dropped, a lost label reads "(lost)".
Cells streamed by an operation the writer's end interrupted (no event row) get an event of
their own, marked as interrupted. The run stop is kept only when no event was lost. The new
file records what was lost (root attributes ``recovered_from`` and ``recovery``) and is
written with checksums, marker and digest like any log.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xbarlab.log import schema as sc
from xbarlab.log.errors import LogCreateFailed, LogDamaged, LogError
from xbarlab.log.ownership import WRITER_HOST, WRITER_PID, claim_log
from xbarlab.log.scan import TableScan, describe_loss, open_any, scan_file
from xbarlab.log.superblock import SIGNATURE, lookup3

LOST_LABEL = "(lost)"


@dataclass
class SalvageReport:
    """What was kept and what was lost."""

    source: Path
    out: Path
    kept: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (kept, claimed)
    lost: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        kept = ", ".join(f"{k} of {n} {name}" for name, (k, n) in self.kept.items())
        out = [f"salvaged {self.source} into {self.out}: {kept}"]
        out += [f"lost: {line}" for line in self.lost] or ["lost: nothing"]
        out += [f"note: {line}" for line in self.notes]
        return out


def salvage(source: str | os.PathLike[str], out: str | os.PathLike[str], *,
            overwrite: bool = False) -> SalvageReport:
    """Write every intact block of `source` into the new log `out` (which must not exist
    unless `overwrite`; it is replaced only once the new log is whole, and never while another
    session writes it: `LogInUse`).

    Raises `LogDamaged` / `NoRunLogged` (one line) when nothing can be salvaged.
    """
    src, dst = Path(source), Path(out)
    owner = claim_log(dst)
    try:
        if dst.exists() and not overwrite:
            raise FileExistsError(f"{dst} exists; choose another --out or pass --overwrite")
        return _salvage(src, dst)
    except (LogError, FileNotFoundError, FileExistsError):
        raise
    except Exception as exc:  # whatever HDF5 raises on a structure damaged beyond repair
        text = str(exc).strip().replace("Unable to synchronously ", "")[:160]
        raise LogDamaged(f"{src}: cannot salvage it, its structure is damaged ({text})"
                         ) from None
    finally:
        owner.release()


def _salvage(src: Path, dst: Path) -> SalvageReport:
    report = SalvageReport(src, dst)
    try:
        f, sb = open_any(src)
    except LogDamaged as exc:
        if "superblock damaged" not in str(exc):
            raise
        patched = _rebuilt_superblock(src)
        report.notes.append("superblock damaged: rebuilt (root at byte 48, end at the file's "
                            "size) to reach the rest of the file")
        try:
            f, sb = open_any(patched)
        except LogDamaged:
            raise LogDamaged(f"{src}: superblock damaged and the file cannot be opened even "
                             "with a rebuilt one: nothing can be salvaged") from None
        finally:
            patched.unlink(missing_ok=True)
    with f:
        if sc.RUN not in f or sc.EVENTS not in f:
            raise LogDamaged(f"{src}: no run start is readable in it: nothing to salvage")
        root_attrs, run_attrs, digest_ok = _attributes(f, report)
        if not digest_ok:
            report.notes.append("the run's attributes did not match their digest: they are "
                                "copied as found, treat the run metadata with care")
        if sb.truncated:
            report.notes.append(f"cut short: {sb.size} bytes of the {sb.eof} recorded")
        scans, _, notes = scan_file(f, src)
        report.notes.extend(notes)
        if len(scans) < len(sc.TABLES):
            raise LogDamaged(f"{src}: tables missing ({'; '.join(notes)}): nothing to salvage")
        mvm_shapes = {name: f[name].shape[1:] for name in (sc.MVM_INPUTS, sc.MVM_OUTPUTS,
                                                           sc.MVM_COMPLIANCE)}
    for scan in scans.values():
        report.lost.extend(describe_loss(scan, "bytes" if scan.name == sc.TEXT else "rows"))
    tables = _renumber(scans, report)
    if "shape" not in run_attrs:  # lost: the smallest array that holds every cell and MVM
        m = tables[sc.MEASUREMENTS]
        rows = max(int(m["row"].max()) + 1 if len(m) else 1, mvm_shapes[sc.MVM_INPUTS][0])
        cols = max(int(m["col"].max()) + 1 if len(m) else 1, mvm_shapes[sc.MVM_OUTPUTS][0])
        run_attrs["shape"] = np.array([rows, cols], dtype=np.int64)
        report.notes.append(f"array shape lost: set to {rows} x {cols} from the cells seen")
    for key in (WRITER_HOST, WRITER_PID):  # the copy's writer is this salvage, finished
        root_attrs.pop(key, None)
    root_attrs["recovered_from"] = str(src)
    root_attrs["recovery"] = json.dumps({"lost": report.lost, "notes": report.notes})
    _write(dst, root_attrs, run_attrs, tables, mvm_shapes)
    return report


def _rebuilt_superblock(src: Path) -> Path:
    """A copy of `src` with a fresh version 3 superblock (the usual xbarlab layout)."""
    import struct

    tmp = src.with_name(f".{src.name}.superblock-{os.getpid()}.h5")
    data = bytearray(src.read_bytes())
    head = SIGNATURE + bytes([3, 8, 8, 0]) + struct.pack("<4Q", 0, (1 << 64) - 1, len(data), 48)
    data[:48] = head + struct.pack("<I", lookup3(head))
    tmp.write_bytes(bytes(data))
    return tmp


def _attributes(f: h5py.File, report: SalvageReport
                ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Root and /run attributes, each read on its own: an unreadable one is reported lost."""
    try:
        stored = f.attrs.get(sc.DIGEST_ATTR)
        stored = stored.decode("ascii", "replace") if isinstance(stored, bytes) else stored
        ok = stored is None or stored == sc.attrs_digest(f)
    except Exception:
        ok = False
    out: list[dict[str, Any]] = []
    for where, attrs in (("/", f.attrs), ("/run", f[sc.RUN].attrs)):
        found: dict[str, Any] = {}
        for key in list(attrs.keys()):
            if key == sc.DIGEST_ATTR:
                continue
            try:
                found[key] = attrs[key]
            except Exception:
                report.lost.append(f"attribute {where} {key} (unreadable)")
        out.append(found)
    root, run = out
    root["schema"], root["schema_version"] = sc.SCHEMA_NAME, sc.SCHEMA_VERSION
    for key in sc.RUN_JSON_ATTRS:
        try:
            json.loads(run[key])
        except Exception:
            if key in run:
                report.lost.append(f"attribute /run {key} (not valid JSON)")
            run[key] = "{}"
    for key, default in (("run_id", "unknown"), ("protocol", "unknown"), ("version", "unknown"),
                         ("start_time", float("nan"))):
        run.setdefault(key, default)
    return root, run, ok


def _new_index(ok: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Old row -> new row after dropping the lost rows (-1 for a lost row)."""
    return np.where(ok, np.cumsum(ok) - 1, -1)


def _renumber(scans: dict[str, TableScan],
              report: SalvageReport) -> dict[str, np.ndarray[Any, Any]]:
    m_s, e_s, t_s, l_s = (scans[n] for n in (sc.MEASUREMENTS, sc.EVENTS, sc.TEXT, sc.LABELS))
    mvm_ok = scans[sc.MVM_INPUTS].ok.copy()
    n_mvm = min(len(scans[n].ok) for n in (sc.MVM_INPUTS, sc.MVM_OUTPUTS, sc.MVM_COMPLIANCE))
    mvm_ok = mvm_ok[:n_mvm] & scans[sc.MVM_OUTPUTS].ok[:n_mvm] & scans[
        sc.MVM_COMPLIANCE].ok[:n_mvm]
    text_map, text_ok = _new_index(t_s.ok), t_s.ok
    text = t_s.data[t_s.ok]

    def text_ref(start: np.ndarray[Any, Any], length: np.ndarray[Any, Any]
                 ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        new_s, new_n = np.full(len(start), sc.NO_INDEX, np.int64), np.zeros(len(start), np.int32)
        for i, (s, n) in enumerate(zip(start.tolist(), length.tolist(), strict=True)):
            if s >= 0 and n >= 0 and s + n <= len(text_ok) and text_ok[s:s + n].all():
                new_s[i], new_n[i] = (text_map[s] if n else 0), n
        return new_s, new_n

    labels = l_s.data[l_s.ok].copy()
    labels["start"], labels["length"] = text_ref(labels["start"], labels["length"])
    lost_label = len(labels)
    label_map = np.where(l_s.ok, np.cumsum(l_s.ok) - 1, lost_label)
    if (labels["start"] < 0).any() or not l_s.ok.all():
        lost = labels["start"] < 0
        labels["start"][lost], labels["length"][lost] = len(text), len(LOST_LABEL)
        text = np.concatenate([text, np.frombuffer(LOST_LABEL.encode(), np.uint8)])
        labels = np.concatenate([labels, np.array([(len(text) - len(LOST_LABEL),
                                                    len(LOST_LABEL))], dtype=sc.LABEL_DTYPE)])

    def relabel(codes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        c = codes.astype(np.int64)
        inside = c < len(label_map)
        return np.where(inside, label_map[np.minimum(c, len(label_map) - 1)],
                        lost_label).astype(np.uint16)

    meas_map, mvm_map, ev_map = _new_index(m_s.ok), _new_index(mvm_ok), _new_index(e_s.ok)
    events = e_s.data[e_s.ok].copy()
    for start, count, mapping, ok in (("meas_start", "meas_count", meas_map, m_s.ok),
                                      ("mvm_start", "mvm_count", mvm_map, mvm_ok)):
        s_old, k_old = events[start].copy(), events[count].copy()
        for i, (s, k) in enumerate(zip(s_old.tolist(), k_old.tolist(), strict=True)):
            if s < 0 or k <= 0:
                continue
            keep = ok[s:s + k]
            kept = int(keep.sum())
            events[count][i] = kept
            events[start][i] = mapping[s + int(np.argmax(keep))] if kept else sc.NO_INDEX
            if kept < k:
                report.notes.append(f"event seq {int(events['seq'][i])} keeps {kept} of its {k} "
                                    f"{'measurement' if start == 'meas_start' else 'MVM'} rows")
    for start, length in (("message_start", "message_len"), ("data_start", "data_len")):
        events[start], events[length] = text_ref(events[start], events[length])
    events["protocol"], events["step"] = relabel(events["protocol"]), relabel(events["step"])

    meas = m_s.data[m_s.ok].copy()
    old_event = meas["event"].astype(np.int64)
    n_old_events = e_s.claimed
    orphans = old_event >= n_old_events  # an operation the writer's end interrupted
    inside = (old_event >= 0) & ~orphans
    new_event = np.full(len(meas), sc.NO_INDEX, np.int64)
    new_event[inside] = ev_map[old_event[inside]]
    meas["protocol"], meas["step"] = relabel(meas["protocol"]), relabel(meas["step"])
    if orphans.any():
        rows = np.flatnonzero(orphans)
        first = meas[rows[0]]
        message = (f"interrupted: the writer stopped during this operation; "
                   f"{len(rows)} cells salvaged").encode()
        msg_start = len(text)
        text = np.concatenate([text, np.frombuffer(message, np.uint8)])
        last_seq = int(events["seq"][-1]) if len(events) else 0
        extra = np.zeros(1, dtype=sc.EVENT_DTYPE)
        extra[0] = (last_seq + 1, float(meas["time"][rows[-1]]), first["kind"], first["protocol"],
                    first["step"], first["scheme"], first["width"], int(rows[0]), len(rows),
                    sc.NO_INDEX, 0, msg_start, len(message), sc.NO_INDEX, 0)
        new_event[rows] = len(events)
        events = np.concatenate([events, extra])
        report.notes.append(f"{len(rows)} cells of an operation interrupted by the writer's "
                            "end: given an event of their own")
    lost_events = (new_event == sc.NO_INDEX) & (old_event >= 0)
    if lost_events.any():
        report.notes.append(f"{int(lost_events.sum())} measurement rows lost their event row "
                            "(event -1)")
    meas["event"] = new_event
    stop = scans[sc.STOP].data[scans[sc.STOP].ok]
    if len(stop) and not e_s.ok.all():
        report.lost.append("the run stop (its event count no longer matches)")
        stop = stop[:0]
    elif len(stop) and orphans.any():
        stop = stop[:0]
    elif len(stop):
        stop = stop.copy()
        stop["reason_start"], stop["reason_len"] = text_ref(stop["reason_start"],
                                                            stop["reason_len"])
    if not len(stop) and not any("run stop" in line for line in report.lost):
        report.notes.append("no run stop: the run did not end normally (killed writer)")
    report.kept = {"measurement rows": (len(meas), m_s.claimed),
                   "events": (int(e_s.ok.sum()), e_s.claimed),
                   "MVM rows": (int(mvm_ok.sum()), n_mvm),
                   "text bytes": (int(t_s.ok.sum()), t_s.claimed)}
    mvm = {name: scans[name].data[:n_mvm][mvm_ok] for name in (sc.MVM_INPUTS, sc.MVM_OUTPUTS,
                                                              sc.MVM_COMPLIANCE)}
    return {sc.MEASUREMENTS: meas, sc.EVENTS: events, sc.LABELS: labels, sc.TEXT: text,
            sc.STOP: stop, **mvm}


def _write(path: Path, root: dict[str, Any], run: dict[str, Any],
           tables: dict[str, np.ndarray[Any, Any]], mvm_shapes: dict[str, tuple[int, ...]]) -> None:
    """A plain (non-SWMR) v2 log holding `tables`; removed again if writing fails."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        try:
            created = h5py.File(tmp, "w", libver=sc.LIBVER)
        except OSError as exc:  # a folder not writable: the output path, not the damage
            why = os.strerror(exc.errno) if exc.errno else str(exc).split(" (")[0]
            raise LogCreateFailed(f"cannot create the log {path}: {why}") from None
        with created as f:
            for key, value in root.items():
                f.attrs[key] = value
            f.attrs["schema_version"] = sc.SCHEMA_VERSION
            f.attrs["salvaged"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            grp = f.create_group(sc.RUN)
            for key, value in run.items():
                grp.attrs[key] = value
            for name, rows in tables.items():
                tail = mvm_shapes.get(name, ())
                data = rows.reshape(-1, *tail) if tail else rows
                chunk = (max(1, min(1024, len(data))), *tail) if tail else (
                    max(1, min(16384 if name == sc.TEXT else 1024, len(data))),)
                ds = f.create_dataset(name, data=data, maxshape=(None, *tail), chunks=chunk,
                                      fletcher32=True)
                if name == sc.TEXT:
                    ds.attrs["encoding"] = "utf-8"
                else:
                    ds.attrs["units"] = {sc.MVM_INPUTS: "V", sc.MVM_OUTPUTS: "A"}.get(
                        name, sc.to_json({sc.MEASUREMENTS: sc.MEASUREMENT_UNITS,
                                          sc.EVENTS: sc.EVENT_UNITS, sc.STOP: sc.STOP_UNITS}.get(
                                              name, {})))
                if name == sc.MVM_COMPLIANCE:
                    del ds.attrs["units"]
            eod = f.create_dataset(sc.EOD, shape=(1,), dtype=sc.EOD_DTYPE, chunks=(1,),
                                   fletcher32=True)
            f.attrs[sc.DIGEST_ATTR] = np.bytes_(sc.attrs_digest(f))
            f.flush()
            eod[0] = (1, 0, len(tables[sc.MEASUREMENTS]), len(tables[sc.EVENTS]),
                      len(tables[sc.LABELS]), len(tables[sc.TEXT]), len(tables[sc.MVM_INPUTS]),
                      len(tables[sc.STOP]))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
