"""Report rows of the relations besides the switching steps: I-V, window plateaus, drift."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_relations import MoreFits


def n_rows(more: MoreFits) -> int:
    """Rows `draw` fills (one per fitted relation)."""
    return sum(x is not None for x in (more.iv, more.window, more.drift))


def draw(more: MoreFits, axes: Any) -> None:
    """Fill rows of `axes` (n_rows x 2): data vs model left, residuals right."""
    row = 0
    if more.iv is not None:
        f = more.iv
        ax = axes[row, 0]
        ax.plot(f.v, f.current * 1e3, ".", ms=3, label="measured")
        ax.plot(f.v, f.current_fit * 1e3, ".", ms=2, label="model (fitted b)")
        ax.set_xlabel("step voltage (V)")
        ax.set_ylabel("current (mA)")
        ax.set_title(f"I-V: b = {f.b:.4g} ± {f.b_se:.2g} 1/V ({len(f.v)} steps, "
                     f"{f.n_sweeps} legs)", fontsize=9)
        ax.legend(fontsize=7, markerscale=3)
        ax = axes[row, 1]
        ax.plot(f.v, (f.current - f.current_fit) / np.abs(f.current) * 100, ".", ms=3)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("step voltage (V)")
        ax.set_ylabel("residual (% of I)")
        row += 1
    if more.window is not None:
        w = more.window
        ax = axes[row, 0]
        x = np.arange(len(w.g_lrs))
        ax.plot(x, w.g_lrs * 1e6, "o", label="LRS plateau")
        ax.plot(x, w.g_hrs * 1e6, "s", label="HRS plateau")
        ax.axhline(w.k / w.r_on * 1e6, color="C0", lw=0.8)
        ax.axhline(w.k / w.r_off * 1e6, color="C1", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("saturating cell")
        ax.set_ylabel("G (µS)")
        ax.set_title(f"window: R_on = {w.r_on:.4g} Ω, R_off = {w.r_off:.4g} Ω "
                     f"({len(w.g_lrs)} cells)", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[row, 1]
        ax.plot(x, (w.g_lrs / np.median(w.g_lrs) - 1) * 100, "o", label="LRS")
        ax.plot(x, (w.g_hrs / np.median(w.g_hrs) - 1) * 100, "s", label="HRS")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("saturating cell")
        ax.set_ylabel("plateau − median (%)")
        ax.legend(fontsize=7)
        row += 1
    if more.drift is not None:
        d = more.drift
        ax = axes[row, 0]
        t = np.maximum(d.times, d.times[d.times > 0].min() / 2 if np.any(d.times > 0) else 1)
        ax.semilogx(t, (d.g_rel - 1) * 100, "o", label="measured, median device")
        ax.semilogx(t, (d.g_rel_fit - 1) * 100, "r-", label="model, median drift")
        ax.set_xlabel("time since the first read (s)")
        ax.set_ylabel("G / G(first read) − 1 (%)")
        ax.set_title(f"drift {d.drift * 100:.3g} %/decade, d2d log-std {d.log_std:.3g} "
                     f"({len(d.d)} devices)", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[row, 1]
        pos = d.d[d.d > 0]
        ax.hist(np.log10(pos), bins=40)
        ax.set_xlabel("log10 per-device drift (1/decade)")
        ax.set_ylabel("devices")
