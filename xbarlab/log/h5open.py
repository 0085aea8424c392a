"""Opening a log without ever hanging inside HDF5.

- The superblock is read and checked first, without HDF5 (`xbarlab.log.superblock`): a file
  that is not HDF5, cut short, or damaged at its start is refused in microseconds.
- A finished log (no writer holds it: consistency flags clear) is opened in plain read mode,
  where HDF5 checks the end of file and reads metadata once (a bad checksum fails at once).
- A live log, or one whose writer was killed, is opened in SWMR read mode with a bounded
  number of metadata read attempts: SWMR readers retry a metadata block whose checksum does
  not match (a writer may be rewriting it) with a doubling sleep, which on a damaged file
  means waiting for hours. HDF5's ``H5Pset_metadata_read_attempts`` bounds that (h5py does not
  wrap it; it is called on the library h5py loaded). Where that library cannot be found, the
  file is first probed in a child process with a deadline.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from xbarlab.log.errors import LogDamaged, LogError, NoRunLogged, NotALog
from xbarlab.log.superblock import (
    FLAG_SWMR_WRITE,
    NoHdf5Signature,
    NotHdf5Error,
    Superblock,
    read_superblock,
)

READ_ATTEMPTS: Final = 16
"""SWMR metadata read attempts: the sleeps between them double from 1 ns, so 16 attempts
wait well under a millisecond in total (HDF5's default, 100, can wait for hours)."""
PROBE_TIMEOUT: Final = 20.0


@functools.cache
def _hdf5_library() -> Any | None:
    """The HDF5 shared library h5py uses (already loaded), or None if it cannot be found."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        name = os.path.basename(path)
        if name.startswith("libhdf5") and not name.startswith("libhdf5_"):
            try:
                lib = ctypes.CDLL(path)
                fn = lib.H5Pset_metadata_read_attempts
            except (OSError, AttributeError):
                continue
            fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            return lib
    return None


def open_swmr(path: Path) -> h5py.File:
    """`path` in SWMR read mode with bounded metadata read attempts."""
    lib = _hdf5_library()
    if lib is None:
        from xbarlab.log.recovery import probe

        result = probe(path, PROBE_TIMEOUT)
        if result.hung or not result.readable:
            raise LogDamaged(f"{path}: {result.error or 'unreadable'}")
        return h5py.File(path, "r", swmr=True)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if lib.H5Pset_metadata_read_attempts(fapl.id, READ_ATTEMPTS) < 0:
        raise LogError(f"{path}: cannot bound the SWMR metadata read attempts")
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ,
                        fapl=fapl)
    return h5py.File(fid)


def check_superblock(path: Path) -> Superblock:
    """The superblock of `path`; `LogError` / `LogDamaged` / `NoRunLogged` with one line."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such log file")
    if path.is_dir():
        raise NotALog(f"{path}: a directory, not a log file")
    try:
        sb = read_superblock(path)
    except NotHdf5Error as exc:
        kind = NotALog if isinstance(exc, NoHdf5Signature) else LogDamaged
        raise kind(f"{path}: {exc}") from None
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror or exc}") from None
    if sb.writer_open and not sb.flags & FLAG_SWMR_WRITE:
        raise NoRunLogged(
            f"{path}: no run was logged ({sb.size} bytes): its writer stopped before the run "
            "start, or is still starting; nothing was measured into it")
    return sb


def open_checked(path: Path) -> tuple[h5py.File, Superblock]:
    """Open `path` for reading, plain or SWMR as its superblock says; refuse cut-short files."""
    try:
        sb = check_superblock(path)
    except LogDamaged as exc:  # a damaged superblock: `recover` rebuilds it
        raise LogDamaged(f"{exc}; `xbarlab log recover {path}` salvages what is intact"
                         ) from None
    if sb.truncated:
        raise LogDamaged(truncation_message(path, sb))
    try:
        f = open_swmr(path) if sb.writer_open else h5py.File(path, "r")
    except LogError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise LogDamaged(f"{path}: damaged, HDF5 cannot open it ({_short(exc)}); "
                         f"`xbarlab log recover {path}` salvages what is intact") from None
    return f, sb


def _short(exc: BaseException) -> str:
    text = str(exc).strip().strip("'\"")
    return text.replace("Unable to synchronously open file ", "").replace(
        "Unable to synchronously open object ", "") or type(exc).__name__


def truncation_message(path: Path, sb: Superblock) -> str:
    """One line for a file shorter than its recorded end: what is intact, how to salvage it."""
    intact = ""
    try:
        with open_swmr(path) as f:
            counts = intact_counts(f, sb.size)
        intact = "; intact: " + ", ".join(f"{n} of {total} {name}" for name, (n, total)
                                          in counts.items() if total)
    except Exception:  # the tables' metadata is past the cut too
        intact = "; the tables' metadata is lost with the cut"
    return (f"{path} is cut short: {sb.size} bytes of the {sb.eof} its writer recorded"
            f"{intact}; `xbarlab log recover {path}` salvages every intact block")


def intact_rows(ds: h5py.Dataset, size: int, limit: int | None = None) -> int:
    """Rows of `ds` before its first block that is missing or ends past byte `size` (each
    block looked up in the chunk index on its own)."""
    rows = int(ds.shape[0]) if limit is None else min(int(ds.shape[0]), limit)
    step = int((ds.chunks or (max(rows, 1),))[0])
    tail = (0,) * (len(ds.shape) - 1)
    for a in range(0, rows, step):
        try:
            info = ds.id.get_chunk_info_by_coord((a, *tail))
        except Exception:
            return a
        if info.byte_offset is None or not info.size or info.byte_offset + info.size > size:
            return a
    return rows


def intact_counts(f: h5py.File, size: int) -> dict[str, tuple[int, int]]:
    """Per table, (rows before the first chunk past byte `size` that the end-of-data marker
    confirms, rows the table claims): what `recover` salvages, not more."""
    from xbarlab.log import schema as sc

    try:
        eod = eod_row(f)
    except Exception:  # unreadable: the rows alone
        eod = None
    out: dict[str, tuple[int, int]] = {}
    for name, label in ((sc.MEASUREMENTS, "measurement rows"), (sc.EVENTS, "events"),
                        (sc.MVM_INPUTS, "MVM rows")):
        if name in f:
            ds = f[name]
            intact = intact_rows(ds, size)
            if eod is not None:
                intact = min(intact, eod[sc.EOD_FIELD[name]])
            out[label] = (intact, int(ds.shape[0]))
    return out


def eod_row(f: h5py.File) -> dict[str, int] | None:
    """The end-of-data marker as a dict, or None in a schema v1 log (or before the run start)."""
    from xbarlab.log import schema as sc

    if sc.EOD not in f:
        return None
    ds = f[sc.EOD]
    ds.refresh() if f.swmr_mode else None
    row: np.ndarray[Any, Any] = ds[0]
    return {name: int(row[name]) for name in sc.EOD_DTYPE.names or ()}
