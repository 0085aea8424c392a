"""Compiled pulse update of the TiO2 devices a pulse can move (`TiO2Devices.apply_voltage`).

A single-cell pulse under V/2 or V/3 biasing puts a voltage on one row and one column of an
ideal array (m + n - 1 devices of m n), and on every device of a wired one, yet few of them
can move (a device moves only while its resistance is on the far side of the bound of the
polarity it sees). The vectorised update costs a few dozen numpy calls over the whole array
(~120-200 us at 64 x 64). These kernels find the devices that can move (`candidates`), their
changes (`pulse_dr`), and apply them with the noise on the change (`pulse_devices`), with
the same arithmetic in the same order as the numpy path in `xbarlab.sim.tio2`, so both
agree to rounding (tests/sim/test_tio2_fast.py). `pulse` runs the three in one call and
draws the normals between them itself from the simulator's generator (`normal_source`:
numpy's numbers, same stream), 10 us less per pulse at 64 x 64 than three calls with numpy's
draws between them, 25 us at 128 x 128. After a pulse, `read_conductances` gives the new
state's read conductance, a wired solver's small-signal conductance and the latter's
validity in one pass (`TiO2Devices.small_signal`). No fastmath: the numpy path is the
reference. numba is a core dependency (see `solver_kernels`); without it `AVAILABLE` is
False and the numpy path runs.
"""

from __future__ import annotations

import math

from xbarlab.sim.jit import AVAILABLE
from xbarlab.sim.jit import compile_kernel as _compile

__all__ = ["AVAILABLE", "pulse", "read_conductances"]


def _window(wear: float, cycles_half: float, steep: float, r_on: float, r_off: float,
            mid: float, endurance: bool) -> tuple[float, float]:
    """(R_on, R_off) of one device after `wear` (see `TiO2Devices.window`)."""
    if not endurance:
        return r_on, r_off
    x = wear / 2.0 / cycles_half
    x = x * x if steep == 2.0 else x**steep  # pow(x, 2) is x * x, correctly rounded
    closed = x / (1.0 + x)
    return r_on + (mid - r_on) * closed, r_off - (r_off - mid) * closed


def _can_move(r_old: float, a: float, t: float, r0: float, r1: float, v_max: float,
              setting: bool) -> bool:
    """Whether a device at resistance `r_old` can change under an effective voltage in
    (0, v_max] (see `_pulse_dr`): the rate must be positive and the bound r0 + r1 v on the
    side it moves towards somewhere in that range. Exact in floating point: every step of the
    update is monotonic in the effective voltage, so the extreme voltage decides."""
    if not (v_max > 0.0 and a > 0.0 and t > 0.0):
        return False
    if setting:  # moves down while above the bound
        return r_old - (r0 + (r1 * v_max if r1 < 0.0 else 0.0)) > 0.0
    return r_old - (r0 + (r1 * v_max if r1 > 0.0 else 0.0)) < 0.0


def _candidates(v, healthy, r, a_set, a_reset, dv_set, dv_reset, pol, reach, out):  # type: ignore[no-untyped-def]
    """Flat indices (row-major) of the healthy devices under a voltage (v != 0, not NaN) that
    can change for some cycle-to-cycle jitter within +-`reach` volts, into `out`; returns
    (how many can change, how many are under voltage)."""
    t_s, r0_s, r1_s, t_r, r0_r, r1_r = pol[0], pol[1], pol[2], pol[3], pol[4], pol[5]
    k = 0
    under = 0
    for j in range(v.shape[0]):
        x = v[j]
        if x != 0.0 and x == x and healthy[j]:
            under += 1
            if x > 0.0:
                ok = _can_move_c(r[j], a_set[j], t_s, r0_s, r1_s,
                                 (abs(x) - dv_set[j]) + reach, True)
            else:
                ok = _can_move_c(r[j], a_reset[j], t_r, r0_r, r1_r,
                                 (abs(x) - dv_reset[j]) + reach, False)
            if ok:
                out[k] = j
                k += 1
    return k, under


def _pulse_dr(idx, v, r, a_set, a_reset, dv_set, dv_reset, z_jit, pol, c2c_v, clip,  # type: ignore[no-untyped-def]
              use_jit, width, dr, movers):
    """The change dr[q] of device idx[q] over the pulse, before the noise on the change (0
    where it does not move), its jitter z_jit[q] clipped at +-`clip`; the positions q of the
    devices that move into `movers`; returns how many move."""
    t_s, r0_s, r1_s, t_r, r0_r, r1_r = pol[0], pol[1], pol[2], pol[3], pol[4], pol[5]
    n_move = 0
    for q in range(idx.shape[0]):
        j = idx[q]
        r_old = r[j]
        vj = v[j]
        setting = vj > 0
        if setting:
            a, dv, t, r0, r1 = a_set[j], dv_set[j], t_s, r0_s, r1_s
        else:
            a, dv, t, r0, r1 = a_reset[j], dv_reset[j], t_r, r0_r, r1_r
        v_eff = abs(vj) - dv
        if use_jit:
            z = z_jit[q]
            z = -clip if z < -clip else (clip if z > clip else z)
            v_eff = v_eff - c2c_v * z
        d = 0.0
        if v_eff > 0.0:  # else the rate is a expm1(0) = 0: no change
            rate = a * math.expm1(v_eff / t)
            bound = r0 + r1 * v_eff
            u0 = r_old - bound
            active = u0 > 0.0 if setting else u0 < 0.0
            if active and rate > 0.0:
                d = (bound + u0 / (1.0 + rate * abs(u0) * width)) - r_old
        dr[q] = d
        if d != 0.0:
            movers[n_move] = q
            n_move += 1
    return n_move


def _pulse_devices(  # type: ignore[no-untyped-def]
    idx, dr, pending, r, wear, cycles_half, r_vol, r_base, t_prog, z_c2c, c2c_rel, use_c2c,
    dev, clock, out,
):
    """Apply the changes `dr` (before noise) of the devices `idx` (flat, ascending; the
    noise on the change drawn in order for those with dr != 0) and clip and book the
    `pending` ones not among them (only clipped into their window) in place; returns how many
    are left outside their window after the update (their flat indices in `out[:k]`).

    `dev` = (r_on, r_off, mid, endurance, steepness, wear_acceleration, volatile_fraction)."""
    r_on, r_off, mid, endurance = dev[0], dev[1], dev[2], dev[3] > 0
    steep, wear_acc, vol_frac = dev[4], dev[5], dev[6]
    span = r_off - r_on
    n_idx = idx.shape[0]
    n_out = 0
    m = 0  # noise draws used
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
        d0 = dr[q] if q < n_idx else 0.0
        if d0 != 0.0 and use_c2c:
            f = 1.0 + c2c_rel * z_c2c[m]
            m += 1
            if f < 0.0:
                f = 0.0
            d0 = d0 * f
        lo, hi = _window_c(wear[j], cycles_half[j], steep, r_on, r_off, mid, endurance)
        if d0 == 0.0 and lo <= r_old <= hi:
            continue  # inside its window and unchanged: nothing to clip or book
        rn = r_old + d0
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


def _read_conductances(r, k_read, ab, g, g0):  # type: ignore[no-untyped-def]
    """g = k_read / r and g0 = ab * g, elementwise (flat arrays): the conductance a read
    measures and the small-signal one, with numpy's arithmetic; returns the state of g0 as
    `circuit_kernels.conductance_state` gives it (0: a NaN, infinite or negative value;
    1: some 0; 2: all finite and > 0), so the solver need not check it again."""
    bad = False
    zero = False
    for i in range(r.shape[0]):
        x = k_read / r[i]
        g[i] = x
        y = ab * x
        g0[i] = y
        bad |= (not y >= 0.0) | (y == math.inf)
        zero |= y == 0.0
    return 0 if bad else 1 if zero else 2


read_conductances = _compile(_read_conductances, error_model="numpy")
_window_c = _compile(_window)
pulse_devices = _compile(_pulse_devices)
_can_move_c = _compile(_can_move)
candidates = _compile(_candidates)
pulse_dr = _compile(_pulse_dr)


def _pulse(  # type: ignore[no-untyped-def]
    v, healthy, state, pol, reach, use_jit, c2c_v, clip, width, source, use_c2c, c2c_rel,
    pending, dev, clock, idx, dr, movers, z, out,
):
    """One pulse's update in one call: `candidates`, one jitter normal per candidate drawn
    from `source` (`normal_source`; if `use_jit`), `pulse_dr`, one normal of the noise on
    the change per device that moves (if `use_c2c`), `pulse_devices`: the three kernels with
    the draws numpy made between them, in the same order from the same stream. `state` =
    (r, a_set, a_reset, dv_set, dv_reset, wear, cycles_half, r_vol, r_base, t_prog) (flat);
    `z` has room for twice the devices. Returns how many devices are left outside their
    window after the update (their indices in `out`), -1 if nothing was updated (none under
    voltage, or a width of 0)."""
    r, a_set, a_reset, dv_set, dv_reset = state[0], state[1], state[2], state[3], state[4]
    k, under = candidates(v, healthy, r, a_set, a_reset, dv_set, dv_reset, pol, reach, idx)
    if under == 0 or width == 0.0:
        return -1
    ix = idx[:k]
    z_jit = z[:k]
    if use_jit:
        for q in range(k):
            z_jit[q] = source.rng.standard_normal()
    n_move = pulse_dr(ix, v, r, a_set, a_reset, dv_set, dv_reset, z_jit, pol, c2c_v, clip,
                      use_jit, width, dr, movers)
    z_c2c = z[k : k + n_move]
    if use_c2c:
        for q in range(n_move):
            z_c2c[q] = source.rng.standard_normal()
    n_out = pulse_devices(ix, dr, pending, r, state[5], state[6], state[7], state[8],
                          state[9], z_c2c, c2c_rel, use_c2c, dev, clock, out)
    return n_out


pulse = _compile(_pulse)
