"""The natural figure of each characterisation protocol, drawn from its HDF5 log alone.

forming: forming-voltage histogram and map; switch seeker: threshold histograms; multi-state
seeker: level histogram and levels per cell; retention: G(t) on log time; endurance: LRS/HRS
window against cycle; curve tracer: I-V loops coloured by cycle; volatility: G after the pulse
against log time; sequence: every read against time. Converge-to-state, write-verify and read
maps use `xbarlab.analysis.session_plots`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbarlab.log.reader import LogReader
from xbarlab.units import axis_unit


class LogData:
    """What the plots need from a log: run info, events (with data) and measurements."""

    def __init__(self, reader: LogReader) -> None:
        self.info = reader.info
        self.events = reader.events()
        self.meas = reader.measurements()
        self.shape = self.info.shape

    def checkpoints(self, label: str) -> list[dict[str, Any]]:
        ev = self.events
        sel = ev[(ev["kind"] == "checkpoint") & (ev["message"] == label)]
        return [d for d in sel["data"] if isinstance(d, dict)]

    def rows(self, kind: str, step: str) -> pd.DataFrame:
        m = self.meas
        return m[(m["kind"] == kind) & (m["step"] == step)]

    def event_rows(self, label: str) -> np.ndarray:
        """Rows of the events table of the checkpoints called `label`."""
        ev = self.events
        return np.flatnonzero(((ev["kind"] == "checkpoint") & (ev["message"] == label)).to_numpy())


def _scaled(values: Any, unit: str) -> tuple[np.ndarray, str]:
    scale, label = axis_unit(values, unit)
    return np.asarray(values, dtype=np.float64) / scale, label


def _map(fig: Any, ax: Any, data: np.ndarray, title: str, label: str, cmap: str = "viridis"
         ) -> None:
    im = ax.imshow(data, cmap=cmap)
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _forming(d: LogData, plt: Any) -> Any:
    done = d.checkpoints("cell_done")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    v = np.array([c["v_formed"] for c in done if c.get("formed") and c.get("v_formed")])
    if v.size:
        axes[0].hist(v, bins=np.arange(v.min() - 0.05, v.max() + 0.1, 0.1), color="tab:blue")
    axes[0].set_xlabel("forming amplitude (V)")
    axes[0].set_ylabel("cells")
    axes[0].set_title(f"forming voltage ({v.size} / {len(done)} cells formed)")
    vmap = np.full(d.shape, np.nan)
    gmap = np.full(d.shape, np.nan)
    for c in done:
        r, k = c["cell"]
        vmap[r, k] = c["v_formed"] if c.get("formed") and c.get("v_formed") else np.nan
        gmap[r, k] = c["g_final"]
    _map(fig, axes[1], vmap, "forming amplitude map (blank: not formed)", "V", "plasma")
    g, unit = _scaled(gmap, "S")
    _map(fig, axes[2], g, "G after forming", unit)
    return fig


def _switch(d: LogData, plt: Any) -> Any:
    done = d.checkpoints("cell_done")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "v_set", "SET (positive ramp)"),
                          (axes[1], "v_reset", "RESET (negative ramp)")):
        v = np.array([c[key] for c in done if c.get(key) is not None])
        if v.size:
            ax.hist(v, bins=max(5, min(30, v.size)), color="tab:green")
        ax.set_title(f"{name}: {v.size} / {len(done)} cells switched")
        ax.set_xlabel("threshold amplitude (V)")
        ax.set_ylabel("cells")
    return fig


def _multistate(d: LogData, plt: Any) -> Any:
    done = d.checkpoints("cell_done")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    levels = np.concatenate([np.asarray(c["levels"]) for c in done]) if done else np.zeros(0)
    lv, unit = _scaled(levels, "S")
    if lv.size:
        axes[0].hist(lv, bins=60, color="tab:purple")
    axes[0].set_xlabel(f"level conductance ({unit})")
    axes[0].set_ylabel("levels")
    axes[0].set_title("distinguishable levels, all cells")
    scale = float(levels.max()) / float(lv.max()) if lv.size and lv.max() else 1.0
    for k, c in enumerate(done):
        g = np.asarray(c["levels"]) / scale
        s = np.asarray(c["spreads"]) / scale
        axes[1].errorbar(np.full(len(g), k), g, yerr=s, fmt="_", ms=14, capsize=3)
    axes[1].set_xticks(range(len(done)), [str(tuple(c["cell"])) for c in done], rotation=45)
    axes[1].set_xlabel("cell")
    axes[1].set_ylabel(f"G ({unit})")
    axes[1].set_title("levels per cell (bars: read spread)")
    return fig


def _retention(d: LogData, plt: Any) -> Any:
    t = np.array([c["t"] for c in d.checkpoints("retention_point")])
    reads = d.rows("read", "retention_read")
    cells = reads[["row", "col"]].drop_duplicates().to_numpy()
    n = min(len(t), len(reads) // max(len(cells), 1))
    g = reads["conductance"].to_numpy()[: n * len(cells)].reshape(n, len(cells))
    t = t[:n]
    gs, unit = _scaled(g, "S")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    later = t > 0
    show = np.linspace(0, len(cells) - 1, min(len(cells), 8)).astype(int)
    for j in show:
        line = axes[0].plot(t[later], gs[later, j], marker=".", lw=1,
                            label=f"({int(cells[j][0])}, {int(cells[j][1])})")
        axes[0].axhline(gs[0, j], color=line[0].get_color(), lw=0.6, ls=":")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("time since the first read (s)")
    axes[0].set_ylabel(f"G ({unit})")
    axes[0].set_title("retention (dotted: G at t = 0)")
    axes[0].legend(fontsize=7, ncol=2)
    rel = 100 * (g / g[0] - 1)
    axes[1].fill_between(t[later], np.percentile(rel[later], 10, axis=1),
                         np.percentile(rel[later], 90, axis=1), alpha=0.3, label="10-90 %")
    axes[1].plot(t[later], np.median(rel[later], axis=1), color="k", label="median")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("time since the first read (s)")
    axes[1].set_ylabel("change of G (%)")
    axes[1].set_title(f"all {len(cells)} cells")
    axes[1].legend(fontsize=8)
    return fig


def _endurance(d: LogData, plt: Any) -> Any:
    checks = pd.DataFrame(d.checkpoints("endurance_check"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    if checks.empty:
        return fig
    scale, unit = axis_unit(checks[["g_on", "g_off"]].to_numpy(), "S")
    for cell, grp in checks.groupby(checks["cell"].map(tuple)):
        line = axes[0].plot(grp["cycle"], grp["g_on"] / scale, lw=1, label=f"{cell} LRS")
        axes[0].plot(grp["cycle"], grp["g_off"] / scale, lw=1, ls="--",
                     color=line[0].get_color(), label=f"{cell} HRS")
        axes[1].plot(grp["cycle"], grp["g_on"] / grp["g_off"], lw=1, label=str(cell))
        failed = grp[grp["failure"] != ""]
        axes[1].plot(failed["cycle"], failed["g_on"] / failed["g_off"], "x",
                     color=line[0].get_color())
    cfg = d.info.config.get("protocol", {})
    if "min_ratio" in cfg:
        axes[1].axhline(cfg["min_ratio"], color="r", lw=0.8, ls=":", label="collapse limit")
    axes[0].set_ylabel(f"G ({unit})")
    axes[0].set_title("LRS (solid) and HRS (dashed) window")
    axes[1].set_ylabel("G_on / G_off")
    axes[1].set_title("window ratio (x: failing check)")
    for ax in axes:
        ax.set_xlabel("cycle")
        ax.legend(fontsize=7)
    return fig


def _cycle_of(d: LogData, rows: pd.DataFrame) -> np.ndarray:
    """Cycle number (1-based) of each measurement row, from the cycle_done checkpoints."""
    ends = d.event_rows("cycle_done")
    return np.searchsorted(ends, rows["event"].to_numpy(), side="left") + 1


def _curves(d: LogData, plt: Any) -> Any:
    steps = d.rows("pulse", "iv_step")
    reads = d.rows("read", "iv_read")
    cells = pd.concat([steps, reads])[["row", "col"]].drop_duplicates().to_numpy()[:4]
    panels = [(p, rows) for p, rows in (("bias", steps), ("read", reads)) if len(rows)]
    fig, axes = plt.subplots(len(panels), len(cells), figsize=(5.5 * len(cells),
                             4.2 * len(panels)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for j, (r, c) in enumerate(cells):
        for i, (kind, rows) in enumerate(panels):
            mine = rows[(rows["row"] == r) & (rows["col"] == c)]
            cyc = _cycle_of(d, mine)
            n_cyc = max(int(cyc.max()), 1) if len(cyc) else 1
            y = mine["current"] if kind == "bias" else mine["conductance"]
            ys, unit = _scaled(y.to_numpy(), "A" if kind == "bias" else "S")
            v = mine["voltage"].to_numpy()
            if kind == "read":  # a read after each step: plot against the step's voltage
                v = steps[(steps["row"] == r) & (steps["col"] == c)]["voltage"].to_numpy()
                v = v[: len(ys)] if len(v) >= len(ys) else np.pad(v, (0, len(ys) - len(v)))
            ax = axes[i, j]
            for k in range(1, n_cyc + 1):
                sel = cyc == k
                ax.plot(v[sel], ys[sel], marker=".", ms=3, lw=0.8,
                        color=cmap((k - 1) / max(n_cyc - 1, 1)), label=f"cycle {k}")
            ax.axhline(0, color="grey", lw=0.4)
            ax.axvline(0, color="grey", lw=0.4)
            ax.set_xlabel("applied voltage (V)")
            ax.set_ylabel(f"I at bias ({unit})" if kind == "bias" else f"G at read ({unit})")
            ax.set_title(f"cell ({r}, {c})")
            ax.legend(fontsize=7)
    return fig


def _volatility(d: LogData, plt: Any) -> Any:
    ev = d.events
    fig, ax = plt.subplots(figsize=(7, 4.2))
    traces: list[tuple[list[float], list[float]]] = []
    clock0 = clock = 0.0
    fresh = False
    read_g = d.rows("read", "vol_read").set_index("event")["conductance"]
    for idx, row in zip(range(len(ev)), ev.itertuples(index=False), strict=True):
        if row.step == "vol_pulse":
            traces.append(([], []))
            fresh = True
        elif row.step == "vol_wait" and isinstance(row.data, dict):
            clock = float(row.data["clock"])
            if fresh:
                clock0, fresh = clock, False
        elif row.step == "vol_read" and traces and idx in read_g.index:
            traces[-1][0].append(clock - clock0)
            traces[-1][1].append(float(read_g.loc[idx]))
    allg = np.concatenate([np.asarray(g) for _, g in traces]) if traces else np.zeros(0)
    scale, unit = axis_unit(allg, "S")
    for k, (t, g) in enumerate(traces):
        ax.plot(t, np.asarray(g) / scale, marker=".", lw=1, label=f"pulse {k + 1}")
    ax.set_xscale("log")
    ax.set_xlabel("time after the pulse (s)")
    ax.set_ylabel(f"G ({unit})")
    ax.set_title("relaxation after a pulse")
    ax.legend(fontsize=7)
    return fig


def _sequence(d: LogData, plt: Any) -> Any:
    reads = d.meas[d.meas["kind"] == "read"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    scale, unit = axis_unit(reads["conductance"].to_numpy(), "S")
    for (r, c), grp in list(reads.groupby(["row", "col"]))[:8]:
        ax.plot(np.arange(len(grp)), grp["conductance"] / scale, marker=".", lw=1,
                label=f"({r}, {c})")
    ax.set_xlabel("read # of the cell")
    ax.set_ylabel(f"G ({unit})")
    ax.set_title("every read of the sequence")
    ax.legend(fontsize=7)
    return fig


PLOTS: dict[str, Callable[[LogData, Any], Any]] = {
    "forming": _forming, "switch_seeker": _switch, "multistate": _multistate,
    "retention": _retention, "endurance": _endurance, "curve_tracer": _curves,
    "volatility": _volatility, "sequence": _sequence,
}


def plot_protocol(log: str | Path, out: str | Path) -> Path | None:
    """Save the protocol's figure of `log` as PNG `out`; None if the protocol has no figure
    of its own here (write-verify, converge, read maps: `session_plots.plot_session`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with LogReader(log) as reader:
        draw = PLOTS.get(reader.info.protocol)
        if draw is None:
            return None
        data = LogData(reader)
    fig = draw(data, plt)
    info = data.info
    fig.suptitle(f"{info.protocol} on {info.backend.get('backend', '?')} "
                 f"{info.shape[0]}x{info.shape[1]}")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
