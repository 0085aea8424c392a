"""Calibrate the TiO2 compact model (`xbarlab.sim.tio2`) to a lab's devices from its logs.

Each parameter comes from the measurements that determine it:

- ``set.a, set.t`` / ``reset.a, reset.t`` (switching rate s(|V|) = a (exp(|V|/t) - 1)): every
  write-verify pulse step (read, pulse, read of one cell) is predicted with the model's own
  pulse integration (`tio2.integrate_pulse`, `switching_rate`, `switching_bound`) from the
  read before, and the predicted read after is fitted to the measured one
  (`scipy.optimize.least_squares`, residuals relative to G) with a per-device log-rate offset
  (a random effect, shrunk to zero with the base's device spread) so that device-to-device
  spread does not bias the population rate: ``a`` is the median device's rate. The
  prediction averages the cycle-to-cycle noise on each change (`calibrate_rates`). Standard errors
  from the Jacobian (Gauss-Newton covariance scaled by the residual variance, the level and
  the devices' mean offset taken together), plus the spread of the device offsets over the
  number of devices, plus half the disagreement between the rate the smaller and the larger
  half of the steps give (a model that misses something shows it there;
  measured: 10-15 % on truths whose steps move G by ~20 %).
- ``variability.d2d_rate``: the spread of those per-device offsets, less the part the kept
  ``d2d_v`` explains (a threshold shift dv scales the rate by exp(-dv/t)), per polarity at
  its own t; the two pooled, their disagreement in the standard error.
- ``read_noise``: read-to-read differences of consecutive reads with no pulse in between
  (std% = slope R + intercept, fitted to the binned std vs R with `scipy.optimize.curve_fit`).
- ``stuck.lrs_rate`` / ``stuck.hrs_rate``: cells pulsed up to the largest amplitude of the log
  whose reads stayed within 2 % over at least `STUCK_MIN_PULSES` pulses, split at the base
  preset's ``stuck.hrs_high``.

- ``set.t`` / ``reset.t`` again, with the half-select disturb each programmed cell saw before
  the read map (`calibrate_disturb`, via `calibrate_relations.refine_with_disturb`);
- ``iv.b``, ``r_on``/``r_off`` and the retention drift from I-V sweeps, cycling into
  saturation and retention runs (`calibrate_iv`, `calibrate_window`, `calibrate_retention`).

Everything else is kept from the base preset, listed as kept in the ``calibration`` block and
marked "kept from BASE (why)" in its source. A fit is *determined* only when its standard error
is at most 10 %/3 of its value; one within its value is written as *estimated* (not
determined), one beyond it kept from the base, each with a warning; a rate prefactor ``a``
the logs do not determine is written as *derived* (the value that reproduces the measured
rate at the steps' median amplitude), see `calibrate_determined`.
Rates fitted through an I-V law or clip levels the logs did not determine (no I-V sweep, no
cycling into saturation) are estimated, not determined, with a warning (`calibrate_unchecked`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import optimize

from xbarlab.analysis.calibrate_data import (
    CalibrationInputError,
    Estimate,
    FloatArray,
    LogData,
    load_logs,
)
from xbarlab.analysis.calibrate_determined import drop_undetermined, settle_rates
from xbarlab.analysis.calibrate_rates import (
    MIN_D2D_DEVICES,
    MIN_STEPS,
    RateFit,
    d2d_rate_estimate,
    fit_rates,
)
from xbarlab.analysis.calibrate_relations import (
    KEPT_REASONS,
    MoreFits,
    fit_before_rates,
    fit_drift_estimates,
    refine_with_disturb,
)
from xbarlab.analysis.calibrate_stuck import (
    STUCK_MIN_PULSES,
    clip_reads,
    stuck_cells,
    stuck_devices,
    stuck_fractions,
)
from xbarlab.analysis.calibrate_unchecked import flag_unchecked
from xbarlab.config import load_yaml
from xbarlab.sim.presets import CompactPreset, PresetError, load_preset, preset_dir
from xbarlab.sim.tio2 import read_factor

__all__ = ["Calibration", "CalibrationInputError", "Estimate", "RateFit", "calibrate",
           "clip_reads", "fit_rates", "stuck_cells", "write_preset"]


MIN_PAIRS = 50  # read pairs below which the read noise is not fitted


@dataclass
class NoiseFit:
    r_bins: FloatArray  # ohm
    std_pct: FloatArray  # per bin
    se_pct: FloatArray
    slope: float
    intercept: float
    cov: FloatArray
    n: int


@dataclass
class Calibration:
    """Fitted parameters, the preset they make, and what the report needs."""

    base: str
    preset: dict[str, Any]  # the YAML document
    estimates: list[Estimate]
    kept: list[str]
    warnings: list[str]
    rate_fits: list[RateFit] = field(default_factory=list)
    noise_fit: NoiseFit | None = None
    logs: list[LogData] = field(default_factory=list)
    more: MoreFits = field(default_factory=MoreFits)  # I-V, window, drift fits
    estimated: list[Estimate] = field(default_factory=list)  # written, not determined


# --------------------------------------------------------------------------- base preset


def _base_file(base: str) -> Path:
    if base.endswith((".yaml", ".yml")):
        return Path(base)
    return preset_dir() / f"{base}.yaml"


def load_base(base: str) -> tuple[CompactPreset, dict[str, Any]]:
    """The base preset, validated and as its raw YAML document (sources kept)."""
    try:
        preset = load_preset(base)
    except PresetError as exc:
        raise CalibrationInputError(f"--base {base}: {str(exc).splitlines()[0]}") from None
    if not isinstance(preset, CompactPreset):
        raise CalibrationInputError(f"--base {base}: a {preset.kind} preset; calibration needs "
                                    "a compact one (e.g. tio2-o921c)")
    raw = load_yaml(_base_file(base))
    if not isinstance(raw, dict):
        raise CalibrationInputError(f"--base {base}: not a preset mapping")
    return preset, raw


# --------------------------------------------------------------------------- read noise


def _line(r: FloatArray, slope: float, intercept: float) -> FloatArray:
    return slope * r + intercept


def fit_read_noise(p: CompactPreset, logs: list[LogData]) -> NoiseFit | None:
    """std% = slope R + intercept from read-to-read differences; None if too few pairs."""
    ga = np.concatenate([d.ga for d in logs])
    gb = np.concatenate([d.gb for d in logs])
    if len(ga) < MIN_PAIRS:
        return None
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    gm = 0.5 * (ga + gb)
    rel = (gb - ga) / gm * 100.0 / np.sqrt(2.0)  # one read's relative error, %
    r = k / gm
    nbins = int(np.clip(len(r) // 100, 2, 10))
    edges = np.quantile(r, np.linspace(0, 1, nbins + 1))
    idx = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, nbins - 1)
    rb, sd, se = [], [], []
    for b in range(nbins):
        x = rel[idx == b]
        if len(x) < 10:
            continue
        # robust std (MAD): a pulse-free pair that straddles a rare glitch does not dominate
        s = 1.4826 * float(np.median(np.abs(x - np.median(x))))
        rb.append(float(np.mean(r[idx == b])))
        sd.append(s)
        se.append(1.17 * s / np.sqrt(2.0 * (len(x) - 1)))  # MAD efficiency ~ 0.37 of std
    if len(rb) < 2:
        return None
    rba, sda, sea = np.asarray(rb), np.asarray(sd), np.asarray(se)
    popt, pcov = optimize.curve_fit(_line, rba, sda, sigma=sea, absolute_sigma=True,
                                    p0=[p.read_noise.slope_pct_per_ohm,
                                        p.read_noise.intercept_pct])
    return NoiseFit(r_bins=rba, std_pct=sda, se_pct=sea, slope=float(popt[0]),
                    intercept=float(popt[1]), cov=np.asarray(pcov), n=len(ga))


# --------------------------------------------------------------------------- the whole


def _refit_at_disturb_t(p: CompactPreset, logs: list[LogData], fits: list[RateFit],
                        fixed_t: list[bool], estimates: list[Estimate],
                        rates: list[dict[str, Any]]) -> None:
    """A polarity whose steps did not determine t had its rate at v_ref fitted at the base's
    t; once the disturb has determined t, the steps are refitted at that t (a follows)."""
    for i, f in enumerate(fits):
        if f.setting not in fixed_t or not f.t_fitted:
            continue
        q = "set" if f.setting else "reset"
        pol = getattr(p, q).model_copy(update={"t": f.t})
        new = fit_rates(p.model_copy(update={q: pol}), logs, f.setting)
        if new is None:
            continue
        t_se = next(e.stderr for e in estimates if e.name == f"{q}.t")
        new.t_fitted, new.t_source = True, "disturb"
        new.cov[1, 1] = t_se**2
        fits[i] = new
        for j, e in enumerate(estimates):
            if e.name == f"{q}.a":
                dla_dt = new.v_ref * np.exp(new.v_ref / new.t) / (
                    new.t**2 * np.expm1(new.v_ref / new.t))
                se = new.a * _se(new.cov_ref[0, 0] + (dla_dt * t_se) ** 2)
                estimates[j] = Estimate(e.name, new.a, se, e.n, e.unit, e.method)
        for r in rates:
            if r["polarity"] == q:
                r.update(rate=new.rate_ref, rel_stderr=_se(new.cov_ref[0, 0]), t_from="disturb")


def _se(var: float) -> float:
    return float(np.sqrt(var)) if np.isfinite(var) and var >= 0 else float("nan")


def calibrate(paths: list[str | Path], base: str = "tio2-o921c", name: str = "calibrated"
              ) -> Calibration:
    """Fit what the logs determine, keep the rest from `base`; see the module docstring."""
    p, raw = load_base(base)
    logs = load_logs(paths)
    estimates: list[Estimate] = []
    warnings: list[str] = []
    more = MoreFits()
    # the I-V law and the clip levels first: the rates are fitted through them
    p = fit_before_rates(p, logs, base, estimates, warnings, more)
    fits: list[RateFit] = []
    rates: list[dict[str, Any]] = []
    derived: list[Estimate] = []
    for setting, pol in ((True, "set"), (False, "reset")):
        fit = fit_rates(p, logs, setting)
        if fit is None:
            warnings.append(f"{pol}: fewer than {MIN_STEPS} {pol.upper()} pulse steps; "
                            f"{pol}.a and {pol}.t kept from {base}")
            continue
        fits.append(fit)
        n = len(fit.g0)
        estimates.append(Estimate(f"{pol}.a", fit.a, fit.a * _se(fit.cov[0, 0]), n,
                                  "1/(ohm s)", "pulse steps, model pulse integration"))
        if fit.t_fitted:
            estimates.append(Estimate(f"{pol}.t", fit.t, _se(fit.cov[1, 1]), n, "V",
                                      "pulse steps, model pulse integration"))
        else:
            warnings.append(f"{pol}: the steps are (nearly) all at one amplitude "
                            f"({fit.v_ref:.3g} V): {pol}.t kept from {base}, {pol}.a fitted "
                            "at that t (it reproduces the rate at that amplitude only)")
        rates.append({"polarity": pol, "v_ref": fit.v_ref, "rate": fit.rate_ref,
                      "rel_stderr": _se(fit.cov_ref[0, 0])})
        if fit.n_devices < 20:
            warnings.append(f"{pol}: only {fit.n_devices} devices; the rate is one of few")
    if fits:
        fixed_t = [f.setting for f in fits if not f.t_fitted]
        refine_with_disturb(p, logs, fits, estimates, warnings, more, base,
                            stuck_devices(logs, clip_reads(p)))
        _refit_at_disturb_t(p, logs, fits, fixed_t, estimates, rates)
        derived = settle_rates(p, logs, fits, estimates, warnings, rates, base, fit_rates)
        d2d = d2d_rate_estimate(p, fits)
        if d2d is None:
            warnings.append(f"fewer than {MIN_D2D_DEVICES} devices with 5 sharp pulse steps "
                            "in both polarities: d2d_rate kept (one polarity alone cannot "
                            "check the part of the spread the kept d2d_v explains)")
        else:
            estimates.append(d2d)
    noise = fit_read_noise(p, logs)
    if noise is None:
        warnings.append(f"fewer than {MIN_PAIRS} pulse-free read pairs: read_noise kept "
                        f"from {base} (log write-verify with n_verify >= 2 to measure it)")
    elif noise.slope < 0 or noise.intercept < 0:  # sampling noise across 0: not a fit
        warnings.append(f"read-noise fit outside its domain (slope {noise.slope:.3g} %/ohm, "
                        f"intercept {noise.intercept:.3g} %; both must be >= 0): read_noise "
                        f"kept from {base}")
    else:
        estimates.append(Estimate("read_noise.slope_pct_per_ohm", noise.slope,
                                  _se(noise.cov[0, 0]), noise.n, "%/ohm",
                                  "read-to-read differences, binned std vs R"))
        estimates.append(Estimate("read_noise.intercept_pct", noise.intercept,
                                  _se(noise.cov[1, 1]), noise.n, "%",
                                  "read-to-read differences, binned std vs R"))
    lrs, hrs, tried, total = stuck_fractions(p, logs)
    if tried:
        for what, count in (("lrs_rate", lrs), ("hrs_rate", hrs)):
            frac = count / total
            estimates.append(Estimate(f"stuck.{what}", frac,
                                      float(np.sqrt(max(frac, 1 / total) * (1 - frac) / total)),
                                      total, "1", "cells whose reads stayed within 2 % "
                                      f"over >= {STUCK_MIN_PULSES} pulses up to the cap"))
        if lrs + hrs < 10:
            warnings.append(f"only {lrs + hrs} stuck cells seen: stuck rates rest on Poisson "
                            "counts (relative error ~ 1/sqrt(count))")
    else:
        warnings.append(f"no cell had {STUCK_MIN_PULSES} pulses: stuck rates kept")
    fit_drift_estimates(p, logs, base, estimates, warnings, more)
    estimates, loose = drop_undetermined(estimates, warnings, base)
    estimates, estimated = flag_unchecked(estimates, derived + loose, warnings, rates, base)
    doc = _preset_doc(raw, name, base, estimates, logs, warnings, estimated)
    doc["calibration"]["rate_at_median_amplitude"] = rates
    try:
        CompactPreset.model_validate({k: v for k, v in doc.items()})
    except Exception as exc:
        raise CalibrationInputError(f"the fitted preset is not valid: {exc}") from None
    kept = doc["calibration"]["kept"]
    return Calibration(base=base, preset=doc, estimates=estimates, kept=kept, warnings=warnings,
                       rate_fits=fits, noise_fit=noise, logs=logs, more=more,
                       estimated=estimated)


_FIELDS = {
    "iv": ["a", "b"], "": ["r_on", "r_off"],
    "set": ["a", "t", "r0", "r1"], "reset": ["a", "t", "r0", "r1"],
    "variability": ["d2d_v", "d2d_rate", "c2c_v", "c2c_rel"],
    "read_noise": ["slope_pct_per_ohm", "intercept_pct"],
    "stuck": ["lrs_rate", "lrs_mean", "lrs_std", "hrs_rate", "hrs_low", "hrs_high"],
    "retention": ["drift_per_decade", "t0", "d2d_log_std"],
}


def _entry(doc: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """The mapping holding field `name` ("sec.key" or a top-level key) and the key."""
    if "." in name:
        sec, key = name.split(".")
        doc[sec] = dict(doc[sec])
        return doc[sec], key
    return doc, name


def _preset_doc(raw: dict[str, Any], name: str, base: str, estimates: list[Estimate],
                logs: list[LogData], warnings: list[str], estimated: list[Estimate]
                ) -> dict[str, Any]:
    doc: dict[str, Any] = {k: v for k, v in raw.items() if k != "calibration"}
    doc["name"] = name
    doc["description"] = (f"{base} calibrated to the devices of {len(logs)} log(s) by "
                          "xbarlab calibrate; see `calibration` for what was fitted")
    fitted = {}
    for e in estimates:
        holder, key = _entry(doc, e.name)
        entry = dict(holder[key]) if isinstance(holder[key], dict) else {}
        holder[key] = {"value": float(e.value), "unit": entry.get("unit", e.unit),
                       "source": f"calibrated: {e.method}, {e.n} points, "
                                 f"std error {e.stderr:.3g}"}
        fitted[e.name] = {"value": float(e.value), "stderr": float(e.stderr), "n": int(e.n),
                          "method": e.method}
    estimated_doc = {}
    for e in estimated:
        holder, key = _entry(doc, e.name)
        entry = dict(holder[key]) if isinstance(holder[key], dict) else {}
        holder[key] = {"value": float(e.value), "unit": entry.get("unit", e.unit),
                       "source": f"calibrated, {e.method}; std error {e.stderr:.3g}"}
        estimated_doc[e.name] = {"value": float(e.value), "stderr": float(e.stderr),
                               "n": int(e.n), "method": e.method}
    kept = []
    for sec, keys in _FIELDS.items():
        if sec and doc.get(sec) is None:
            continue  # the base has no such section
        for k in keys:
            name = f"{sec}.{k}" if sec else k
            if name in fitted or name in estimated_doc:
                continue
            kept.append(name)
            holder, key = _entry(doc, name)
            if isinstance(holder.get(key), dict):
                old = dict(holder[key])
                why = KEPT_REASONS.get(name, "not determined by the logs")
                old["source"] = f"kept from {base} ({why}): {old.get('source', '')}"
                holder[key] = old
    kept += ["v_read", "initial", "window"]
    doc["calibration"] = {
        "base": base,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "logs": [{"path": str(d.path), "run_id": d.run_id,
                  "shape": [int(d.shape[0]), int(d.shape[1])], "pulse_steps": len(d.v),
                  "read_pairs": len(d.ga)} for d in logs],
        "fitted": fitted,
        "estimated": estimated_doc,
        "kept": kept,
        "warnings": list(warnings),
    }
    return doc


def write_preset(cal: Calibration, out: str | Path) -> Path:
    """Write the calibrated preset (YAML, loadable with `--device PATH`)."""
    path = Path(out)
    header = ("# Device preset calibrated by `xbarlab calibrate` (provenance: `calibration`).\n")
    path.write_text(header + yaml.safe_dump(cal.preset, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
