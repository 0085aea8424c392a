"""The calibration report: data vs fitted model for each fitted relation, residuals, warnings."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xbarlab.analysis import calibrate_report_more
from xbarlab.analysis.calibrate import Calibration
from xbarlab.analysis.calibrate_predict import PredictionCheck, draw_check


def plot_calibration(cal: Calibration, out: str | Path,
                     checks: Sequence[PredictionCheck] = ()) -> Path:
    """Save the report figure (PNG, SVG or PDF by the suffix of `out`); `checks` (sessions
    re-run on the calibrated preset) add a prediction row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_more = calibrate_report_more.n_rows(cal.more)
    n_rows = max(len(cal.rate_fits), 1) + 1 + n_more + len(checks)
    fig, axes = plt.subplots(n_rows, 2, figsize=(11, 3.6 * n_rows), squeeze=False)
    for i, fit in enumerate(cal.rate_fits):
        pol = "SET" if fit.setting else "RESET"
        dg = (fit.g1 - fit.g0) / fit.g0 * 100
        dg_fit = (fit.g1_fit - fit.g0) / fit.g0 * 100
        ax = axes[i, 0]
        ax.plot(fit.v_abs, dg, ".", ms=2, alpha=0.3, label="measured")
        ax.plot(fit.v_abs, dg_fit, ".", ms=2, alpha=0.3, label="model (fitted)")
        edges = np.unique(np.quantile(fit.v_abs, np.linspace(0, 1, 13)))
        if len(edges) > 2:
            mid = 0.5 * (edges[1:] + edges[:-1])
            idx = np.clip(np.searchsorted(edges, fit.v_abs, side="right") - 1, 0, len(mid) - 1)
            ax.plot(mid, [np.median(dg[idx == b]) if np.any(idx == b) else np.nan
                          for b in range(len(mid))], "k-", label="measured, median")
            ax.plot(mid, [np.median(dg_fit[idx == b]) if np.any(idx == b) else np.nan
                          for b in range(len(mid))], "r--", label="model, median")
        ax.set_xlabel("|pulse amplitude| (V)")
        ax.set_ylabel("ΔG per pulse (% of G)")
        kept = (f" — not determined, {cal.base}'s kept" if f"{pol.lower()}.a" in cal.kept
                else "")
        ax.set_title(f"{pol}: a = {fit.a:.3g} 1/(Ω s), t = {fit.t * 1e3:.3g} mV "
                     f"({len(fit.g0)} steps, {fit.n_devices} devices){kept}", fontsize=9)
        ax.legend(fontsize=7, markerscale=4)
        ax = axes[i, 1]
        ax.hist((fit.g1 - fit.g1_fit) / fit.g0 * 100, bins=60)
        ax.set_xlabel("residual, measured − model (% of G)")
        ax.set_ylabel("pulse steps")
        ax.set_title(f"{pol} residuals", fontsize=9)
    if not cal.rate_fits:
        axes[0, 0].text(0.5, 0.5, "no switching rates fitted", ha="center", transform=axes[0, 0]
                        .transAxes)
    n_rates = max(len(cal.rate_fits), 1)
    calibrate_report_more.draw(cal.more, axes[n_rates:n_rates + n_more])
    for i, check in enumerate(checks):
        draw_check(check, axes[n_rates + n_more + i])
    ax = axes[-1, 0]
    nf = cal.noise_fit
    if nf is not None:
        ax.errorbar(nf.r_bins / 1e3, nf.std_pct, yerr=nf.se_pct, fmt="o", label="measured")
        r = np.linspace(nf.r_bins.min(), nf.r_bins.max(), 50)
        ax.plot(r / 1e3, nf.slope * r + nf.intercept, "r-", label="fit")
        ax.set_xlabel("R (kΩ)")
        ax.set_ylabel("read noise std (%)")
        ax.set_title(f"read noise from {nf.n} read pairs", fontsize=9)
        ax.legend(fontsize=7)
        axes[-1, 1].plot(nf.r_bins / 1e3, nf.std_pct - (nf.slope * nf.r_bins + nf.intercept),
                         "o")
        axes[-1, 1].axhline(0, color="k", lw=0.5)
        axes[-1, 1].set_xlabel("R (kΩ)")
        axes[-1, 1].set_ylabel("residual (%)")
    else:
        ax.text(0.5, 0.5, "read noise not fitted (too few read pairs)", ha="center",
                transform=ax.transAxes)
        axes[-1, 1].axis("off")
    head = [f"not determined by these logs, kept from {cal.base}: " + ", ".join(cal.kept)]
    head += cal.warnings
    lines = textwrap.wrap("warnings: " + " | ".join(head), width=190)
    fig.text(0.01, 0.998, "\n".join(lines), fontsize=7, color="red", va="top")
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.13 * len(lines) + 0.1) / height))
    path = Path(out)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
