"""Stuck devices in a calibration's logs: cells that did not move however hard they were
pulsed (but not healthy cells pinned at the window's clip level), and the stuck fractions."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_data import LogData
from xbarlab.sim.presets import CompactPreset
from xbarlab.sim.tio2 import read_factor

STUCK_MIN_PULSES = 20


def stuck_cells(d: LogData, g_clip: tuple[float, float] | None = None
                ) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Cells pulsed up to the log's largest amplitude whose reads, over at least
    STUCK_MIN_PULSES pulses, stayed within 2 % (a slow but healthy cell moves at the cap),
    except, given the read conductances of the clip levels `g_clip` (k / R_off, k / R_on),
    cells whose last read sits within 2 % of one: a healthy cell pinned at the window's edge
    (a target beyond it) does not move either."""
    with np.errstate(invalid="ignore"):
        still = d.cell_g_range < 0.02
        if g_clip is not None:
            for g in g_clip:
                still &= ~(np.abs(d.cell_g_last / g - 1) < 0.02)
    return np.asarray((d.cell_pulses >= STUCK_MIN_PULSES) & d.cell_at_cap & still, dtype=bool)


def clip_reads(p: CompactPreset) -> tuple[float, float]:
    """Read conductances (S) of R_off and R_on under `p`."""
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    return k / p.r_off, k / p.r_on


def stuck_devices(logs: list[LogData], g_clip: tuple[float, float] | None = None
                   ) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Device ids (as in `LogData.device`) of the stuck cells of every log."""
    ids, offset = [], 0
    for d in logs:
        ids.append(np.flatnonzero(stuck_cells(d, g_clip)) + offset)
        offset += d.cell_pulses.size
    return np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, dtype=np.int64)


def stuck_fractions(p: CompactPreset, logs: list[LogData]) -> tuple[int, int, int, int]:
    """(stuck LRS, stuck HRS, cells that had >= STUCK_MIN_PULSES pulses, all cells) over the
    logs that pulsed >= 90 % of their cells (whole-array sessions such as write-verify)."""
    lrs = hrs = tried = total = 0
    for d in logs:
        if np.mean(d.cell_pulses > 0) < 0.9:
            continue  # not a whole-array session: its unpulsed cells say nothing
        total += d.cell_pulses.size
        tried += int(np.sum(d.cell_pulses >= STUCK_MIN_PULSES))
        stuck = stuck_cells(d, clip_reads(p))
        lrs += int(np.sum(stuck & (d.cell_g_last > p.stuck.hrs_high)))
        hrs += int(np.sum(stuck & (d.cell_g_last <= p.stuck.hrs_high)))
    return lrs, hrs, tried, total
