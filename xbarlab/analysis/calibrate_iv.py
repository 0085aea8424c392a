"""Read I-V nonlinearity (``iv.b`` of the sinh law I = a sinh(b V) / R) from I-V sweep logs.

A staircase I-V sweep (the steps xbarlab's I-V protocols tag ``iv_step``: curve tracer with
``read_at: both``, with a read of the same cell right before each step; write-verify pulses
are not sweeps, their ramps start at the switching amplitudes) gives, per step, the column
current
during the step and the cell's state just before it (the read, at v_read with the grounded
read scheme: the selected cell only). The model of that current, with nothing but ``b``
unknown per step:

    I(V) = v_read / sinh(b v_read) * [ G_before sinh(b V) + S sinh(b f V) ]

The first term is the selected cell: its read conductance G_before = a sinh(b v_read) /
(v_read R) fixes a/R, so ``a`` drops out. The second is the current the other cells of the
selected column add under the pulse scheme (f = 1/2 for V/2, 1/3 for V/3, 0 for grounded
unselected lines), S the sum of their read conductances, one free value per leg of a sweep
(a leg = one cell, one sign, |V| rising or falling: the half-selected cells drift during a
sweep). Steps whose read after differs from the read before by more than `MAX_STATE_CHANGE`
(the cell switched during the step) and steps in compliance are left out. With V/2 or V/3
pulses the column current is mostly the half-selected cells', which a long dwell disturbs
(a few % bias on b was measured on 32 x 32 with 100 µs steps); a sweep with
``pulse_scheme: grounded`` measures the selected cell alone.
Fitted by `scipy.optimize.least_squares` on relative residuals; the standard error of ``b``
from the Jacobian scaled by the residual variance.

``iv.a`` is not determined by any electrical measurement: it only sets the scale of the
internal state resistance R (every current is a/R times a function of V), so it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, sparse

from xbarlab.analysis.calibrate_data import FloatArray, LogData

MIN_IV_STEPS = 20
MIN_LEG_STEPS = 3
IV_TAG = "iv_step"  # the step tag of I-V sweep pulses (protocols/curve_tracer.py, iv_sweep.py)
MAX_STATE_CHANGE = 0.01  # relative change of the read across a step that is still "one state"
_UNSELECTED = {"v/2": 0.5, "v/3": 1.0 / 3.0, "grounded": 0.0}  # row potential / V


@dataclass
class IVFit:
    """The fitted ``b`` and what the report plots."""

    b: float
    b_se: float
    v: FloatArray  # V, per step
    current: FloatArray  # A, measured
    current_fit: FloatArray  # A, model
    n_sweeps: int
    rel_rms: float  # rms relative residual


def iv_steps(d: LogData) -> dict[str, Any]:
    """Steps with a measured current, the read before (and after) of the same cell."""
    m = d.frame
    empty = {"v": np.zeros(0), "i": np.zeros(0), "g": np.zeros(0), "f": np.zeros(0),
             "sweep": np.zeros(0, dtype=np.int64)}
    if m is None or not len(m):
        return empty
    kind = m["kind"].to_numpy()
    cell = m["row"].to_numpy(np.int64) * d.shape[1] + m["col"].to_numpy(np.int64)
    v = m["voltage"].to_numpy(np.float64)
    cur = m["current"].to_numpy(np.float64)
    g = m["conductance"].to_numpy(np.float64)
    scheme = m["scheme"].to_numpy()
    comp = m["compliance"].to_numpy(bool)
    tag = m["step"].to_numpy()
    vs, cs, gs, fs, sw = [], [], [], [], []
    sweep, last_cell, last_v, last_rising = -1, -1, 0.0, True
    n = len(m)
    for i in range(1, n):
        if (kind[i] != "pulse" or tag[i] != IV_TAG or not np.isfinite(cur[i]) or v[i] == 0
                or comp[i]):
            continue
        f = _UNSELECTED.get(str(scheme[i]))
        if f is None or kind[i - 1] != "read" or cell[i - 1] != cell[i]:
            continue
        rising = abs(v[i]) > abs(last_v)
        if cell[i] != last_cell or v[i] * last_v <= 0 or rising != last_rising:
            sweep += 1  # a new leg: another cell, a sign change or |V| turning
        last_rising = rising
        last_cell, last_v = int(cell[i]), float(v[i])
        g0 = g[i - 1]
        if (i + 1 < n and kind[i + 1] == "read" and cell[i + 1] == cell[i]
                and abs(g[i + 1] - g0) > MAX_STATE_CHANGE * g0):
            continue
        if not (np.isfinite(g0) and g0 > 0):
            continue
        vs.append(v[i])
        cs.append(cur[i])
        gs.append(g0)
        fs.append(f)
        sw.append(sweep)
    swa = np.asarray(sw, dtype=np.int64)
    # a sweep leg has several steps: a lone pulse with a read before (endurance, write-verify)
    # is not an I-V sweep
    keep = np.isin(swa, np.flatnonzero(np.bincount(swa) >= MIN_LEG_STEPS)) if sw else swa > 0
    if not keep.any():
        return empty
    return {"v": np.asarray(vs)[keep], "i": np.asarray(cs)[keep], "g": np.asarray(gs)[keep],
            "f": np.asarray(fs)[keep], "sweep": swa[keep]}


def _model(b: float, s: FloatArray, v: FloatArray, g: FloatArray, f: FloatArray,
           sweep: np.ndarray[Any, Any], v_read: float) -> FloatArray:
    return np.asarray(v_read / np.sinh(b * v_read)
                      * (g * np.sinh(b * v) + s[sweep] * np.sinh(b * f * v)), dtype=np.float64)


def fit_iv(logs: list[LogData], b0: float) -> IVFit | None:
    """Fit ``b`` (see module docstring); None if fewer than `MIN_IV_STEPS` usable steps or
    the steps do not reach the nonlinear range (|V| < 0.3 V)."""
    parts = [iv_steps(d) for d in logs]
    v_read = float(np.median([d.v_read for d in logs]))
    offs = np.cumsum([0] + [int(p["sweep"].max()) + 1 if len(p["sweep"]) else 0
                            for p in parts])
    v = np.concatenate([p["v"] for p in parts])
    cur = np.concatenate([p["i"] for p in parts])
    g = np.concatenate([p["g"] for p in parts])
    f = np.concatenate([p["f"] for p in parts])
    sweep = np.concatenate([p["sweep"] + o for p, o in zip(parts, offs, strict=False)])
    if len(v) < MIN_IV_STEPS or np.max(np.abs(v)) < 0.3:
        return None
    uniq, sweep = np.unique(sweep, return_inverse=True)
    ns = len(uniq)
    # a first guess of each sweep's S from its smallest-|V| step (linear there)
    s0 = np.zeros(ns)
    for k in range(ns):
        sel = (sweep == k) & (f > 0)
        if sel.any():
            j = np.flatnonzero(sel)[np.argmin(np.abs(v[sel]))]
            s0[k] = max((cur[j] / v[j] - g[j]) / f[j], 0.0)
    free_s = np.array([np.any((sweep == k) & (f > 0)) for k in range(ns)])

    def resid(x: FloatArray) -> FloatArray:
        pred = _model(x[0], np.where(free_s, x[1:], 0.0), v, g, f, sweep, v_read)
        return np.asarray((pred - cur) / np.abs(cur), dtype=np.float64)

    jac = sparse.lil_matrix((len(v), ns + 1), dtype=int)
    jac[:, 0] = 1
    jac[np.arange(len(v)), 1 + sweep] = 1
    x0 = np.concatenate([[b0], s0])
    lb = np.concatenate([[0.01], np.zeros(ns)])
    ub = np.concatenate([[20.0], np.full(ns, np.inf)])
    x_scale = np.concatenate([[0.1], np.maximum(s0, 1e-6)])
    res = optimize.least_squares(resid, x0, jac_sparsity=jac, bounds=(lb, ub), x_scale=x_scale,
                                 method="trf", tr_solver="lsmr")
    j = res.jac.toarray() if sparse.issparse(res.jac) else np.asarray(res.jac)
    dof = max(len(v) - (ns + 1), 1)
    sigma2 = float(np.sum(res.fun**2)) / dof
    cov = np.linalg.pinv(j.T @ j) * sigma2
    s = np.where(free_s, res.x[1:], 0.0)
    return IVFit(b=float(res.x[0]), b_se=float(np.sqrt(max(cov[0, 0], 0.0))), v=v,
                 current=cur, current_fit=_model(float(res.x[0]), s, v, g, f, sweep, v_read),
                 n_sweeps=ns, rel_rms=float(np.sqrt(np.mean(res.fun**2))))
