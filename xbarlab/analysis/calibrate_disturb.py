"""Half-select disturb vs exposure count, and the voltage scales ``set.t`` / ``reset.t`` it pins.

A write-verify session reads every cell once more at the end of a pass (the read map). Between
a cell's last verify read and that map, every later pulse on its row or column half-selected
it: under V/2 it saw +-|V|/2 (the pulse's polarity) for the pulse's width; under grounded
unselected lines a pulse on its row gave it the full V (one on its column nothing); under
V/3 (rows at V/3, columns at 2V/3) every pulse reaches every cell: +V/3 on its row or column,
-V/3 (the other polarity) elsewhere. So each programmed cell gives a
measured disturb: its map read against its last verify read, after a known list of
exposures (`DisturbData`).

The compact model predicts that change with the same closed-form pulse integration as the
programming steps (that of `xbarlab.sim.tio2.integrate_pulse`, inlined for both polarities at
once), applied exposure by exposure, with the device's
own log-rate offset from the step fit. The programming steps fix the rate at their median
amplitude well but its growth with |V| (t) less so; the exposures are at half that amplitude,
so they pin t: `fit_disturb` refits t per polarity holding the rate at the steps' median
amplitude (so a = s(v_ref) / (exp(v_ref / t) - 1) follows), with the step fit's t as a prior
(its standard error), on relative residuals with a robust (soft-L1) loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from xbarlab.analysis.calibrate_data import FloatArray, LogData
from xbarlab.sim.presets import CompactPreset
from xbarlab.sim.tio2 import read_factor

MIN_CELLS = 50
# voltage seen / V: a cell on the pulsed row, on the pulsed column, on neither
_ROW_COL = {"v/2": (0.5, 0.5, 0.0), "grounded": (1.0, 0.0, 0.0), "v/3": (1 / 3, 1 / 3, -1 / 3)}


@dataclass
class DisturbData:
    """Per programmed cell: the reads around its exposures and the exposures (padded)."""

    device: np.ndarray[Any, np.dtype[np.int64]]  # ids as in `LogData.device`
    g_done: FloatArray  # S, last verify read
    g_map: FloatArray  # S, read in the map after the pass
    v: FloatArray  # (cells, K) V seen (signed), 0 past `count`
    width: FloatArray  # (cells, K) s
    count: np.ndarray[Any, np.dtype[np.int64]]


def disturb_data(d: LogData, device_offset: int) -> DisturbData | None:
    """The disturb of each cell programmed before the log's first read map (None: no map,
    or its pulses used a scheme this does not model)."""
    m = d.frame
    if m is None or not len(m):
        return None
    kind = m["kind"].to_numpy()
    step = m["step"].to_numpy()
    is_map = (kind == "read") & (step == "read_map")
    if not is_map.any():
        return None
    start = int(np.argmax(is_map))
    seq = m["seq"].to_numpy(np.int64)
    first_map = is_map & (seq == seq[start])
    row = m["row"].to_numpy(np.int64)
    col = m["col"].to_numpy(np.int64)
    g = m["conductance"].to_numpy(np.float64)
    before = np.arange(len(m)) < start
    pulse = np.flatnonzero(before & (kind == "pulse"))
    schemes = set(m["scheme"].to_numpy()[pulse].tolist())
    if not pulse.size or not schemes <= set(_ROW_COL):
        return None
    f_row, f_col, f_other = (np.array([_ROW_COL[str(s)][i] for s in m["scheme"].to_numpy()[pulse]])
                             for i in range(3))
    pr, pc = row[pulse], col[pulse]
    pv = m["voltage"].to_numpy(np.float64)[pulse]
    pw = m["width"].to_numpy(np.float64)[pulse]
    reads = np.flatnonzero(before & (kind == "read"))
    cell_of = row * d.shape[1] + col
    last_read: dict[int, int] = {}
    for i in reads:  # in order: the last one wins
        last_read[int(cell_of[i])] = int(i)
    map_rows = np.flatnonzero(first_map)
    map_g = dict(zip(cell_of[map_rows].tolist(), g[map_rows].tolist(), strict=True))
    dev, g0, g1, vs, ws = [], [], [], [], []
    for c, i_last in last_read.items():
        if c not in map_g:
            continue
        r, cc = divmod(c, d.shape[1])
        later = pulse > i_last
        on_row = later & (pr == r) & (pc != cc)
        on_col = later & (pc == cc) & (pr != r)
        other = later & (pc != cc) & (pr != r)
        volt = (np.where(on_row, f_row * pv, 0.0) + np.where(on_col, f_col * pv, 0.0)
                + np.where(other, f_other * pv, 0.0))
        hit = (on_row | on_col | other) & (volt != 0)
        dev.append(c + device_offset)
        g0.append(g[i_last])
        g1.append(map_g[c])
        vs.append(volt[hit])
        ws.append(pw[hit])
    if len(dev) < MIN_CELLS:
        return None
    count = np.array([len(v) for v in vs], dtype=np.int64)
    k = max(int(count.max()), 1)
    vm = np.zeros((len(dev), k))
    wm = np.zeros((len(dev), k))
    for j, (v, w) in enumerate(zip(vs, ws, strict=True)):
        vm[j, :len(v)] = v
        wm[j, :len(w)] = w
    return DisturbData(device=np.asarray(dev, dtype=np.int64), g_done=np.asarray(g0),
                       g_map=np.asarray(g1), v=vm, width=wm, count=count)


def predict_map(p: CompactPreset, data: DisturbData, a_set: FloatArray, a_reset: FloatArray
                ) -> FloatArray:
    """The map read each cell's exposures lead to from its last verify read (per-cell rate
    prefactors `a_set`, `a_reset`; 1/(ohm s)). Exposure j acts on the cells with more than j
    exposures: sorted by count, those are a prefix (no masks per step)."""
    k = read_factor(p.iv.a, p.iv.b, p.v_read)
    order = np.argsort(-data.count, kind="stable")
    counts = data.count[order]
    v_all, w_all = data.v[order], data.width[order]
    r = np.clip(k / data.g_done[order], p.r_on, p.r_off)
    a_s, a_r = a_set[order], a_reset[order]
    for j in range(int(counts.max()) if len(counts) else 0):
        n = int(np.searchsorted(-counts, -j, side="left"))  # cells with count > j
        v = v_all[:n, j]
        va = np.abs(v)
        setting = v > 0
        pol_t = np.where(setting, p.set.t, p.reset.t)
        rate = np.where(setting, a_s[:n], a_r[:n]) * np.expm1(va / pol_t)
        bound = np.where(setting, p.set.r0 + p.set.r1 * va, p.reset.r0 + p.reset.r1 * va)
        u0 = r[:n] - bound
        moving = np.where(setting, u0 > 0, u0 < 0) & (v != 0)
        new = bound + u0 / (1.0 + rate * np.abs(u0) * w_all[:n, j])
        r[:n] = np.clip(np.where(moving, new, r[:n]), p.r_on, p.r_off)
    out = np.empty_like(r)
    out[order] = k / r
    return out


@dataclass
class DisturbFit:
    """t per polarity after the disturb fit, and what the report plots."""

    t: dict[str, float]  # "set"/"reset" -> V
    t_se: dict[str, float]
    count: np.ndarray[Any, np.dtype[np.int64]]
    dg_meas: FloatArray  # (map - done) / done
    dg_before: FloatArray  # the model before this fit (step-fit t)
    dg_fit: FloatArray  # after
    n_cells: int


def fit_disturb(p: CompactPreset, data: list[DisturbData], ref: dict[str, tuple[float, float]],
                prior: dict[str, tuple[float, float]], offsets: dict[str, FloatArray]
                ) -> DisturbFit | None:
    """Refit t of the polarities in `ref` ({pol: (v_ref, rate at v_ref)}) on the disturb of
    `data`, with `prior` ({pol: (t, se)}) from the steps; `offsets[pol]` is the log-rate
    offset of every device id (0 where unknown)."""
    if not data or not ref:
        return None
    cat = DisturbData(
        device=np.concatenate([d.device for d in data]),
        g_done=np.concatenate([d.g_done for d in data]),
        g_map=np.concatenate([d.g_map for d in data]),
        v=_pad([d.v for d in data]), width=_pad([d.width for d in data]),
        count=np.concatenate([d.count for d in data]))
    pols = [q for q in ("set", "reset") if q in ref]
    dg = (cat.g_map - cat.g_done) / cat.g_done

    def model(x: FloatArray) -> tuple[CompactPreset, FloatArray]:
        upd, a = {}, {}
        for q in ("set", "reset"):
            pol = getattr(p, q)
            t = float(x[pols.index(q)]) if q in pols else pol.t
            base_a = (ref[q][1] / np.expm1(ref[q][0] / t)) if q in ref else pol.a
            upd[q] = pol.model_copy(update={"t": t, "a": base_a})
            a[q] = base_a * np.exp(offsets[q][cat.device])
        pp = p.model_copy(update=upd)
        g = predict_map(pp, cat, a["set"], a["reset"])
        return pp, (g - cat.g_done) / cat.g_done

    x0 = np.array([prior[q][0] for q in pols])
    _, dg0 = model(x0)
    scale = max(1.4826 * float(np.median(np.abs(dg0 - dg))), 1e-4)
    prior_se = np.array([max(prior[q][1], 1e-4) for q in pols])

    def resid(x: FloatArray) -> FloatArray:
        _, dgm = model(x)
        return np.concatenate([(dgm - dg) / scale, (x - x0) / prior_se])

    res = optimize.least_squares(resid, x0, bounds=(0.02, 5.0), loss="soft_l1",
                                 x_scale=0.05, diff_step=1e-3)
    j = res.jac
    n = len(dg)
    sigma2 = float(np.sum(res.fun[:n] ** 2)) / max(n - len(pols), 1)
    cov = np.linalg.pinv(j.T @ j) * max(sigma2, 1.0)
    _, dg_fit = model(res.x)
    return DisturbFit(t={q: float(res.x[i]) for i, q in enumerate(pols)},
                      t_se={q: float(np.sqrt(max(cov[i, i], 0.0))) for i, q in enumerate(pols)},
                      count=cat.count, dg_meas=dg, dg_before=dg0, dg_fit=dg_fit, n_cells=n)


def _pad(arrs: list[FloatArray]) -> FloatArray:
    k = max(a.shape[1] for a in arrs)
    return np.concatenate([np.pad(a, ((0, 0), (0, k - a.shape[1]))) for a in arrs])
