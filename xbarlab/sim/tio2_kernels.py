"""Compiled pulse update of the TiO2 devices a pulse reaches (`TiO2Devices.apply_voltage`).

A single-cell pulse under V/2 or V/3 biasing puts a voltage on one row and one column of an
ideal array (m + n - 1 devices of m n), yet the vectorised update costs a few dozen numpy
calls over the whole array (~120-200 us at 64 x 64). This kernel walks only the devices it
is given (flat indices), with the same arithmetic in the same order as the numpy path in
`xbarlab.sim.tio2`, so both agree to rounding (tests/sim/test_tio2_fast.py). No fastmath:
the numpy path is the reference. numba is a core dependency (see `solver_kernels`); without
it `AVAILABLE` is False and the numpy path runs.
"""

from __future__ import annotations

import math

from xbarlab.sim.jit import AVAILABLE
from xbarlab.sim.jit import compile_kernel as _compile

__all__ = ["AVAILABLE"]


def _window(wear: float, cycles_half: float, steep: float, r_on: float, r_off: float,
            mid: float, endurance: bool) -> tuple[float, float]:
    """(R_on, R_off) of one device after `wear` (see `TiO2Devices.window`)."""
    if not endurance:
        return r_on, r_off
    x = wear / 2.0 / cycles_half
    x = x * x if steep == 2.0 else x**steep  # pow(x, 2) is x * x, correctly rounded
    closed = x / (1.0 + x)
    return r_on + (mid - r_on) * closed, r_off - (r_off - mid) * closed


def _select(v, healthy, out):  # type: ignore[no-untyped-def]
    """Flat indices of the healthy devices under a voltage (v != 0, not NaN) into `out`,
    in row-major order; returns how many."""
    k = 0
    for j in range(v.shape[0]):
        x = v[j]
        if x != 0.0 and x == x and healthy[j]:
            out[k] = j
            k += 1
    return k


def _pulse_devices(  # type: ignore[no-untyped-def]
    idx, pending, v, r, a_set, a_reset, dv_set, dv_reset, wear, cycles_half, r_vol, r_base,
    t_prog, z_jit, z_c2c, pol, var, dev, width, clock, out,
):
    """Update the devices `idx` (flat, ascending: under voltage, noise draw q for idx[q])
    and the `pending` ones not among them (no voltage: only clipped into their window and
    booked) in place; returns how many are left outside their window after the update
    (their flat indices in `out[:k]`).

    `pol` = (t, r0, r1) of SET then RESET; `var` = (c2c_v, c2c_rel, use_jitter, use_c2c);
    `dev` = (r_on, r_off, mid, endurance, steepness, wear_acceleration, volatile_fraction)."""
    t_s, r0_s, r1_s, t_r, r0_r, r1_r = pol[0], pol[1], pol[2], pol[3], pol[4], pol[5]
    c2c_v, c2c_rel, use_jit, use_c2c = var[0], var[1], var[2] > 0, var[3] > 0
    r_on, r_off, mid, endurance = dev[0], dev[1], dev[2], dev[3] > 0
    steep, wear_acc, vol_frac = dev[4], dev[5], dev[6]
    span = r_off - r_on
    n_idx = idx.shape[0]
    n_out = 0
    for q in range(n_idx + pending.shape[0]):
        if q < n_idx:
            j = idx[q]
        else:
            j = pending[q - n_idx]
            lo_i, hi_i = 0, n_idx  # already updated as a device under voltage?
            while lo_i < hi_i:
                mid_i = (lo_i + hi_i) // 2
                if idx[mid_i] < j:
                    lo_i = mid_i + 1
                else:
                    hi_i = mid_i
            if lo_i < n_idx and idx[lo_i] == j:
                continue
        r_old = r[j]
        dr = 0.0
        if q < n_idx:
            vj = v[j]
            setting = vj > 0
            if setting:
                a, dv, t, r0, r1 = a_set[j], dv_set[j], t_s, r0_s, r1_s
            else:
                a, dv, t, r0, r1 = a_reset[j], dv_reset[j], t_r, r0_r, r1_r
            v_eff = abs(vj) - dv
            if use_jit:
                v_eff = v_eff - c2c_v * z_jit[q]
            if v_eff > 0.0:  # else the rate is a expm1(0) = 0: no change
                rate = a * math.expm1(v_eff / t)
                bound = r0 + r1 * v_eff
                u0 = r_old - bound
                active = u0 > 0.0 if setting else u0 < 0.0
                if active and rate > 0.0:
                    dr = (bound + u0 / (1.0 + rate * abs(u0) * width)) - r_old
                if use_c2c:
                    f = 1.0 + c2c_rel * z_c2c[q]
                    if f < 0.0:
                        f = 0.0
                    dr = dr * f
        lo, hi = _window_c(wear[j], cycles_half[j], steep, r_on, r_off, mid, endurance)
        if dr == 0.0 and lo <= r_old <= hi:
            continue  # inside its window and unchanged: nothing to clip or book
        rn = r_old + dr
        if rn < lo:
            rn = lo
        if rn > hi:
            rn = hi
        r[j] = rn
        d = rn - r_old
        wear[j] += wear_acc * abs(d) / span
        if abs(d) > 1e-3 * r_old:  # moved
            r_vol[j] = r_vol[j] + vol_frac * d
            t_prog[j] = clock
        r_base[j] = rn - r_vol[j]
        lo, hi = _window_c(wear[j], cycles_half[j], steep, r_on, r_off, mid, endurance)
        if rn < lo or rn > hi:
            out[n_out] = j
            n_out += 1
    return n_out


_window_c = _compile(_window)
pulse_devices = _compile(_pulse_devices)
select = _compile(_select)
