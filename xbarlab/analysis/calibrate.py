"""Calibrate the TiO2 compact model (`xbarlab.sim.tio2`) to a lab's devices from its logs.

Each parameter comes from the measurements that determine it:

- ``set.a, set.t`` / ``reset.a, reset.t`` (switching rate s(|V|) = a (exp(|V|/t) - 1)): every
  write-verify pulse step (read, pulse, read of one cell) is predicted with the model's own
  pulse integration (`tio2.integrate_pulse`, `switching_rate`, `switching_bound`) from the
  read before, and the predicted read after is fitted to the measured one
  (`scipy.optimize.least_squares`, residuals relative to G) with a per-device log-rate offset
  (a random effect, weakly shrunk to zero) so that device-to-device spread does not bias the
  population rate: ``a`` is the median device's rate. Standard errors from the Jacobian
  (Gauss-Newton covariance scaled by the residual variance) plus the spread of the device
  offsets over the number of devices.
- ``variability.d2d_rate``: the spread of those per-device offsets, less the part the kept
  ``d2d_v`` explains (a threshold shift dv scales the rate by exp(-dv/t)); both polarities
  pooled.
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
marked "kept from BASE (why)" in its source; a fit whose standard error exceeds its value is
dropped as not determined (`_drop_undetermined`), with a warning.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import optimize, sparse

from xbarlab.analysis.calibrate_data import (
    CalibrationInputError,
    Estimate,
    FloatArray,
    LogData,
    load_logs,
)
from xbarlab.analysis.calibrate_relations import (
    KEPT_REASONS,
    MoreFits,
    fit_before_rates,
    fit_drift_estimates,
    refine_with_disturb,
)
from xbarlab.config import load_yaml
from xbarlab.sim.presets import CompactPreset, PresetError, load_preset, preset_dir
from xbarlab.sim.tio2 import integrate_pulse, read_factor, switching_bound

__all__ = ["Calibration", "CalibrationInputError", "Estimate", "calibrate", "write_preset"]


MIN_STEPS = 30  # pulse steps per polarity below which rates are not fitted
MIN_PAIRS = 50  # read pairs below which the read noise is not fitted
STUCK_MIN_PULSES = 20
MIN_D2D_DEVICES = 50  # devices with >= 5 steps below which d2d_rate is not fitted
PRIOR_LOG_STD = 1.0  # weak shrinkage of the per-device log-rate offsets


@dataclass
class RateFit:
    """A polarity's rate fit and what the report plots."""

    setting: bool
    a: float
    t: float
    cov: FloatArray  # of (log a, t)
    t_fitted: bool  # False: too few amplitudes, t kept from the base preset
    v_ref: float  # V, the median amplitude of the steps
    rate_ref: float  # s(v_ref), 1/(ohm s)
    cov_ref: FloatArray  # of (log s(v_ref), t)
    offsets: FloatArray  # per-device log-rate offsets (devices with >= 5 steps)
    offsets_var: FloatArray  # estimation variance of each offset
    v_abs: FloatArray
    g0: FloatArray
    g1: FloatArray
    g1_fit: FloatArray
    n_devices: int
    device_ids: np.ndarray[Any, np.dtype[np.int64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64))  # every device fitted
    offsets_all: FloatArray = field(default_factory=lambda: np.zeros(0))  # their offsets
    t_source: str = "steps"  # "steps", "steps+disturb", "disturb" (steps at one amplitude)


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


# --------------------------------------------------------------------------- switching rates


def _predict(
    p: CompactPreset, setting: bool, log_a: float, t: float, offsets: FloatArray,
    dev: np.ndarray[Any, Any], v_abs: FloatArray, width: float, g0: FloatArray,
) -> FloatArray:
    """Read conductance after each pulse of `width` s, by the simulator's own pulse
    integration (`_predict_widths` for pulses of several widths)."""
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    pol = p.set if setting else p.reset
    r0 = np.clip(k / g0, p.r_on, p.r_off)
    rate = np.exp(log_a + offsets[dev]) * np.expm1(v_abs / t)
    r1 = integrate_pulse(r0, switching_bound(pol, v_abs), rate, width, setting=setting)
    return np.asarray(k / np.clip(r1, p.r_on, p.r_off), dtype=np.float64)


def _predict_widths(
    p: CompactPreset, setting: bool, log_a: float, t: float, offsets: FloatArray,
    dev: np.ndarray[Any, Any], v_abs: FloatArray, width: FloatArray, g0: FloatArray,
) -> FloatArray:
    out = np.empty_like(g0)
    for w in np.unique(width):
        sel = width == w
        out[sel] = _predict(p, setting, log_a, t, offsets, dev[sel], v_abs[sel], float(w),
                            g0[sel])
    return out


def fit_rates(p: CompactPreset, logs: list[LogData], setting: bool) -> RateFit | None:
    """Fit `a`, `t` of one polarity (see module docstring); None if too few steps."""
    dev = np.concatenate([d.device for d in logs])
    v = np.concatenate([d.v for d in logs])
    width = np.concatenate([d.width for d in logs])
    g0 = np.concatenate([d.g0 for d in logs])
    g1 = np.concatenate([d.g1 for d in logs])
    sel = (v > 0) if setting else (v < 0)
    sel &= ~np.isin(dev, _stuck_devices(logs))  # a stuck device has no rate to fit
    # no selection on the outcome (a step that ran into R_on/R_off stays: the prediction
    # clips as the device does), else the fastest steps would be dropped and the rate biased
    sel &= width > 0
    if sel.sum() < MIN_STEPS:
        return None
    uniq, dev_i = np.unique(dev[sel], return_inverse=True)
    v_abs, width, g0, g1 = np.abs(v[sel]), width[sel], g0[sel], g1[sel]
    nd = len(uniq)
    pol = p.set if setting else p.reset
    # parameters: log s(v_ref) (the rate at the median amplitude, well determined) and t;
    # a = s(v_ref) / (exp(v_ref/t) - 1) follows
    v_ref = float(np.median(v_abs))
    # t (how the rate grows with |V|) needs steps at several amplitudes
    spread = int(np.sum(v_abs > v_abs.min() + 0.05))
    t_free = spread >= max(20, 0.1 * len(v_abs))
    x0 = np.concatenate([[np.log(pol.a * np.expm1(v_ref / pol.t)), pol.t], np.zeros(nd)])

    def log_a(x: FloatArray) -> float:
        return float(x[0] - np.log(np.expm1(v_ref / x[1])))

    scale = np.ones(len(g0))  # per-step residual scale (relative G), set below
    prior_w = np.array([0.003])

    def residuals(x: FloatArray) -> FloatArray:
        pred = _predict_widths(p, setting, log_a(x), x[1], x[2:], dev_i, v_abs, width, g0)
        return np.concatenate([(pred - g1) / g0 / scale, prior_w * x[2:] / PRIOR_LOG_STD])

    n = len(g0)
    rows = np.arange(n)
    jac = sparse.lil_matrix((n + nd, nd + 2), dtype=int)
    jac[:n, 0] = 1
    jac[:n, 1] = 1 if t_free else 0
    jac[rows, 2 + dev_i] = 1
    jac[n + np.arange(nd), 2 + np.arange(nd)] = 1
    t_lo, t_hi = (0.02, 5.0) if t_free else (pol.t * (1 - 1e-9), pol.t * (1 + 1e-9))
    lb = np.concatenate([[-np.inf, t_lo], np.full(nd, -5.0)])
    ub = np.concatenate([[np.inf, t_hi], np.full(nd, 5.0)])
    x_scale = np.concatenate([[1.0, 0.05], np.ones(nd)])
    res = optimize.least_squares(residuals, x0, jac_sparsity=jac, bounds=(lb, ub),
                                 x_scale=x_scale, method="trf", tr_solver="lsmr")
    # iteratively reweighted: the noise of a step is read noise plus a part proportional to
    # the change itself (cycle-to-cycle), var = s0^2 + c^2 dG^2, fitted to the residuals
    for _ in range(2):
        x = res.x
        change = (_predict_widths(p, setting, log_a(x), x[1], x[2:], dev_i, v_abs, width, g0)
                  - g0) / g0
        r2 = (res.fun[:n] * scale) ** 2
        design = np.column_stack([np.ones(n), change**2])
        coef, *_ = np.linalg.lstsq(design, r2, rcond=None)
        s0, c2 = max(float(coef[0]), 1e-12), max(float(coef[1]), 0.0)
        scale = np.sqrt(s0 + c2 * change**2)
        scale /= float(np.median(scale))
        prior_w[0] = float(np.std(r2**0.5 / scale))  # the residual size, shrinkage ~ N(0, 1)
        res = optimize.least_squares(residuals, x, jac_sparsity=jac, bounds=(lb, ub),
                                     x_scale=x_scale, method="trf", tr_solver="lsmr")
    sigma = float(np.std(res.fun[:n]))
    x = res.x
    j = res.jac.toarray() if sparse.issparse(res.jac) else np.asarray(res.jac)
    try:
        cov_all = np.linalg.pinv(j.T @ j) * sigma**2
    except np.linalg.LinAlgError:
        cov_all = np.full((nd + 2, nd + 2), np.nan)
    cov_ref = cov_all[:2, :2].copy()  # of (log s(v_ref), t)
    counts = np.bincount(dev_i, minlength=nd)
    offsets = x[2:][counts >= 5]
    offsets_var = np.diag(cov_all)[2:][counts >= 5]  # their estimation variance
    # the median device is the population rate: add the sampling spread of the devices
    if len(offsets) > 1:
        cov_ref[0, 0] += float(np.var(offsets, ddof=1)) / len(offsets)
    # to (log a, t): d log a / d t = v_ref exp(v_ref/t) / (t^2 expm1(v_ref/t))
    dla_dt = v_ref * np.exp(v_ref / x[1]) / (x[1] ** 2 * np.expm1(v_ref / x[1]))
    jt = np.array([[1.0, dla_dt], [0.0, 1.0]])
    cov = jt @ cov_ref @ jt.T
    g1_fit = _predict_widths(p, setting, log_a(x), x[1], x[2:], dev_i, v_abs, width, g0)
    if not t_free:
        cov[1, :] = cov[:, 1] = 0.0
    return RateFit(setting=setting, t_fitted=t_free, a=float(np.exp(log_a(x))), t=float(x[1]),
                   cov=cov, v_ref=v_ref, rate_ref=float(np.exp(x[0])), cov_ref=cov_ref,
                   offsets=offsets, offsets_var=offsets_var, v_abs=v_abs, g0=g0, g1=g1,
                   g1_fit=g1_fit, n_devices=nd, device_ids=uniq.astype(np.int64),
                   offsets_all=np.asarray(x[2:], dtype=np.float64))


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


# --------------------------------------------------------------------------- stuck devices


def stuck_cells(d: LogData) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Cells pulsed up to the log's largest amplitude whose reads, over at least
    STUCK_MIN_PULSES pulses, stayed within 2 % (a slow but healthy cell moves at the cap)."""
    with np.errstate(invalid="ignore"):
        still = d.cell_g_range < 0.02
    return np.asarray((d.cell_pulses >= STUCK_MIN_PULSES) & d.cell_at_cap & still, dtype=bool)


def _stuck_devices(logs: list[LogData]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Device ids (as in `LogData.device`) of the stuck cells of every log."""
    ids, offset = [], 0
    for d in logs:
        ids.append(np.flatnonzero(stuck_cells(d)) + offset)
        offset += d.cell_pulses.size
    return np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, dtype=np.int64)


def stuck_fractions(p: CompactPreset, logs: list[LogData]) -> tuple[int, int, int, int]:
    """(stuck LRS, stuck HRS, cells that had >= STUCK_MIN_PULSES pulses, all cells) over the
    logs that pulsed >= 90 % of their cells (whole-array sessions such as write-verify)."""
    lrs = hrs = tried = total = 0
    for d in logs:
        if np.mean(d.cell_pulses > 0) < 0.9:
            continue  # not a whole-array session: its unpulsed cells say nothing
        total += d.cell_pulses.size
        tried += int(np.sum(d.cell_pulses >= STUCK_MIN_PULSES))
        stuck = stuck_cells(d)
        lrs += int(np.sum(stuck & (d.cell_g_last > p.stuck.hrs_high)))
        hrs += int(np.sum(stuck & (d.cell_g_last <= p.stuck.hrs_high)))
    return lrs, hrs, tried, total


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
                            _stuck_devices(logs))
        _refit_at_disturb_t(p, logs, fits, fixed_t, estimates, rates)
        offs = np.concatenate([f.offsets for f in fits])
        offs_var = np.concatenate([f.offsets_var for f in fits])
        # devices whose offset is known to within 0.5 in log (a few saturated I-V or
        # endurance steps pin nothing and would swamp the noise correction)
        sharp = np.isfinite(offs_var) & (offs_var < 0.25)
        offs, offs_var = offs[sharp], offs_var[sharp]
        t_mean = float(np.mean([f.t for f in fits]))
        if len(offs) >= MIN_D2D_DEVICES:
            # spread of the true offsets: observed spread less their estimation noise
            noise_var = float(np.mean(offs_var))
            total_var = max(float(np.var(offs, ddof=1)) - noise_var, 0.0)
            d2d_rate = float(np.sqrt(max(total_var - (p.variability.d2d_v / t_mean) ** 2, 0.0)))
            se = float(np.sqrt(total_var / (2 * (len(offs) - 1))) * np.sqrt(total_var)
                       / max(d2d_rate, 1e-9))
            estimates.append(Estimate("variability.d2d_rate", d2d_rate, se, len(offs), "1",
                                      "spread of per-device log-rate offsets less d2d_v/t"))
        else:
            warnings.append(f"fewer than {MIN_D2D_DEVICES} devices with 5 pulse steps: "
                            "d2d_rate kept")
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
    estimates = _drop_undetermined(estimates, warnings, base)
    doc = _preset_doc(raw, name, base, estimates, logs, warnings)
    doc["calibration"]["rate_at_median_amplitude"] = rates
    try:
        CompactPreset.model_validate({k: v for k, v in doc.items()})
    except Exception as exc:
        raise CalibrationInputError(f"the fitted preset is not valid: {exc}") from None
    kept = doc["calibration"]["kept"]
    return Calibration(base=base, preset=doc, estimates=estimates, kept=kept, warnings=warnings,
                       rate_fits=fits, noise_fit=noise, logs=logs, more=more)


UNDETERMINED_REL_SE = 1.0  # a standard error above this fraction of the value: not determined
_COUPLED = {"set.a": "set.t", "set.t": "set.a", "reset.a": "reset.t", "reset.t": "reset.a"}


def _drop_undetermined(estimates: list[Estimate], warnings: list[str], base: str
                       ) -> list[Estimate]:
    """Estimates of positive parameters whose standard error exceeds UNDETERMINED_REL_SE of
    the value are not determined by the logs: dropped (kept from the base) with a warning;
    a polarity's a and t go together (a is fitted at t)."""
    bad = {e.name for e in estimates
           if e.value > 0 and not e.name.startswith(("stuck.", "variability."))
           and not e.stderr <= UNDETERMINED_REL_SE * e.value}
    bad |= {_COUPLED[n] for n in bad if n in _COUPLED}
    for e in estimates:
        if e.name in bad:
            warnings.append(f"{e.name}: not determined by the logs (fit {e.value:.4g}, std "
                            f"error {e.stderr:.3g}); kept from {base}")
    return [e for e in estimates if e.name not in bad]


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
                logs: list[LogData], warnings: list[str]) -> dict[str, Any]:
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
    kept = []
    for sec, keys in _FIELDS.items():
        if sec and doc.get(sec) is None:
            continue  # the base has no such section
        for k in keys:
            name = f"{sec}.{k}" if sec else k
            if name in fitted:
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
