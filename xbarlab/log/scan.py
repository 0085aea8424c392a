"""Reading a possibly damaged log block by block: what is intact, what is lost and why.

Shared by `xbarlab.log.verify` and `xbarlab.log.salvage`. Each table is read one chunk (one
block of rows) at a time, so that a damaged block costs only its own rows: a block is lost when
it was never stored, when it lies past the end of a cut-short file (HDF5 would read zeros
there, which fletcher32 cannot tell from data), or when its checksum does not match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xbarlab.log import schema as sc
from xbarlab.log.errors import LogDamaged, LogError
from xbarlab.log.h5open import check_superblock, eod_row, open_swmr
from xbarlab.log.superblock import Superblock


@dataclass
class TableScan:
    """One table read block by block: every row up to `claimed`, and which are intact."""

    name: str
    claimed: int  # rows the file claims (end-of-data marker, else the dataset's length)
    data: np.ndarray[Any, Any]  # (claimed, ...) rows; lost rows hold zeros
    ok: np.ndarray[Any, np.dtype[np.bool_]]  # (claimed,) intact rows
    lost: list[tuple[int, int, str]] = field(default_factory=list)  # [start, stop), why

    @property
    def intact(self) -> int:
        return int(self.ok.sum())


def open_any(path: Path) -> tuple[h5py.File, Superblock]:
    """Open a suspect log however HDF5 still can (plain, else SWMR with bounded retries)."""
    sb = check_superblock(path)
    errors = []
    modes = ("swmr",) if sb.writer_open or sb.truncated else ("plain", "swmr")
    for mode in modes:
        try:
            return (h5py.File(path, "r") if mode == "plain" else open_swmr(path)), sb
        except LogError:
            raise
        except Exception as exc:  # HDF5 raises OSError, KeyError, RuntimeError ...
            errors.append(str(exc).strip("'\"").replace("Unable to synchronously ", ""))
    raise LogDamaged(f"{path}: HDF5 cannot open it ({errors[-1]}): the file's own structure "
                     "(its root group or object headers) is damaged")


def marker(f: h5py.File) -> tuple[dict[str, int] | None, str]:
    """The end-of-data marker, or None and why it is unusable."""
    try:
        return eod_row(f), ""
    except Exception as exc:
        return None, f"end-of-data marker unreadable ({str(exc).strip()[:80]})"


def scan_table(ds: h5py.Dataset, claimed: int, size: int) -> TableScan:
    """Read `claimed` rows of `ds` block by block; see the module docstring for 'lost'."""
    name = ds.name.lstrip("/")
    data = np.zeros((claimed, *ds.shape[1:]), dtype=ds.dtype)
    ok = np.zeros(claimed, dtype=bool)
    scan = TableScan(name, claimed, data, ok)
    if claimed == 0:
        return scan
    have = int(ds.shape[0])
    step = int((ds.chunks or (max(have, 1),))[0])
    tail = (0,) * (len(ds.shape) - 1)
    for a in range(0, claimed, step):
        b = min(a + step, claimed)
        why = ""
        try:  # where the block is, asked of the chunk index for this block alone
            info = ds.id.get_chunk_info_by_coord((a, *tail)) if b <= have else None
        except Exception:
            info, why = None, "block index unreadable (cut short or damaged)"
        if why:
            pass
        elif info is None or info.byte_offset is None or not info.size:
            why = "never written (the writer stopped first)"
        elif info.byte_offset + info.size > size:
            why = "past the end of the file (cut short)"
        else:
            try:
                data[a:b] = ds[a:b]
                ok[a:b] = True
            except Exception as exc:
                text = str(exc).lower()
                why = ("checksum mismatch" if "checksum" in text or "filter" in text
                       else f"unreadable ({str(exc).strip()[:60]})")
        if why:
            if scan.lost and scan.lost[-1][1] == a and scan.lost[-1][2] == why:
                scan.lost[-1] = (scan.lost[-1][0], b, why)
            else:
                scan.lost.append((a, b, why))
    return scan


def scan_file(f: h5py.File, path: Path) -> tuple[dict[str, TableScan], dict[str, int] | None,
                                                  list[str]]:
    """Every table of a v2 log, read block by block up to what its marker claims."""
    eod, why = marker(f)
    notes = [why] if why else []
    size = os.stat(path).st_size
    scans = {}
    for name in sc.TABLES:
        if name not in f:
            notes.append(f"/{name} is missing")
            continue
        ds = f[name]
        claimed = int(ds.shape[0]) if eod is None else eod[sc.EOD_FIELD[name]]
        scans[name] = scan_table(ds, claimed, size)
    return scans, eod, notes


def describe_loss(scan: TableScan, unit: str = "rows") -> list[str]:
    """Lines like '/measurements rows 1024-2047: checksum mismatch'."""
    return [f"/{scan.name} {unit} {a}-{b - 1}: {why}" for a, b, why in scan.lost]
