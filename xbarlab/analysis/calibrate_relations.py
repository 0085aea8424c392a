"""The relations fitted besides the switching steps: read I-V nonlinearity, window clip levels
and retention drift, each turned into `Estimate`s (or a warning saying why not).

Order matters: ``iv.b`` and ``r_on``/``r_off`` enter the read factor and the clip the rate
fit predicts pulses through, so `fit_before_rates` returns the base preset with them updated.
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarlab.analysis.calibrate_data import Estimate, LogData
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
}


@dataclass
class MoreFits:
    """What the report plots of these relations (None: not fitted)."""

    iv: IVFit | None = None
    window: WindowFit | None = None
    drift: DriftFit | None = None


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
    win = fit_window(logs, k)
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
