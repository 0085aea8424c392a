"""The relations fitted besides the switching steps: read I-V nonlinearity, window clip levels
and retention drift, each turned into `Estimate`s (or a warning saying why not).

Order matters: ``iv.b`` and ``r_on``/``r_off`` enter the read factor and the clip the rate
fit predicts pulses through, so `fit_before_rates` returns the base preset with them updated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_data import Estimate, LogData
from xbarlab.analysis.calibrate_disturb import DisturbFit, disturb_data, fit_disturb
from xbarlab.analysis.calibrate_iv import MIN_IV_STEPS, IVFit, fit_iv
from xbarlab.analysis.calibrate_retention import DriftFit, fit_drift
from xbarlab.analysis.calibrate_window import WindowFit, fit_window
from xbarlab.sim.presets import CompactPreset
from xbarlab.sim.tio2 import read_factor, switching_bound

KEPT_REASONS = {
    "iv.a": "no electrical measurement separates it from the state resistance scale: every "
            "current is a/R times a function of V",
    "retention.t0": "only t0 + the devices' age at the retention start enters, and the log "
                    "does not hold that age",
    **{f"{q}.{k}": "not fitted: the switching bound r0 + r1 |V| shows only as saturation "
                   "plateaus at two or more amplitudes where it lies inside [R_on, R_off] "
                   "(pulse trains long enough to reach it); write-verify steps stop far from "
                   "it and endurance at the usual amplitudes saturates on the clip levels"
       for q in ("set", "reset") for k in ("r0", "r1")},
}


@dataclass
class MoreFits:
    """What the report plots of these relations (None: not fitted)."""

    iv: IVFit | None = None
    window: WindowFit | None = None
    drift: DriftFit | None = None
    disturb: DisturbFit | None = None


def fit_before_rates(p: CompactPreset, logs: list[LogData], base: str,
                     estimates: list[Estimate], warnings: list[str], more: MoreFits
                     ) -> CompactPreset:
    """Fit iv.b, then r_on / r_off; return `p` with the fitted values in."""
    iv = fit_iv(logs, p.iv.b)
    if iv is None:
        warnings.append(f"no I-V sweep with >= {MIN_IV_STEPS} steps of measured current up to "
                        f">= 0.3 V (curve tracer, read_at: both): iv.b kept from {base}")
    else:
        more.iv = iv
        estimates.append(Estimate("iv.b", iv.b, iv.b_se, len(iv.v), "1/V",
                                  f"I-V steps (current at bias, read before), {iv.n_sweeps} "
                                  f"sweep legs, rms {iv.rel_rms:.2%}"))
        p = p.model_copy(update={"iv": p.iv.model_copy(update={"b": iv.b})})
        if iv.rel_rms > 0.05:
            warnings.append(f"I-V fit residuals are large (rms {iv.rel_rms:.1%}): the column "
                            "current under a V/2 or V/3 scheme includes half-selected cells "
                            "that the dwell disturbs; sweep with pulse_scheme: grounded")
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    # k = a sinh(b v) / v: d ln k / d b = v coth(b v); a kept iv.b adds nothing here (the
    # rates that rest on it are flagged instead, `calibrate_unchecked`)
    k_rel_se = (p.v_read / float(np.tanh(p.iv.b * p.v_read)) * more.iv.b_se
                if more.iv is not None else 0.0)
    win = fit_window(logs, k, k_rel_se)
    if win is None:
        warnings.append("no cell cycled into saturation at both ends (endurance-like SET/RESET "
                        f"with reads): r_on and r_off kept from {base}")
        return p
    more.window = win
    update = {}
    n = len(win.g_lrs)
    # a plateau is the clip only where the base's bound lies beyond it
    if float(switching_bound(p.set, win.v_set).max()) < win.r_on:
        update["r_on"] = win.r_on
        estimates.append(Estimate("r_on", win.r_on, win.se("r_on"), n, "ohm",
                                  "LRS saturation plateaus of cycled cells (k / G)"))
    else:
        warnings.append(f"the LRS plateaus lie above the base's SET bound at their amplitude: "
                        f"they measure the bound, not R_on; r_on kept from {base}")
    if float(switching_bound(p.reset, win.v_reset).min()) > win.r_off:
        update["r_off"] = win.r_off
        estimates.append(Estimate("r_off", win.r_off, win.se("r_off"), n, "ohm",
                                  "HRS saturation plateaus of cycled cells (k / G)"))
    else:
        warnings.append(f"the HRS plateaus lie below the base's RESET bound at their "
                        f"amplitude: they measure the bound, not R_off; r_off kept from {base}")
    return p.model_copy(update=update) if update else p


def fit_drift_estimates(p: CompactPreset, logs: list[LogData], base: str,
                        estimates: list[Estimate], warnings: list[str], more: MoreFits) -> None:
    """Fit the retention drift when the logs hold a retention segment."""
    if p.retention is None:
        return
    tau = p.volatility.tau if p.volatility is not None else 0.0
    fit = fit_drift(logs, p.retention.t0, tau)
    if fit is None:
        warnings.append("no retention segment (reads of >= 20 devices over >= 4 times spanning "
                        f"a decade, no pulse between): retention drift kept from {base}")
        return
    more.drift = fit
    n = len(fit.d)
    estimates.append(Estimate("retention.drift_per_decade", fit.drift, fit.drift_se, n, "1",
                              f"median per-device drift of {fit.n_segments} retention "
                              "segment(s)"))
    estimates.append(Estimate("retention.d2d_log_std", fit.log_std, fit.log_std_se, n, "1",
                              "robust spread of log per-device drift less estimation noise"))


def refine_with_disturb(p: CompactPreset, logs: list[LogData], fits: list[Any],
                        estimates: list[Estimate], warnings: list[str], more: MoreFits,
                        base: str, stuck: np.ndarray[Any, Any]) -> None:
    """Refit each polarity's t (and so a) on the half-select disturb of the write-verify
    logs' programmed cells (`xbarlab.analysis.calibrate_disturb`); `fits` are the step fits
    (`calibrate.RateFit`), updated in place with the estimates."""
    data, offset = [], 0
    for d in logs:
        dd = disturb_data(d, offset)
        offset += d.cell_pulses.size
        if dd is not None:
            keep = ~np.isin(dd.device, stuck)  # a stuck cell does not move
            data.append(type(dd)(device=dd.device[keep], g_done=dd.g_done[keep],
                                 g_map=dd.g_map[keep], v=dd.v[keep], width=dd.width[keep],
                                 count=dd.count[keep]))
    if not data:
        warnings.append("no read map after programming (write-verify logs hold one): the "
                        "half-select disturb is not measured and t rests on the steps alone")
        return
    by_pol = {("set" if f.setting else "reset"): f for f in fits}
    offsets = {}
    for q in ("set", "reset"):
        arr = np.zeros(offset)
        if q in by_pol:
            arr[by_pol[q].device_ids] = by_pol[q].offsets_all
        offsets[q] = arr
    ref = {q: (f.v_ref, f.rate_ref) for q, f in by_pol.items()}
    prior = {q: (f.t, float(np.sqrt(f.cov[1, 1])) if f.t_fitted else 1.0)
             for q, f in by_pol.items()}
    fit = fit_disturb(p, data, ref, prior, offsets)
    if fit is None:
        return
    more.disturb = fit
    for q, f in by_pol.items():
        t, t_se = fit.t[q], fit.t_se[q]
        a = f.rate_ref / float(np.expm1(f.v_ref / t))
        dla_dt = f.v_ref * np.exp(f.v_ref / t) / (t**2 * np.expm1(f.v_ref / t))
        a_se = a * float(np.sqrt(max(f.cov_ref[0, 0], 0.0) + (dla_dt * t_se) ** 2))
        f.t_source = "steps+disturb" if f.t_fitted else "disturb"
        f.t, f.a, f.t_fitted = t, a, True
        n = len(f.g0) + fit.n_cells
        method = (f"pulse steps ({len(f.g0)}) and half-select disturb of {fit.n_cells} cells "
                  "(model pulse integration)")
        estimates[:] = [e for e in estimates if e.name not in (f"{q}.a", f"{q}.t")]
        estimates.append(Estimate(f"{q}.a", a, a_se, n, "1/(ohm s)", method))
        estimates.append(Estimate(f"{q}.t", t, t_se, n, "V", method))
        warnings[:] = [w for w in warnings if not w.startswith(f"{q}: the steps are")]
