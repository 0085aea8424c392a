"""Plots of a logged session: what a person looks at after a write-verify run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.log.reader import LogReader
from xbarlab.log.schema import KIND_CODE


def _cell_summaries(reader: LogReader) -> list[dict[str, Any]]:
    notes = reader.annotations()
    done = notes[(notes["kind"] == "checkpoint") & (notes["message"] == "cell_done")]
    return [d for d in done["data"] if isinstance(d, dict)]


def plot_session(log: str | Path, out: str | Path) -> Path:
    """Save a PNG overview of the session logged in `log`; returns the PNG path.

    Write-verify sessions: target map, final map, relative error, pulses per cell and the
    conductance trace of a few cells. Other sessions: the final conductance map.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with LogReader(log) as reader:
        info = reader.info
        final = reader.final_conductances() * 1e6
        cells = _cell_summaries(reader)
        rows = reader.measurements_array()
    shape = final.shape
    title = f"{info.protocol} on {info.backend.get('backend', '?')} {shape[0]}x{shape[1]}"
    if not cells:
        fig, ax = plt.subplots(figsize=(5, 4.2))
        im = ax.imshow(final, cmap="viridis")
        fig.colorbar(im, ax=ax, label="G (uS)")
        ax.set_title(f"{title}: last read")
        fig.savefig(out, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return out

    target = np.full(shape, np.nan)
    pulses = np.full(shape, np.nan)
    for c in cells:
        r, k = c["cell"]
        target[r, k] = c["target"] * 1e6
        pulses[r, k] = c["n_pulses"]
    err = 100 * (final - target) / target
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
    lo, hi = np.nanmin([target, final]), np.nanmax([target, final])
    for ax, data, name in ((axes[0, 0], target, "target"), (axes[0, 1], final, "final read")):
        im = ax.imshow(data, cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(f"{name} (uS)")
        fig.colorbar(im, ax=ax)
    lim = max(1.0, float(np.nanpercentile(np.abs(err), 95)))
    im = axes[0, 2].imshow(err, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[0, 2].set_title("final error (% of target)")
    fig.colorbar(im, ax=axes[0, 2])
    im = axes[1, 0].imshow(pulses, cmap="magma")
    axes[1, 0].set_title("pulses per cell")
    fig.colorbar(im, ax=axes[1, 0])
    axes[1, 1].hist(err[np.isfinite(err)].ravel(), bins=40, color="tab:blue")
    axes[1, 1].set_xlabel("final error (% of target)")
    axes[1, 1].set_ylabel("cells")
    reads = rows[rows["kind"] == KIND_CODE["read"]]
    ax = axes[1, 2]
    converged = [c for c in cells if c["converged"]] or cells
    busiest = sorted(converged, key=lambda c: -c["n_pulses"])[:4]
    for c in busiest:
        r, k = c["cell"]
        mine = reads[(reads["row"] == r) & (reads["col"] == k)]
        ax.plot(np.arange(len(mine)), mine["conductance"] * 1e6, lw=1, label=f"({r}, {k})")
        ax.axhline(c["target"] * 1e6, lw=0.6, ls="--", color=ax.lines[-1].get_color())
    ax.set_xlabel("verify read #")
    ax.set_ylabel("G (uS)")
    ax.set_title("write-verify traces (converged cells with most pulses)")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
