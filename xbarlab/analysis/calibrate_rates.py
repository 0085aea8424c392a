"""The switching-rate fit of a calibration: every write-verify pulse step (read, pulse, read
of one cell) predicted with the simulator's own pulse integration and fitted to the read
after, with per-device log-rate offsets; and the device-to-device rate spread those offsets
give. See `xbarlab.analysis.calibrate` for the whole and `calibrate_determined` for what is
reported as determined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, sparse

from xbarlab.analysis.calibrate_data import Estimate, FloatArray, LogData
from xbarlab.analysis.calibrate_stuck import clip_reads, stuck_devices
from xbarlab.sim.presets import CompactPreset
from xbarlab.sim.tio2 import integrate_pulse, read_factor, switching_bound

MIN_STEPS = 30  # pulse steps per polarity below which rates are not fitted
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
    sel &= ~np.isin(dev, stuck_devices(logs, clip_reads(p)))  # a stuck one has no rate
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
        coef, _ = optimize.nnls(design, r2)  # both variance parts >= 0
        # a floor on the read-noise part: with it near 0 the smallest steps would get
        # near-zero scales, their residuals would dominate and the covariance blow up
        s0 = max(float(coef[0]), 0.01 * float(np.median(r2)), 1e-12)
        c2 = float(coef[1])
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


def d2d_rate_estimate(p: CompactPreset, fits: list[RateFit]) -> Estimate | None:
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
