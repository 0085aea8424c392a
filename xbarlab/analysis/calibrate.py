"""Calibrate the TiO2 compact model (`xbarlab.sim.tio2`) to a lab's devices from its logs.

Each parameter comes from the measurements that determine it:

- ``set.a, set.t`` / ``reset.a, reset.t`` (switching rate s(|V|) = a (exp(|V|/t) - 1)): every
  write-verify pulse step (read, pulse, read of one cell) is predicted with the model's own
  pulse integration (`tio2.integrate_pulse`, `switching_rate`, `switching_bound`) from the
  read before, and the predicted read after is fitted to the measured one
  (`scipy.optimize.least_squares`, residuals relative to G) with a per-device log-rate offset
  (a random effect, shrunk to zero with the base's device spread) so that device-to-device
  spread does not bias the population rate: ``a`` is the median device's rate. The
  prediction averages the cycle-to-cycle noise on each change (`_predict`). Standard errors
  from the Jacobian (Gauss-Newton covariance scaled by the residual variance, the level and
  the devices' mean offset taken together), plus the spread of the device offsets over the
  number of devices, plus half the disagreement between the rate the smaller and the larger
  half of the steps give (`_split_levels`: a model that misses something shows it there;
  measured: 10-15 % on truths whose steps move G by ~20 %).
- ``variability.d2d_rate``: the spread of those per-device offsets, less the part the kept
  ``d2d_v`` explains (a threshold shift dv scales the rate by exp(-dv/t)), per polarity at
  its own t; the two pooled, their disagreement in the standard error (`_d2d_rate`).
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
from xbarlab.analysis.calibrate_determined import drop_undetermined, settle_rates
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
PRIOR_LOG_STD = 1.0  # shrinkage of the per-device log-rate offsets when the base has no spread


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


# --------------------------------------------------------------------------- switching rates


_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(5)
_GH_W = _GH_W / _GH_W.sum()  # nodes and weights of a standard normal


def _predict(
    p: CompactPreset, setting: bool, log_a: float, t: float, offsets: FloatArray,
    dev: np.ndarray[Any, Any], v_abs: FloatArray, width: float, g0: FloatArray,
) -> FloatArray:
    """Expected read conductance after each pulse of `width` s, by the simulator's own pulse
    integration (`_predict_widths` for pulses of several widths).

    The cycle-to-cycle relative noise on each change (the base's ``c2c_rel``) is averaged
    over by Gauss-Hermite quadrature, clipped at 0 and by the window as the device clips it:
    for steps of ~20 % of G the read after the mean step is not the mean read after (without
    it the rate of such steps came out 10-15 % low or high)."""
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    pol = p.set if setting else p.reset
    c2c = p.variability.c2c_rel
    r0 = np.clip(k / g0, p.r_on, p.r_off)
    rate = np.exp(log_a + offsets[dev]) * np.expm1(v_abs / t)
    r1 = integrate_pulse(r0, switching_bound(pol, v_abs), rate, width, setting=setting)
    if c2c == 0:
        return np.asarray(k / np.clip(r1, p.r_on, p.r_off), dtype=np.float64)
    dr = r1 - r0
    out = np.zeros_like(g0)
    for z, w in zip(_GH_Z, _GH_W, strict=True):
        out += w * k / np.clip(r0 + dr * max(1.0 + c2c * float(z), 0.0), p.r_on, p.r_off)
    return np.asarray(out, dtype=np.float64)


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


def _split_levels(p: CompactPreset, setting: bool, log_a: float, x: FloatArray,
                  dev_i: np.ndarray[Any, Any], v_abs: FloatArray, width: FloatArray,
                  g0: FloatArray, g1: FloatArray, scale: FloatArray) -> float | None:
    """Log-rate level fitted on the steps below the median predicted change minus that on
    those above (device offsets and t held): a systematic error of the model shows as
    disagreement, and half of it enters the level's variance. None: too few steps."""
    pred = _predict_widths(p, setting, log_a, x[1], x[2:], dev_i, v_abs, width, g0)
    change = np.abs(pred - g0) / g0
    med = float(np.median(change))
    levels = []
    for sel in (change <= med, change > med):
        if sel.sum() < MIN_STEPS:
            return None

        def resid(c: FloatArray, sel: np.ndarray[Any, Any] = sel) -> FloatArray:
            q = _predict_widths(p, setting, log_a + float(c[0]), x[1], x[2:], dev_i[sel],
                                v_abs[sel], width[sel], g0[sel])
            return np.asarray((q - g1[sel]) / g0[sel] / scale[sel], dtype=np.float64)

        levels.append(float(optimize.least_squares(resid, [0.0], method="lm").x[0]))
    return levels[0] - levels[1]


def fit_rates(p: CompactPreset, logs: list[LogData], setting: bool, *, fix_t: bool = False
              ) -> RateFit | None:
    """Fit `a`, `t` of one polarity (see module docstring; `fix_t`: t held at `p`'s, the rate
    at the median amplitude fitted); None if too few steps."""
    dev = np.concatenate([d.device for d in logs])
    v = np.concatenate([d.v for d in logs])
    width = np.concatenate([d.width for d in logs])
    g0 = np.concatenate([d.g0 for d in logs])
    g1 = np.concatenate([d.g1 for d in logs])
    sel = (v > 0) if setting else (v < 0)
    sel &= ~np.isin(dev, _stuck_devices(logs, clip_reads(p)))  # a stuck one has no rate
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
    t_free = spread >= max(20, 0.1 * len(v_abs)) and not fix_t
    x0 = np.concatenate([[np.log(pol.a * np.expm1(v_ref / pol.t)), pol.t], np.zeros(nd)])

    def log_a(x: FloatArray) -> float:
        return float(x[0] - np.log(np.expm1(v_ref / x[1])))

    scale = np.ones(len(g0))  # per-step residual scale (relative G), set below
    prior_w = np.array([0.003])
    # the offsets' prior: the base's device spread of the log-rate (rate factor and threshold)
    prior_std = float(np.hypot(p.variability.d2d_rate, p.variability.d2d_v / pol.t)) \
        or PRIOR_LOG_STD

    def residuals(x: FloatArray) -> FloatArray:
        pred = _predict_widths(p, setting, log_a(x), x[1], x[2:], dev_i, v_abs, width, g0)
        return np.concatenate([(pred - g1) / g0 / scale, prior_w * x[2:] / prior_std])

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
    x = np.array(res.x, dtype=np.float64)
    j = res.jac.toarray() if sparse.issparse(res.jac) else np.asarray(res.jac)
    try:
        cov_all = np.linalg.pinv(j.T @ j) * sigma**2
    except np.linalg.LinAlgError:
        cov_all = np.full((nd + 2, nd + 2), np.nan)
    # the population log-rate is the fitted level plus the devices' mean offset: the two are
    # only told apart by the weak shrinkage prior, so the level alone has a huge variance that
    # says nothing; move the mean into the level (predictions unchanged) and propagate
    shift = float(np.mean(x[2:]))
    x[0] += shift
    x[2:] -= shift
    gauge = np.zeros((2, nd + 2))
    gauge[0, 0] = gauge[1, 1] = 1.0
    gauge[0, 2:] = 1.0 / nd
    cov_ref = gauge @ cov_all @ gauge.T  # of (log s(v_ref), t)
    c_off = cov_all[2:, 2:]
    row_mean = c_off.mean(axis=1)
    var_centred = np.diag(c_off) - 2 * row_mean + float(c_off.mean())  # of offset - mean
    counts = np.bincount(dev_i, minlength=nd)
    offsets = x[2:][counts >= 5]
    offsets_var = var_centred[counts >= 5]  # their estimation variance
    # the median device is the population rate: add the sampling spread of the devices
    if len(offsets) > 1:
        cov_ref[0, 0] += float(np.var(offsets, ddof=1)) / nd
    split = _split_levels(p, setting, log_a(x), x, dev_i, v_abs, width, g0, g1, scale)
    if split is not None:  # model inadequacy: the small and the large steps disagree
        cov_ref[0, 0] += (split / 2) ** 2
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


def _d2d_rate(p: CompactPreset, fits: list[RateFit]) -> Estimate | None:
    """``d2d_rate`` from the spread of the per-device log-rate offsets, per polarity: the
    observed variance less the offsets' estimation noise and less the part the kept ``d2d_v``
    explains at that polarity's t ((d2d_v / t)^2); the polarities pooled (weighted by
    devices), and half their disagreement added to the standard error (one parameter in the
    model, two measurements of it). None: too few devices with sharp offsets in either
    polarity."""
    parts = []
    for f in fits:
        # devices whose offset is known to within 0.5 in log (a few saturated I-V or
        # endurance steps pin nothing and would swamp the noise correction)
        sharp = np.isfinite(f.offsets_var) & (f.offsets_var < 0.25)
        offs, offs_var = f.offsets[sharp], f.offsets_var[sharp]
        if len(offs) < MIN_D2D_DEVICES:
            continue
        total = max(float(np.var(offs, ddof=1)) - float(np.mean(offs_var)), 0.0)
        var = total - (p.variability.d2d_v / f.t) ** 2
        var_se = total * np.sqrt(2.0 / (len(offs) - 1))  # of the sample variance
        parts.append((var, var_se, len(offs)))
    if len(parts) < 2:  # one polarity: nothing checks the split between d2d_v and d2d_rate
        return None
    n = sum(k for *_, k in parts)
    var = sum(v * k for v, _, k in parts) / n
    var_se = float(np.sqrt(sum((s * k) ** 2 for _, s, k in parts))) / n
    var_se = float(np.hypot(var_se, (parts[0][0] - parts[1][0]) / 2))
    d2d = float(np.sqrt(max(var, 0.0)))
    se = var_se / (2 * max(d2d, 1e-9))  # d sqrt(v) = dv / (2 sqrt(v))
    return Estimate("variability.d2d_rate", d2d, se, n, "1",
                    "spread of per-device log-rate offsets less d2d_v/t, per polarity")


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


def stuck_cells(d: LogData, g_clip: tuple[float, float] | None = None
                ) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Cells pulsed up to the log's largest amplitude whose reads, over at least
    STUCK_MIN_PULSES pulses, stayed within 2 % (a slow but healthy cell moves at the cap),
    except, given the read conductances of the clip levels `g_clip` (k / R_off, k / R_on),
    cells whose last read sits within 2 % of one: a healthy cell pinned at the window's edge
    (a target beyond it) does not move either."""
    with np.errstate(invalid="ignore"):
        still = d.cell_g_range < 0.02
        if g_clip is not None:
            for g in g_clip:
                still &= ~(np.abs(d.cell_g_last / g - 1) < 0.02)
    return np.asarray((d.cell_pulses >= STUCK_MIN_PULSES) & d.cell_at_cap & still, dtype=bool)


def clip_reads(p: CompactPreset) -> tuple[float, float]:
    """Read conductances (S) of R_off and R_on under `p`."""
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    return k / p.r_off, k / p.r_on


def _stuck_devices(logs: list[LogData], g_clip: tuple[float, float] | None = None
                   ) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Device ids (as in `LogData.device`) of the stuck cells of every log."""
    ids, offset = [], 0
    for d in logs:
        ids.append(np.flatnonzero(stuck_cells(d, g_clip)) + offset)
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
        stuck = stuck_cells(d, clip_reads(p))
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
                            _stuck_devices(logs, clip_reads(p)))
        _refit_at_disturb_t(p, logs, fits, fixed_t, estimates, rates)
        derived = settle_rates(p, logs, fits, estimates, warnings, rates, base, fit_rates)
        d2d = _d2d_rate(p, fits)
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
    estimated = derived + loose
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
