"""Switching window bounds (``r_on``, ``r_off``) from cells cycled into saturation.

In the model every state resistance is clipped to [R_on, R_off]; a pulse whose own bound
r(|V|) = r0 + r1 |V| lies beyond the clip drives the device onto it, and then every such
pulse leaves it on the same level (read G = k / R_on or k / R_off, k = the read factor of the
I-V law, only read noise around it). So a cell cycled with SET and RESET pulses (endurance,
or any log with repeated pulses at a cell's largest amplitudes) shows two plateaus: the reads
right after its largest-amplitude SET pulses and those after its largest-amplitude RESET
pulses. A cell counts as saturating when each plateau holds >= `MIN_READS` reads with a
robust relative spread below `MAX_SPREAD` and the two differ by more than `MIN_RATIO` (a stuck
cell shows one level for both). R_on = k / median LRS plateau, R_off = k / median HRS
plateau over those cells; standard errors: see `WindowFit.se`. A
plateau is only the clip when the base preset's bound at that amplitude lies beyond it
(checked; otherwise the bound, not the clip, was measured, and the value is not fitted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.analysis.calibrate_data import FloatArray, LogData

MIN_READS = 3
MAX_SPREAD = 0.01
MIN_RATIO = 1.5
MIN_CELLS = 2


@dataclass
class WindowFit:
    """Saturation plateaus of the saturating cells (read G, S) and their amplitudes (V)."""

    g_lrs: FloatArray  # per cell
    g_hrs: FloatArray
    v_set: FloatArray  # |V| of the SET pulses that saturated each cell
    v_reset: FloatArray
    k: float  # read factor used, 1
    n_cells_tried: int
    s_lrs: FloatArray | None = None  # robust relative spread of each plateau's reads
    s_hrs: FloatArray | None = None
    k_rel_se: float = 0.0  # relative standard error of k (from iv.b's)

    @property
    def r_on(self) -> float:
        return float(self.k / np.median(self.g_lrs))

    @property
    def r_off(self) -> float:
        return float(self.k / np.median(self.g_hrs))

    def se(self, which: str) -> float:
        """Standard error (ohm) of r_on or r_off, three parts in quadrature (relative):

        - the scatter of the cells' plateaus over the number of cells (median: x 1.2533);
        - a plateau level known to its reads' spread, not to that over the number of reads:
          the reads after a cell's largest pulses are not independent draws around the clip
          (each pulse's volatile part relaxes, the first ones approach the clip), and the
          cells share that offset, so it does not average out over the cells' scatter either
          (measured: every cell's plateau 0.02-0.1 % above R_on, per-cell scatter 0.04 %);
          the median spread over sqrt(number of cells) is taken;
        - the read factor's relative error (R = k / G, k from iv.b).
        """
        g = self.g_lrs if which == "r_on" else self.g_hrs
        spread = self.s_lrs if which == "r_on" else self.s_hrs
        r = self.k / g
        if len(r) < 2:
            return float("nan")
        value = self.k / float(np.median(g))
        cells = 1.2533 * float(np.std(r, ddof=1)) / np.sqrt(len(r)) / value
        level = float(np.median(spread)) / np.sqrt(len(r)) if spread is not None else 0.0
        return value * float(np.sqrt(cells**2 + level**2 + self.k_rel_se**2))


def _robust_spread(g: FloatArray) -> float:
    med = float(np.median(g))
    return 1.4826 * float(np.median(np.abs(g - med))) / med


def plateaus(d: LogData) -> list[tuple[float, float, float, float, float, float]]:
    """(G LRS, G HRS, |V| SET, |V| RESET, spread LRS, spread HRS) of each saturating cell of
    a log (spread: the robust relative spread of the plateau's reads)."""
    m = d.frame
    if m is None or not len(m):
        return []
    kind = m["kind"].to_numpy()
    cell = m["row"].to_numpy(np.int64) * d.shape[1] + m["col"].to_numpy(np.int64)
    v = m["voltage"].to_numpy(np.float64)
    g = m["conductance"].to_numpy(np.float64)
    # reads right after a pulse on the same cell
    after = np.flatnonzero((kind[1:] == "read") & (kind[:-1] == "pulse")
                           & (cell[1:] == cell[:-1])) + 1
    out = []
    for c in np.unique(cell[after]):
        rows = after[cell[after] == c]
        vp = v[rows - 1]
        gr = g[rows]
        if not (np.any(vp > 0) and np.any(vp < 0)):
            continue
        top, bottom = vp.max(), vp.min()
        lrs = gr[(vp >= top - 1e-9) & np.isfinite(gr)]
        hrs = gr[(vp <= bottom + 1e-9) & np.isfinite(gr)]
        if len(lrs) < MIN_READS or len(hrs) < MIN_READS:
            continue
        s_on, s_off = _robust_spread(lrs), _robust_spread(hrs)
        if max(s_on, s_off) > MAX_SPREAD:
            continue
        g_on, g_off = float(np.median(lrs)), float(np.median(hrs))
        if g_on > MIN_RATIO * g_off:
            out.append((g_on, g_off, float(top), float(-bottom), s_on, s_off))
    return out


def fit_window(logs: list[LogData], k: float, k_rel_se: float = 0.0) -> WindowFit | None:
    """The plateaus of every saturating cell; None if fewer than `MIN_CELLS`. `k_rel_se`:
    the read factor's relative standard error (enters those of r_on and r_off)."""
    found = [p for d in logs for p in plateaus(d)]
    if len(found) < MIN_CELLS:
        return None
    arr = np.asarray(found, dtype=np.float64)
    return WindowFit(g_lrs=arr[:, 0], g_hrs=arr[:, 1], v_set=arr[:, 2], v_reset=arr[:, 3], k=k,
                     n_cells_tried=len(found), s_lrs=arr[:, 4], s_hrs=arr[:, 5],
                     k_rel_se=k_rel_se)
