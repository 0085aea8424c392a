"""Retention drift (``retention.drift_per_decade``, ``retention.d2d_log_std``) from reads over
time.

The model (`xbarlab.sim.tio2.TiO2Devices.advance`): while no pulse acts, each device's state
resistance grows by the factor (1 + d log10((t0 + age + s) / (t0 + age))) over every wait of
s seconds, d drawn per device log-normally around ``drift_per_decade`` with log-std
``d2d_log_std``. A retention segment is a run of reads with no pulse anywhere on the array,
over which the device clock (the logged waits) advances by at least a decade; its start is
taken as the devices' programming time (age 0) and ``t0`` is kept (only t0 + age enters, and
the age of a bench's devices at the segment start is not in the log). Per device, log G at
the read times is fitted with (log G0, d) by a few Gauss-Newton steps on the exact product
above; ``drift_per_decade`` is the median d (standard error 1.25 std / sqrt(n)) and
``d2d_log_std`` the robust (MAD) spread of log d, less the part the per-device estimation
noise explains. Reads within 10 volatility time constants of the start are left out (the
volatile part of a preceding pulse still decays then).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.analysis.calibrate_data import FloatArray, LogData

MIN_TIMES = 4  # read times per segment
MIN_DEVICES = 20


@dataclass
class DriftFit:
    """Per-device drift coefficients and the population figures."""

    drift: float  # median d, 1 per decade
    drift_se: float
    log_std: float
    log_std_se: float
    d: FloatArray  # per device
    d_se: FloatArray
    times: FloatArray  # s, one segment's read times (for the report)
    g_rel: FloatArray  # median G(t)/G(first kept read) over that segment's devices
    g_rel_fit: FloatArray  # the same for the model at the median d
    n_segments: int


def _segments(d: LogData, min_t: float) -> list[tuple[FloatArray, FloatArray, FloatArray]]:
    """(read times, kept-time mask, G matrix cells x times) of each retention segment."""
    m = d.frame
    if m is None or not len(m):
        return []
    kind = m["kind"].to_numpy()
    is_read = kind == "read"
    seg_id = np.cumsum(kind == "pulse")[is_read]
    # a segment with fewer reads than MIN_TIMES has fewer read times: only the others are
    # grouped (a write-verify log has one read per segment: thousands of groups otherwise)
    many = np.bincount(seg_id)[seg_id] >= MIN_TIMES if len(seg_id) else seg_id.astype(bool)
    out = []
    reads = m[is_read][many].assign(seg=seg_id[many])
    for _, seg in reads.groupby("seg"):
        clock = seg["clock"].to_numpy(np.float64)
        t_all = np.unique(clock)
        if len(t_all) < MIN_TIMES:
            continue
        t = t_all - t_all[0]
        first = t[t > 0].min() if np.any(t > 0) else 0.0
        if first <= 0 or t[-1] < 10 * first:
            continue
        cell = seg["row"].to_numpy(np.int64) * d.shape[1] + seg["col"].to_numpy(np.int64)
        cells = np.unique(cell)
        gm = np.full((len(cells), len(t_all)), np.nan)
        gm[np.searchsorted(cells, cell), np.searchsorted(t_all, clock)] = (
            seg["conductance"].to_numpy(np.float64))
        keep = t >= min_t
        if keep.sum() < MIN_TIMES:
            continue
        out.append((t, keep, gm))
    return out


def _fit_devices(t: FloatArray, keep: FloatArray, gm: FloatArray, t0: float
                 ) -> tuple[FloatArray, FloatArray]:
    """Per-device d and its standard error (Gauss-Newton on log G, intercept free)."""
    steps = np.log10((t0 + t[1:]) / (t0 + t[:-1]))  # decades of each wait
    y = np.log(gm[:, keep])
    ok = np.all(np.isfinite(y), axis=1)
    y = np.where(np.isfinite(y), y, 0.0)
    d = np.full(len(gm), 0.01)
    c = y[:, 0].copy()
    for _ in range(6):
        term = np.log1p(d[:, None] * steps[None, :])
        f = np.concatenate([np.zeros((len(d), 1)), np.cumsum(term, axis=1)], axis=1)[:, keep]
        df = np.concatenate([np.zeros((len(d), 1)),
                             np.cumsum(steps / (1 + d[:, None] * steps), axis=1)], axis=1)[:, keep]
        r = y - (c[:, None] - f)
        # solve [1, -df] [dc, dd] = r per device (2 x 2 normal equations)
        a11 = keep.sum()
        a12 = -df.sum(axis=1)
        a22 = (df**2).sum(axis=1)
        b1 = r.sum(axis=1)
        b2 = -(df * r).sum(axis=1)
        det = a11 * a22 - a12**2
        det = np.where(np.abs(det) > 0, det, np.inf)
        c = c + (a22 * b1 - a12 * b2) / det
        d = np.clip(d + (a11 * b2 - a12 * b1) / det, -0.5, 5.0)
    dof = max(int(keep.sum()) - 2, 1)
    sigma2 = (r**2).sum(axis=1) / dof
    se = np.sqrt(sigma2 * a11 / det)
    d = np.where(ok, d, np.nan)
    return d, np.where(ok, se, np.nan)


def fit_drift(logs: list[LogData], t0: float, vol_tau: float) -> DriftFit | None:
    """Fit the drift (see module docstring); None without a retention segment of enough
    devices."""
    ds, ses, first = [], [], None
    n_seg = 0
    for log in logs:
        for t, keep, gm in _segments(log, 10.0 * vol_tau):
            d, se = _fit_devices(t, keep, gm, t0)
            ds.append(d)
            ses.append(se)
            n_seg += 1
            if first is None:
                first = (t, keep, gm, d)
    if first is None:
        return None
    d_all, se_all = np.concatenate(ds), np.concatenate(ses)
    good = np.isfinite(d_all)
    d_all, se_all = d_all[good], se_all[good]
    pos = d_all > 0
    if pos.sum() < MIN_DEVICES:
        return None
    drift = float(np.median(d_all))
    drift_se = float(1.2533 * 1.4826 * np.median(np.abs(d_all - drift)) / np.sqrt(len(d_all)))
    logd = np.log(d_all[pos])
    mad = 1.4826 * float(np.median(np.abs(logd - np.median(logd))))
    noise = float(np.median((se_all[pos] / d_all[pos]) ** 2))
    log_std = float(np.sqrt(max(mad**2 - noise, 0.0)))
    log_std_se = float(mad / np.sqrt(2 * (len(logd) - 1)) * 1.65)  # MAD efficiency ~ 0.37
    t, keep, gm, _ = first
    tk = t[keep]
    rel = gm[:, keep] / gm[:, keep][:, :1]
    steps = np.log10((t0 + t[1:]) / (t0 + t[:-1]))
    f = np.concatenate([[0.0], np.cumsum(np.log1p(drift * steps))])[keep]
    return DriftFit(drift=drift, drift_se=drift_se, log_std=log_std, log_std_se=log_std_se,
                    d=d_all, d_se=se_all, times=tk,
                    g_rel=np.asarray(np.nanmedian(rel, axis=0), dtype=np.float64),
                    g_rel_fit=np.exp(-(f - f[0])), n_segments=n_seg)
