"""Plots of a logged session: what a person looks at after a write-verify run or a read map.

Each figure says what was measured (protocol, backend, device, read voltage and scheme) and
how the run ended (an aborted or partial run says so in the title), and flags what misleads:
reads above what one device can conduct (sneak paths dominate them) and compliance hits.
Written as PNG, SVG or PDF (by the file's suffix).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.log.reader import LogReader
from xbarlab.log.schema import KIND_CODE, SCHEMES
from xbarlab.units import MICRO, scale, si

US = f"{MICRO}S"


@dataclass(frozen=True)
class CellHistory:
    """One cell over every write-verify attempt (passes) of a session."""

    cell: tuple[int, int]
    target: float  # S
    pulses: int  # over every attempt
    attempts: int
    converged: bool  # its last attempt


def cell_histories(reader: LogReader) -> dict[tuple[int, int], CellHistory]:
    """Per cell, its write-verify attempts summed (a cell re-programmed in later passes
    appears once)."""
    notes = reader.annotations()
    done = notes[(notes["kind"] == "checkpoint") & (notes["message"] == "cell_done")]
    out: dict[tuple[int, int], CellHistory] = {}
    for d in done["data"]:
        if not isinstance(d, dict) or "cell" not in d:
            continue
        cell = (int(d["cell"][0]), int(d["cell"][1]))
        prev = out.get(cell)
        out[cell] = CellHistory(
            cell, float(d["target"]), int(d["n_pulses"]) + (prev.pulses if prev else 0),
            1 + (prev.attempts if prev else 0), bool(d["converged"]))
    return out


@dataclass(frozen=True)
class ReadContext:
    """What the last read of each cell was: voltage, scheme, compliance, suspicious cells."""

    v_read: float  # V (most common voltage of the last reads)
    scheme: str
    compliance: np.ndarray  # (M, N) bool: the last read of the cell hit compliance
    g_device_max: float | None  # S, the most one device can conduct (None: unknown)


def read_context(reader: LogReader, shape: tuple[int, int]) -> ReadContext:
    rows = reader.measurements_array()
    reads = rows[rows["kind"] == KIND_CODE["read"]]
    comp = np.zeros(shape, dtype=bool)
    if len(reads):
        comp[reads["row"], reads["col"]] = reads["compliance"]  # later rows win
        volts, counts = np.unique(np.round(np.abs(reads["voltage"]), 6), return_counts=True)
        v_read = float(volts[np.argmax(counts)])
        codes, ccounts = np.unique(reads["scheme"].astype(np.int64), return_counts=True)
        scheme = SCHEMES[int(codes[np.argmax(ccounts)])]
    else:
        v_read, scheme = float("nan"), "none"
    return ReadContext(v_read, scheme, comp, _device_max(dict(reader.info.config)))


def _device_max(config: dict[str, Any]) -> float | None:
    """The highest conductance one device of the session's preset can have (sim only)."""
    if config.get("backend", "sim") != "sim":
        return None
    device = (config.get("sim") or {}).get("device")
    if not device:
        return None
    if device == "simple":
        from xbarlab.sim.devices import SimpleDeviceParams

        return float(SimpleDeviceParams().g_max)
    from xbarlab.sim.presets import CompactPreset, PresetError, load_preset

    try:
        preset = load_preset(device)
    except (PresetError, ValueError):
        return None
    if not isinstance(preset, CompactPreset):
        return None
    # stuck-LRS devices read somewhat above 1 / r_on: leave 25 % headroom before calling it
    # a sneak path
    return 1.25 / preset.r_on


def _heading(reader: LogReader) -> tuple[str, str]:
    """(what was run, how it ended) for a figure's title."""
    info = reader.info
    m, n = info.shape
    backend = info.backend.get("backend", info.backend.get("name", "?"))
    device = (info.config.get("sim") or {}).get("device") if backend == "sim" else None
    what = f"{info.protocol} on {backend}, {m} × {n}" + (f", {device} devices" if device else "")
    end = reader.end
    status = reader.status
    if end is None:
        how = "UNFINISHED (the run is still going, or its writer died): partial data"
    else:
        how = "status: " + (status.upper() if status in ("aborted", "failed") else status)
        if end.reason:
            how += f": {end.reason}"
    return what, how


def _cell_axes(ax: Any, shape: tuple[int, int]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(shape[1], 8)))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(shape[0], 8)))
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _flags(ax: Any, g: np.ndarray, ctx: ReadContext) -> list[str]:
    """Mark sneak-path dominated and compliance cells on a map; returns the legend lines."""
    notes = []
    if ctx.g_device_max is not None:
        sneak = np.isfinite(g) & (g > ctx.g_device_max)
        few = sneak.sum() <= 0.25 * sneak.size  # marks on every cell would hide the map
        if sneak.any():
            if few:
                r, c = np.nonzero(sneak)
                ax.scatter(c, r, marker="s", s=30, facecolors="none", edgecolors="red", lw=1.0)
            notes.append(f"{'red squares: ' if few else ''}{int(sneak.sum())} of {g.size} reads "
                         f"above what one device can conduct ({si(ctx.g_device_max, 'S')}): "
                         "sneak paths dominate them, they are not device conductances")
    if ctx.compliance.any():
        few = ctx.compliance.sum() <= 0.25 * ctx.compliance.size
        if few:
            r, c = np.nonzero(ctx.compliance)
            ax.scatter(c, r, marker="x", s=25, color="white", lw=1.2)
        notes.append(f"{'white crosses: ' if few else ''}{int(ctx.compliance.sum())} reads hit "
                     "the current compliance (G is a lower bound)")
    if ctx.scheme == "floating":
        notes.append("floating scheme: every read includes the sneak currents of the array")
    return notes


def _title(fig: Any, what: str, how: str, extra: list[str], width: int) -> None:
    lines = [what, *textwrap.wrap(how, width)]
    for note in extra:
        lines += textwrap.wrap(note, width)
    fig.suptitle("\n".join(lines), fontsize=10)


def plot_session(log: str | Path, out: str | Path) -> Path:
    """Save an overview of the session logged in `log`; returns the path.

    Write-verify sessions: target map, final map, relative error, pulses per cell, the error
    histogram and the conductance trace of a few cells. Other sessions: the last read map.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    with LogReader(log) as reader:
        final_s = reader.final_conductances()
        shape = final_s.shape
        cells = cell_histories(reader)
        rows = reader.measurements_array()
        ctx = read_context(reader, shape)
        what, how = _heading(reader)
        tol = tolerance_pct(dict(reader.info.config))
    final = final_s * 1e6
    read_label = (f"last read of each cell at {si(ctx.v_read, 'V')}, {ctx.scheme} scheme"
                  if np.isfinite(ctx.v_read) else "no read")
    if not cells:
        fig, ax = plt.subplots(figsize=(6.4, 6.0), layout="constrained")
        big = np.isfinite(final_s).any() and np.nanmax(final_s) >= 2e-3
        factor, unit = scale("S", -3 if big else -6)
        im = ax.imshow(final_s * factor, cmap="viridis")
        fig.colorbar(im, ax=ax, label=f"G ({unit})", shrink=0.85)
        _cell_axes(ax, shape)
        ax.set_title(read_label, fontsize=9)
        _title(fig, what, how, _flags(ax, final_s, ctx), 70)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out
    return _plot_write_verify(plt, out, final, final_s, cells, rows, ctx, what, how, read_label,
                              tol)


def _plot_write_verify(plt: Any, out: Path, final: np.ndarray, final_s: np.ndarray,
                       cells: dict[tuple[int, int], CellHistory], rows: np.ndarray,
                       ctx: ReadContext, what: str, how: str, read_label: str, tol: float
                       ) -> Path:
    shape = final.shape
    target = np.full(shape, np.nan)
    pulses = np.full(shape, np.nan)
    for h in cells.values():
        target[h.cell] = h.target * 1e6
        pulses[h.cell] = h.pulses
    err = 100 * (final - target) / target
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), layout="constrained")
    lo, hi = np.nanmin([target, final]), np.nanmax([target, final])
    for ax, data, name in ((axes[0, 0], target, "target"), (axes[0, 1], final, read_label)):
        im = ax.imshow(data, cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, label=f"G ({US})", shrink=0.85)
        _cell_axes(ax, shape)
    flags = _flags(axes[0, 1], final_s, ctx)

    worst = float(np.nanmax(np.abs(err))) if np.isfinite(err).any() else tol
    im = axes[0, 2].imshow(err, cmap="RdBu_r", norm=error_norm(err, tol))
    axes[0, 2].set_title(f"final error; worst {worst:.3g} %", fontsize=9)
    fig.colorbar(im, ax=axes[0, 2], shrink=0.85,
                 label=f"error (% of target; symlog, linear within ±{tol:g} %)")
    _cell_axes(axes[0, 2], shape)

    im = axes[1, 0].imshow(pulses, cmap="magma")
    axes[1, 0].set_title("pulses per cell (all passes)", fontsize=9)
    fig.colorbar(im, ax=axes[1, 0], label="pulses", shrink=0.85)
    _cell_axes(axes[1, 0], shape)

    _histogram(axes[1, 1], err[np.isfinite(err)].ravel(), tol)
    _traces(axes[1, 2], rows, cells)
    _title(fig, what, how, flags, 130)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def error_norm(err_pct: np.ndarray, tol_pct: float) -> Any:
    """Colour scale of an error map (%): symmetric log, linear within the tolerance, spanning
    the worst cell, so a 300 % stuck cell never looks like a 6 % one."""
    from matplotlib.colors import SymLogNorm

    finite = err_pct[np.isfinite(err_pct)]
    worst = float(np.max(np.abs(finite))) if finite.size else tol_pct
    lim = max(3 * tol_pct, worst)
    return SymLogNorm(linthresh=tol_pct, linscale=1.0, vmin=-lim, vmax=lim, base=10)


def tolerance_pct(config: dict[str, Any]) -> float:
    """The write-verify tolerance of the run's config in % (1 %, the default, if absent)."""
    params = (config.get("protocol") or {}).get("params") or {}
    return 100 * float(params.get("tolerance", 0.01))


def _histogram(ax: Any, err: np.ndarray, tol: float) -> None:
    """Final errors: bins sized to the bulk of the cells; outliers counted, not squeezed."""
    if err.size == 0:
        ax.text(0.5, 0.5, "no cell was read", ha="center", transform=ax.transAxes)
        return
    span = max(3 * tol, float(np.percentile(np.abs(err), 98)))
    inside = err[np.abs(err) <= span]
    outliers = err[np.abs(err) > span]
    bins = int(np.clip(np.sqrt(inside.size) * 2, 10, 60))
    ax.hist(inside, bins=bins, range=(-span, span), color="tab:blue")
    ax.axvspan(-tol, tol, color="tab:green", alpha=0.15, label=f"tolerance ±{tol:g} %")
    if outliers.size:
        ax.plot([], [], " ", label=f"{outliers.size} cells beyond ±{span:.3g} % (not shown; "
                                   f"worst {outliers[np.argmax(np.abs(outliers))]:+.3g} %)")
    ax.set_xlabel("final error (% of target)")
    ax.set_ylabel("cells")
    ax.set_title(f"error histogram: median |error| {np.median(np.abs(err)):.2f} %, "
                 f"{np.mean(np.abs(err) <= tol):.0%} within tolerance", fontsize=9)
    ax.legend(fontsize=8)


def _traces(ax: Any, rows: np.ndarray, cells: dict[tuple[int, int], CellHistory]) -> None:
    """Every read of a few busy cells, once per cell across all passes."""
    from matplotlib.ticker import MaxNLocator

    reads = rows[rows["kind"] == KIND_CODE["read"]]
    pool = [h for h in cells.values() if h.converged] or list(cells.values())
    for h in sorted(pool, key=lambda h: -h.pulses)[:4]:
        r, k = h.cell
        mine = reads[(reads["row"] == r) & (reads["col"] == k)]
        line, = ax.plot(np.arange(1, len(mine) + 1), mine["conductance"] * 1e6, lw=1,
                        label=f"({r}, {k}): {h.pulses} pulses, {h.attempts} programming(s)")
        ax.axhline(h.target * 1e6, lw=0.6, ls="--", color=line.get_color())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("read of the cell # (verify reads and the read maps after each pass)")
    ax.set_ylabel(f"G ({US})")
    ax.set_title("write-verify traces (converged cells with most pulses; dashed: target)",
                 fontsize=9)
    ax.legend(fontsize=8)
