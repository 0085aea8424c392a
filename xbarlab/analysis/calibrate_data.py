"""What a calibration takes from xbarlab logs: pulses with the reads around them, read pairs.

From each log's measurements (`xbarlab.log.reader.LogReader.measurements`), per cell in time
order:

- a pulse *step*: a pulse with a read of the same cell right before it and right after it,
  and no other pulse anywhere on the array in between (so no half-select disturb mixes in);
- a read *pair*: two consecutive reads of the same cell with no pulse anywhere and no wait
  in between (read-to-read differences measure the read noise; drift over a wait is not
  noise);
- a per-cell summary (pulses, total conductance change) for the stuck-device count;
- the reads and pulses themselves (`LogData.frame`, with the device clock of each row in
  ``clock``: the last `Wait` the run reported, for retention) for the relations that need
  more than steps (I-V nonlinearity, saturation levels, drift).

Bad inputs raise `CalibrationInputError` with one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbarlab.log.errors import LogError
from xbarlab.log.reader import LogReader

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class CalibrationInputError(ValueError):
    """A log a calibration cannot use (one line, naming the file)."""


@dataclass(frozen=True)
class Estimate:
    """One fitted parameter: value, standard error, points it rests on."""

    name: str  # dotted preset field, e.g. "set.a" (top-level fields bare: "r_on")
    value: float
    stderr: float
    n: int
    unit: str
    method: str


@dataclass(frozen=True)
class LogData:
    """The measurements of one log a calibration uses; `device` ids are unique across logs."""

    path: Path
    run_id: str
    shape: tuple[int, int]
    v_read: float  # V
    # pulse steps
    device: np.ndarray[Any, np.dtype[np.int64]]
    v: FloatArray  # V, signed (> 0 SET)
    width: FloatArray  # s
    g0: FloatArray  # S, read before
    g1: FloatArray  # S, read after
    # read pairs (read-to-read differences)
    ga: FloatArray
    gb: FloatArray
    # per cell: pulses applied, largest |V|, first and last read
    cell_pulses: np.ndarray[Any, np.dtype[np.int64]]
    cell_g_first: FloatArray
    cell_g_last: FloatArray
    cell_g_range: FloatArray  # (max - min) / median of the cell's reads
    cell_at_cap: np.ndarray[Any, np.dtype[np.bool_]]  # pulsed within 50 mV of the log's largest
    # amplitude of either polarity
    frame: pd.DataFrame | None = None  # reads and pulses in order (see module docstring)


def _device_clock(m: pd.DataFrame, events: pd.DataFrame) -> FloatArray:
    """Device clock (s) at each measurement: that of the last reported wait before it (0
    before the first; a bench's waits report its clock too)."""
    waits = events[(events["kind"].astype(str) == "checkpoint")
                   & (events["message"].astype(str) == "wait")]
    clock = np.zeros(len(m))
    if len(waits):
        seq_w = waits["seq"].to_numpy(np.int64)
        val = np.array([float(d.get("clock", np.nan)) if isinstance(d, dict) else np.nan
                        for d in waits["data"]])
        order = np.argsort(seq_w)
        seq_w, val = seq_w[order], val[order]
        idx = np.searchsorted(seq_w, m["seq"].to_numpy(np.int64), side="right") - 1
        clock = np.where(idx >= 0, val[np.clip(idx, 0, None)], 0.0)
    return np.asarray(clock, dtype=np.float64)


def _open(path: Path) -> tuple[str, tuple[int, int], float, pd.DataFrame]:
    if not path.is_file():
        raise CalibrationInputError(f"{path}: " + ("not a log file" if path.exists()
                                                   else "no such file"))
    try:
        with LogReader(path) as reader:
            if not reader.started:
                raise CalibrationInputError(f"{path}: the log holds no run")
            info = reader.info
            m = reader.measurements()
            m["clock"] = _device_clock(m, reader.events())
    except CalibrationInputError:
        raise
    except LogError as exc:
        raise CalibrationInputError(str(exc).splitlines()[0]) from None
    except OSError as exc:  # not HDF5 at all
        raise CalibrationInputError(f"{path}: not an xbarlab log ({exc})") from None
    except (KeyError, ValueError, TypeError) as exc:  # an HDF5 file of another layout
        raise CalibrationInputError(f"{path}: not an xbarlab log ({exc})") from None
    reads = m["kind"].astype(str) == "read"
    v_read = float(np.median(m.loc[reads, "voltage"])) if reads.any() else 0.2
    return info.run_id, (int(info.shape[0]), int(info.shape[1])), v_read, m


def load_log(path: str | Path, device_offset: int = 0) -> LogData:
    """Pulse steps, read pairs and per-cell summaries of one log (see module docstring)."""
    p = Path(path)
    run_id, shape, v_read, m = _open(p)
    kind = m["kind"].astype(str).to_numpy()
    keep = (kind == "read") | (kind == "pulse")
    m = m.loc[keep].reset_index(drop=True)
    kind = kind[keep]
    is_pulse = kind == "pulse"
    # index of the last pulse (anywhere) at or before each row
    last_pulse = np.maximum.accumulate(np.where(is_pulse, np.arange(len(m)), -1))
    cell = (m["row"].to_numpy(np.int64) * shape[1] + m["col"].to_numpy(np.int64))
    g = m["conductance"].to_numpy(np.float64)
    v = m["voltage"].to_numpy(np.float64)
    w = m["width"].to_numpy(np.float64)
    clock = m["clock"].to_numpy(np.float64)
    dev, vs, ws, g0s, g1s, gas, gbs = [], [], [], [], [], [], []
    n_cells = shape[0] * shape[1]
    pulses = np.zeros(n_cells, dtype=np.int64)
    g_first = np.full(n_cells, np.nan)
    g_last = np.full(n_cells, np.nan)
    g_range = np.full(n_cells, np.nan)
    at_cap = np.zeros(n_cells, dtype=bool)
    pulse_v = v[is_pulse]
    v_top = float(pulse_v.max()) if np.any(pulse_v > 0) else np.inf
    v_bottom = float(pulse_v.min()) if np.any(pulse_v < 0) else -np.inf
    order = np.argsort(cell, kind="stable")
    bounds = np.flatnonzero(np.diff(cell[order])) + 1
    for idx in np.split(order, bounds):
        c = int(cell[idx[0]])
        k = kind[idx]
        pulses[c] = int(np.sum(k == "pulse"))
        reads = idx[k == "read"]
        good = reads[np.isfinite(g[reads]) & (g[reads] > 0)]
        if len(good):
            g_first[c], g_last[c] = g[good[0]], g[good[-1]]
            g_range[c] = float(np.ptp(g[good]) / np.median(g[good]))
        vc = v[idx[k == "pulse"]]
        at_cap[c] = bool(np.any(vc >= v_top - 0.05) or np.any(vc <= v_bottom + 0.05))
        for j in range(1, len(idx) - 1):
            i_prev, i, i_next = idx[j - 1], idx[j], idx[j + 1]
            if not (is_pulse[i] and not is_pulse[i_prev] and not is_pulse[i_next]):
                continue
            # no other pulse between the read before and the read after
            if last_pulse[i_next] != i or last_pulse[i - 1] > i_prev:
                continue
            dev.append(c)
            vs.append(v[i])
            ws.append(w[i])
            g0s.append(g[i_prev])
            g1s.append(g[i_next])
        for a, b in pairwise(reads):
            if last_pulse[b] < a and clock[b] == clock[a]:  # no pulse, no wait between
                gas.append(g[a])
                gbs.append(g[b])
    g0a, g1a = np.asarray(g0s, dtype=np.float64), np.asarray(g1s, dtype=np.float64)
    ok = np.isfinite(g0a) & np.isfinite(g1a) & (g0a > 0) & (g1a > 0)
    gaa, gba = np.asarray(gas, dtype=np.float64), np.asarray(gbs, dtype=np.float64)
    okr = np.isfinite(gaa) & np.isfinite(gba) & (gaa > 0) & (gba > 0)
    return LogData(
        path=p, run_id=run_id, shape=shape, v_read=v_read,
        device=np.asarray(dev, dtype=np.int64)[ok] + device_offset,
        v=np.asarray(vs, dtype=np.float64)[ok], width=np.asarray(ws, dtype=np.float64)[ok],
        g0=g0a[ok], g1=g1a[ok], ga=gaa[okr], gb=gba[okr],
        cell_pulses=pulses, cell_g_first=g_first, cell_g_last=g_last, cell_g_range=g_range,
        cell_at_cap=at_cap,
        frame=m[["seq", "clock", "kind", "row", "col", "voltage", "width", "current",
                 "conductance", "compliance", "scheme", "step"]].assign(
                     kind=kind, scheme=m["scheme"].astype(str), step=m["step"].astype(str)),
    )


def load_logs(paths: list[str | Path]) -> list[LogData]:
    """Every log, checked: readable xbarlab logs, all of one array size."""
    if not paths:
        raise CalibrationInputError("give at least one log")
    out: list[LogData] = []
    offset = 0
    for path in paths:
        data = load_log(path, offset)
        if out and data.shape != out[0].shape:
            raise CalibrationInputError(
                f"{data.path}: array of {data.shape[0]} x {data.shape[1]}, but {out[0].path} "
                f"is {out[0].shape[0]} x {out[0].shape[1]}: calibrate logs of one array size")
        offset += data.shape[0] * data.shape[1]
        out.append(data)
    return out
