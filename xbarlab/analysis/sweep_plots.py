"""Tables and plots of a sweep's merged results: a metric against one or two swept axes.

Points that differ only by seed are aggregated (mean and standard deviation); axes beyond the
x axis and the curve axis become one panel each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbarlab.config import ConfigError

PARAM = "param."
SEED_AXES = ("param.seed", "param.sim.seed", "param.eval_seed")
PREFERRED_METRICS = ("in_tolerance_share", "share_95.hardware_aware", "g_median")
NOT_METRICS = ("index", "wall_time_s", "operations")
LABELS = {
    "in_tolerance_share": "cells in tolerance at the final read",
    "median_error": "median |error| of G",
    "max_error": "worst |error| of G",
    "pulses_per_cell": "pulses per cell",
    "param.sim.r_wire_row": "row wire segment (Ω)",
    "param.sim.r_wire_col": "column wire segment (Ω)",
    "param.sim.rows": "rows",
    "param.protocol.params.read_scheme": "read scheme",
    "param.protocol.params.pulse_scheme": "pulse scheme",
}


@dataclass(frozen=True, slots=True)
class SweepColumns:
    """Which columns a report uses."""

    metric: str
    x: str | None
    hue: str | None
    axes: list[str]  # every swept axis except seeds, x and hue first


def _axes(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(PARAM) and c not in SEED_AXES]


def _column(frame: pd.DataFrame, name: str, what: str, allowed: list[str]) -> str:
    for candidate in (name, PARAM + name):
        if candidate in allowed:
            return candidate
    shown = ", ".join(c.removeprefix(PARAM) for c in allowed) or "(none)"
    raise ConfigError(f"--{what} {name}: not in the table; choose one of {shown}")


def _independent(axes: list[str], frame: pd.DataFrame) -> list[str]:
    """`axes` without those that change together with an earlier one (a `zip` group): they
    add no information to a table or a plot."""
    kept: list[str] = []
    text = frame[axes].astype(str)
    for a in axes:
        n = text[a].nunique()
        if not any(text[b].nunique() == n == len(text[[a, b]].drop_duplicates()) for b in kept):
            kept.append(a)
    return kept


def choose_columns(
    frame: pd.DataFrame, metric: str | None, x: str | None, hue: str | None
) -> SweepColumns:
    """The metric, x and curve columns (defaults: the usual result, the first varied axes)."""
    if frame.empty:
        raise ConfigError("the sweep table has no rows")
    numeric = [c for c in frame.columns if not c.startswith(PARAM) and c not in NOT_METRICS
               and pd.api.types.is_numeric_dtype(frame[c])]
    if metric is None:
        metric = next((m for m in PREFERRED_METRICS if m in numeric), None) or (
            numeric[0] if numeric else None)
        if metric is None:
            raise ConfigError("the sweep table has no numeric result column")
    else:
        metric = _column(frame, metric, "metric", numeric)
    axes = _axes(frame)
    varied = _independent([a for a in axes if frame[a].astype(str).nunique() > 1], frame)
    x = _column(frame, x, "x", axes) if x else (varied[0] if varied else None)
    rest = [a for a in varied if a != x]
    hue = _column(frame, hue, "hue", axes) if hue else (rest[0] if rest else None)
    order = [a for a in (x, hue) if a] + [a for a in varied if a not in (x, hue)]
    return SweepColumns(metric, x, hue, order)


def summary_table(frame: pd.DataFrame, cols: SweepColumns) -> pd.DataFrame:
    """Mean, spread and count of the metric per combination of the swept axes (seeds pooled)."""
    by = cols.axes
    ok = frame["status"].astype(str) if "status" in frame else pd.Series("", index=frame.index)
    done = (frame["completed"].fillna(False).astype(bool) if "completed" in frame
            else pd.Series(False, index=frame.index))
    work = frame.assign(_failed=ok.isin(["error", "failed", "aborted"]) & ~done)
    if not by:
        g = work
        out = pd.DataFrame({
            "points": [len(g)], "mean": [g[cols.metric].mean()],
            "std": [g[cols.metric].std(ddof=0)], "failed": [int(g._failed.sum())],
        })
        return out
    keyed = work.assign(**{a: work[a].astype(str) for a in by})
    agg = keyed.groupby(by, sort=False).agg(
        points=(cols.metric, "size"), mean=(cols.metric, "mean"),
        std=(cols.metric, lambda s: float(np.std(s.to_numpy(dtype=float)))),
        failed=("_failed", "sum"),
    ).reset_index()
    return agg.rename(columns={"mean": "mean", "std": "std",
                               **{a: a.rsplit(".", 1)[-1] for a in by}})


def _label(col: str) -> str:
    return LABELS.get(col, col.removeprefix(PARAM))


def _sortable(values: pd.Series) -> tuple[list[Any], bool]:
    uniq = list(dict.fromkeys(values.tolist()))
    numeric = all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
                  for v in uniq)
    return (sorted(uniq) if numeric else uniq), numeric


def plot_sweep(frame: pd.DataFrame, cols: SweepColumns, out: str | Path) -> Path:
    """Metric vs x (mean +- std over seeds), one curve per hue value, one panel per other
    combination of axes; saved to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facets = [a for a in cols.axes if a not in (cols.x, cols.hue)]
    groups = (list(frame.groupby([frame[a].astype(str) for a in facets], sort=False))
              if facets else [((), frame)])
    n = len(groups)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False,
                            sharey=True, constrained_layout=True)
    for k, (key, sub) in enumerate(groups):
        ax = axs[k // ncol][k % ncol]
        hues = _sortable(sub[cols.hue])[0] if cols.hue else [None]
        for h in hues:
            part = sub if h is None else sub[sub[cols.hue] == h]
            if cols.x is None:
                xs: list[Any] = [0]
                stats = [part[cols.metric].to_numpy(dtype=float)]
                numeric = True
            else:
                xs, numeric = _sortable(part[cols.x])
                stats = [part[part[cols.x] == v][cols.metric].to_numpy(dtype=float) for v in xs]
            pos = xs if numeric else list(range(len(xs)))
            mean = [float(np.nanmean(s)) if s.size else np.nan for s in stats]
            std = [float(np.nanstd(s)) if s.size else np.nan for s in stats]
            label = None if h is None else f"{_label(cols.hue or '')} = {h}"
            ax.errorbar(pos, mean, yerr=std, marker="o", capsize=3, label=label)
            if not numeric:
                ax.set_xticks(pos, [str(v) for v in xs])
        keys = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{_label(a)} = {v}" for a, v in zip(facets, keys, strict=False))
        ax.set_title(title or "all points", fontsize=10)
        ax.set_xlabel(_label(cols.x) if cols.x else "")
        ax.grid(alpha=0.3)
        if cols.hue:
            ax.legend(fontsize=8)
    for k in range(n, nrow * ncol):
        axs[k // ncol][k % ncol].set_visible(False)
    for row in axs:
        row[0].set_ylabel(_label(cols.metric))
    seeds = [a for a in SEED_AXES if a in frame and frame[a].nunique() > 1]
    note = f" (mean ± std over {frame[seeds[0]].nunique()} seeds)" if seeds else ""
    fig.suptitle(f"{_label(cols.metric)}{note}", fontsize=11)
    path = Path(out)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
