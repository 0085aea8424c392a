"""Report rows of the relations besides the switching steps: I-V, window plateaus, drift,
half-select disturb vs exposure count."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_relations import MoreFits


def n_rows(more: MoreFits) -> int:
    """Rows `draw` fills (one per fitted relation)."""
    return sum(x is not None for x in (more.iv, more.window, more.drift, more.disturb))


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
        row += 1
    if more.disturb is not None:
        _disturb_row(more, axes[row])


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    mid = 0.5 * (edges[1:] + edges[:-1])
    med = np.array([np.median(y[idx == b]) if np.any(idx == b) else np.nan
                    for b in range(len(mid))])
    return mid, med


def _disturb_row(more: MoreFits, axes: Any) -> None:
    f = more.disturb
    assert f is not None
    ax = axes[0]
    ax.plot(f.count, f.dg_meas * 100, ".", ms=2, alpha=0.3, label="measured (cells)")
    edges = np.unique(np.quantile(f.count, np.linspace(0, 1, 11)))
    if len(edges) > 2:
        for y, style, label in ((f.dg_meas, "k-", "measured, median"),
                                (f.dg_before, "b:", "model, step fit only"),
                                (f.dg_fit, "r--", "model, with disturb fit")):
            mid, med = _binned(f.count, y, edges)
            ax.plot(mid, med * 100, style, label=label)
    ts = ", ".join(f"{q}.t = {t * 1e3:.3g} ± {f.t_se[q] * 1e3:.2g} mV" for q, t in f.t.items())
    ax.set_title(f"half-select disturb ({f.n_cells} cells): {ts}", fontsize=9)
    ax.set_xlabel("half-select exposures after the cell was programmed")
    ax.set_ylabel("map read − last verify read (% of G)")
    lim = np.nanpercentile(np.abs(f.dg_meas * 100), 95) if len(f.dg_meas) else 1.0
    ax.set_ylim(-1.5 * lim, 1.5 * lim)
    ax.legend(fontsize=7, markerscale=4)
    ax = axes[1]
    ax.hist((f.dg_meas - f.dg_fit) * 100, bins=60, range=(-2 * lim, 2 * lim))
    ax.set_xlabel("residual, measured − model (% of G)")
    ax.set_ylabel("cells")
