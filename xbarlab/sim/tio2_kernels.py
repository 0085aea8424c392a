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

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    AVAILABLE = False
else:
    AVAILABLE = True


def _window(wear: float, cycles_half: float, steep: float, r_on: float, r_off: float,
            mid: float, endurance: bool) -> tuple[float, float]:
    """(R_on, R_off) of one device after `wear` (see `TiO2Devices.window`)."""
    if not endurance:
        return r_on, r_off
    x = (wear / 2.0 / cycles_half) ** steep
    closed = x / (1.0 + x)
    return r_on + (mid - r_on) * closed, r_off - (r_off - mid) * closed


def _pulse_devices(  # type: ignore[no-untyped-def]
    idx, zpos, v, r, a_set, a_reset, dv_set, dv_reset, wear, cycles_half, r_vol, r_base,
    t_prog, z_jit, z_c2c, pol, var, dev, width, clock, pending,
):
    """Update the devices `idx` (flat) in place; returns how many of them are left outside
    their window after the update (their flat indices in `pending[:k]`).

    `zpos[q]` is the position of device idx[q] in the noise draws (-1: no voltage, only
    clipped into its window and booked). `pol` = (t, r0, r1) of SET then RESET; `var` =
    (c2c_v, c2c_rel, use_jitter, use_c2c); `dev` = (r_on, r_off, mid, endurance, steepness,
    wear_acceleration, volatile_fraction)."""
    t_s, r0_s, r1_s, t_r, r0_r, r1_r = pol[0], pol[1], pol[2], pol[3], pol[4], pol[5]
    c2c_v, c2c_rel, use_jit, use_c2c = var[0], var[1], var[2] > 0, var[3] > 0
    r_on, r_off, mid, endurance = dev[0], dev[1], dev[2], dev[3] > 0
    steep, wear_acc, vol_frac = dev[4], dev[5], dev[6]
    span = r_off - r_on
    n_pending = 0
    for q in range(idx.shape[0]):
        j = idx[q]
        r_old = r[j]
        p = zpos[q]
        dr = 0.0
        if p >= 0:
            vj = v[j]
            setting = vj > 0
            if setting:
                a, dv, t, r0, r1 = a_set[j], dv_set[j], t_s, r0_s, r1_s
            else:
                a, dv, t, r0, r1 = a_reset[j], dv_reset[j], t_r, r0_r, r1_r
            v_eff = abs(vj) - dv
            if use_jit:
                v_eff = v_eff - c2c_v * z_jit[p]
            if v_eff < 0.0:
                v_eff = 0.0
            rate = a * math.expm1(v_eff / t)
            bound = r0 + r1 * v_eff
            u0 = r_old - bound
            active = u0 > 0.0 if setting else u0 < 0.0
            if active and rate > 0.0:
                dr = (bound + u0 / (1.0 + rate * abs(u0) * width)) - r_old
            if use_c2c:
                f = 1.0 + c2c_rel * z_c2c[p]
                if f < 0.0:
                    f = 0.0
                dr = dr * f
        lo, hi = _window_c(wear[j], cycles_half[j], steep, r_on, r_off, mid, endurance)
        rn = r_old + dr
        if rn < lo:
            rn = lo
        if rn > hi:
            rn = hi
        r[j] = rn
        d = rn - r_old
        wear[j] += wear_acc * abs(d) / span
        moved = abs(d) > 1e-3 * r_old
        if moved:
            r_vol[j] = r_vol[j] + vol_frac * d
            t_prog[j] = clock
        r_base[j] = rn - r_vol[j]
        lo, hi = _window_c(wear[j], cycles_half[j], steep, r_on, r_off, mid, endurance)
        if rn < lo or rn > hi:
            pending[n_pending] = j
            n_pending += 1
    return n_pending


if AVAILABLE:
    _window_c = njit(cache=True, nogil=True)(_window)
    pulse_devices = njit(cache=True, nogil=True)(_pulse_devices)
else:  # pragma: no cover
    _window_c = _window
    pulse_devices = _pulse_devices

