"""The outcome of each characterisation protocol as table rows a person reads (units with µ)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.units import si

Rows = list[tuple[str, str]]


def _cells_line(cells: list[Any], limit: int = 8) -> str:
    return ", ".join(str(tuple(c)) for c in cells[:limit]) + (" ..." if len(cells) > limit else "")


def _forming(value: list[Any]) -> Rows:
    formed = [o for o in value if o.formed]
    rows = [("cells formed", f"{len(formed)} / {len(value)}")]
    v = [o.v_formed for o in formed if o.v_formed is not None]
    if v:
        rows.append(("forming amplitude", f"median {si(float(np.median(v)), 'V')}, "
                     f"min {si(min(v), 'V')}, max {si(max(v), 'V')}"))
    w = [o.width_formed for o in formed if o.width_formed is not None]
    if w:
        rows.append(("forming width", f"median {si(float(np.median(w)), 's')}"))
    rows.append(("pulses", f"{sum(o.n_pulses for o in value)} "
                 f"(max {max(o.n_pulses for o in value)} per cell)"))
    g_med = float(np.median([o.g_final for o in value]))
    rows.append(("G after forming", f"median {si(g_med, 'S')}"))
    hits = [o.cell for o in value if o.compliance]
    if hits:
        rows.append(("compliance hits", _cells_line(hits)))
    bad = [o.cell for o in value if not o.formed]
    if bad:
        rows.append(("not formed", _cells_line(bad)))
    return rows


def _switch(value: list[Any]) -> Rows:
    pol: dict[str, int] = {}
    for o in value:
        pol[o.polarity] = pol.get(o.polarity, 0) + 1
    rows = [("polarity", ", ".join(f"{k}: {n}" for k, n in sorted(pol.items())))]
    for name, attr in (("SET threshold", "positive"), ("RESET threshold", "negative")):
        th = [getattr(o, attr).threshold for o in value if getattr(o, attr).threshold is not None]
        if th:
            rows.append((name, f"median {si(float(np.median(th)), 'V')} "
                         f"({len(th)} / {len(value)} cells switched)"))
        else:
            rows.append((name, f"none of {len(value)} cells switched"))
    return rows


def _converge(value: list[Any]) -> Rows:
    n = len(value)
    conv = sum(o.converged for o in value)
    pulses = [o.n_pulses for o in value]
    err = [abs(o.g_final - o.target) / o.target for o in value]
    rows = [("cells converged", f"{conv} / {n} ({conv / max(n, 1):.0%})"),
            ("pulses", f"{sum(pulses)} (per cell: mean {np.mean(pulses):.1f}, max {max(pulses)})"),
            ("final |error|", f"median {np.median(err):.2%}, max {max(err):.2%}")]
    failed = [o for o in value if not o.converged]
    if failed:
        rows.append(("not converged", "; ".join(f"{o.cell}: {o.reason}" for o in failed[:5])
                     + (" ..." if len(failed) > 5 else "")))
    return rows


def _multistate(value: list[Any]) -> Rows:
    rows: Rows = []
    for o in value[:16]:
        sep = o.separation_in_spreads
        rows.append((f"cell {o.cell}", f"{o.n_levels} levels, {si(o.levels[0], 'S')} .. "
                     f"{si(o.levels[-1], 'S')}, min separation {si(o.min_separation, 'S')}"
                     + (f" ({sep:.0f} x the largest spread)" if np.isfinite(sep) else "")))
    levels = [o.n_levels for o in value]
    rows.append(("levels per cell", f"median {np.median(levels):.0f}, min {min(levels)}, "
                 f"max {max(levels)}"))
    return rows


def _retention(value: Any) -> Rows:
    drift = value.drift
    return [("cells", str(len(value.cells))), ("reads", f"{len(value.times)} at "
             f"{si(value.times[1] if len(value.times) > 1 else 0, 's')} .. "
             f"{si(value.times[-1], 's')}"),
            ("G at t = 0", f"median {si(float(np.median(value.g[0])), 'S')}"),
            ("relative change at the end", f"median {np.median(drift):+.2%}, "
             f"worst {drift[np.argmax(np.abs(drift))]:+.2%}")]


def _endurance(value: list[Any]) -> Rows:
    rows: Rows = []
    for o in value[:16]:
        last = o.checks[-1] if o.checks else None
        state = f"failed ({o.failed}) at cycle {o.cycles}" if o.failed else (
            f"survived {o.cycles} cycles")
        if last:
            state += (f"; last check G_on {si(last[1], 'S')}, G_off {si(last[2], 'S')}, "
                      f"ratio {last[1] / last[2]:.2f}")
        rows.append((f"cell {o.cell}", state))
    return rows


def _curves(value: list[Any]) -> Rows:
    rows: Rows = []
    for o in value[:16]:
        i = np.abs(o.currents[np.isfinite(o.currents)])
        g = o.g_read[np.isfinite(o.g_read)]
        text = f"{o.voltages.shape[0]} cycles of {o.voltages.shape[1]} steps"
        if i.size:
            text += f", |I| max {si(float(i.max()), 'A')}"
        if g.size:
            text += f", G at read {si(float(g.min()), 'S')} .. {si(float(g.max()), 'S')}"
        rows.append((f"cell {o.cell}", text))
    return rows


def _volatility(value: list[Any]) -> Rows:
    rows: Rows = []
    for o in value[:16]:
        tau = o.tau[np.isfinite(o.tau)]
        rows.append((f"cell {o.cell}", f"change retained after {si(o.times[0, -1], 's')}: "
                     f"{np.nanmean(o.retained):.1%}"
                     + (f", relaxation time {si(float(np.median(tau)), 's')}" if tau.size
                        else ", no relaxation seen")))
    return rows


def _sequence(value: list[Any]) -> Rows:
    return [("steps run", str(len(value)))]


SUMMARIES = {"forming": _forming, "switch_seeker": _switch, "converge": _converge,
             "multistate": _multistate, "retention": _retention, "endurance": _endurance,
             "curve_tracer": _curves, "volatility": _volatility, "sequence": _sequence}


def summary_rows(kind: str, value: Any) -> Rows:
    """Rows describing a protocol's returned value (none when the run returned nothing)."""
    fn = SUMMARIES.get(kind)
    if fn is None or value is None or (isinstance(value, list) and not value):
        return []
    return fn(value)
