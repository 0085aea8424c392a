"""TiO2 device array: sinh I-V and pulse-driven switching dynamics of the data-driven model.

Model (Messaris et al. data-driven ReRAM model in the form of 3it-inpaqt/QDMS Data_Driven.py,
fitted there to the TiO2 device "O921C"; parameters in data/devices/tio2-o921c.yaml):

- Read law: I = a sinh(b V) / R with R the state resistance of the dynamics below. The array
  reports `g` = the conductance a read at the preset's `v_read` (0.2 V) measures, I/V =
  a sinh(b v_read) / (v_read R) (= 1.0815 / R for O921C, and within 1 % of the small-signal
  dI/dV at 0 V), so the I-V law handed to the circuit is `SinhIV(a / k, b)` on that g with
  k = a sinh(b v_read) / v_read. Every conductance figure of the presets (window, stuck
  levels, initial states) is such a read conductance.
- Switching, per polarity, with |V| the magnitude of the device voltage (row minus column):

      SET   (V > 0): dR/dt = -s_set(V) (R - r_set(V))^2    while R > r_set(V)
      RESET (V < 0): dR/dt = +s_reset(V) (r_reset(V) - R)^2 while R < r_reset(V)
      s(V) = A (exp(|V|/t) - 1),   r(V) = r0 + r1 |V|,   R clipped to [R_on, R_off]

  Sign conventions, checked against the source: there s_p = A_p (exp(|V|/t_p) - 1) with
  A_p > 0, t_p < 0 (so s_p < 0 and dR/dt < 0: positive voltage SETs), and
  s_n = A_n (exp(|V|/t_n) - 1) with A_n < 0, t_n < 0 (s_n > 0: negative voltage RESETs);
  r_p(V) = r_p0 + r_p1 V and r_n(V) = r_n0 + r_n1 V with the signed V. Here every parameter is
  a magnitude, the direction is fixed by the polarity, and bounds are written in |V|
  (source SET: r0 = 24579.55, r1 = -13931.61; source RESET: r0 = 26698.39, r1 = -13390.24).
  With the source's negative t the rate saturates above ~0.1 V; the preset uses calibrated
  positive t (rate growing with |V|) so that the lab's ISPP settings converge in tens of
  pulses and half-selected devices drift slowly (see the preset file for every choice).
- Integration over a pulse of constant V and width w is exact: with u = R - r,
  u(w) = u0 / (1 + s |u0| w) (the solution of du/dt = -s u |u|); the source steps the same
  closed form per time sample.
- Pulse width: w enters only through the product s(|V|) w, so the rate alone makes a pulse
  k times shorter act like one at |V| - t ln k (`equivalent_shift`; t = 0.25 V: 0.40 V for
  1 us -> 200 ns). The bound r(|V|) moving with |V| pulls harder at higher |V|, so near the
  window middle a k times shorter pulse needs about 0.6 t ln k more: 0.23-0.26 V for 200 ns,
  0.47-0.48 V for 50 ns, 0.70 V for 10 ns (tests/sim/test_device_widths.py). The rates are
  calibrated at the lab's ~1 us pulses only (`WIDTHS_CALIBRATED`); 50 ns and 200 ns are
  cross-checked by amplitude only (`WIDTHS_CROSS_CHECKED`: the group programs with 200 ns
  pulses and caps 50 ns pulses at 3.8 V, above the ~2.6 / 2.9 V this model needs there for
  what its 2.1 / 2.4 V caps do at 1 us); everything else, 10 ns and 1 ms included, is
  extrapolation (`width_regime`). No line charging or edge shape is modelled: a pulse is its
  flat top.
- Variability: per device (drawn once per array) a log-normal factor on each polarity's A and
  a shift of the voltage the device responds to (|V| -> |V| - dv: thresholds vary); per pulse
  a further voltage jitter and a relative noise on the change (cycle-to-cycle); per read a
  relative current noise with std% = k R + c (source: QDMS O921C read variability fit).
- Stuck devices (rates and levels of the preset) keep their conductance whatever the pulses.
- Random draws of a pulse: one standard normal for the voltage jitter per device that can
  move (healthy, V != 0, and some jitter within +-`JITTER_CLIP` standard deviations would let
  it move: a positive rate and its bound on the side it moves towards), in row-major order,
  then one for the relative noise on the change per device that does move (in the same
  order). The jitter is clipped at `JITTER_CLIP` = 8 (1.2e-15 of the draws lie beyond), so a
  device that cannot move draws nothing: a wired pulse puts a voltage on every device, yet
  most cannot move under it. (Issue 15 changed the stream twice: before it a pulse drew both
  normals for every device of the array; then for every device under voltage. The same
  distribution each time, a different stream.) Only the devices that can move, and those a
  narrowing window has to clip, are updated: compiled kernels (`tio2_kernels`) walk them;
  the numpy path over the whole array is their reference.
- Half-select disturb needs nothing special: the circuit hands every device the voltage it
  sees (V/2, V/3 ...), and the same dynamics act on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.sim import normal_source, tio2_kernels
from xbarlab.sim.iv import SinhIV
from xbarlab.sim.presets import CompactPreset, Polarity

_EMPTY = np.zeros(0)
#: the cycle-to-cycle voltage jitter is a standard normal clipped at this many standard
#: deviations (1.2e-15 of the draws are beyond): a device that cannot move for any jitter
#: within it draws nothing
JITTER_CLIP = 8.0
WIDTHS_CALIBRATED = (1.0e-6, 1.04e-6)  # s: the lab's write-verify pulses (HAA csv headers)
WIDTHS_CROSS_CHECKED = (5.0e-8, 2.0e-7)  # s: the group's 50 ns (B1530A_control) and 200 ns


def width_regime(width: float) -> str:
    """'calibrated', 'cross-checked' (amplitude only) or 'extrapolated' for a pulse width (s)
    under the tio2-o921c rates."""
    lo, hi = WIDTHS_CALIBRATED
    if lo * (1 - 1e-9) <= width <= hi * (1 + 1e-9):
        return "calibrated"
    if any(abs(width - w) <= 1e-9 * w for w in WIDTHS_CROSS_CHECKED):
        return "cross-checked"
    return "extrapolated"


def equivalent_shift(width: float, reference: float, t: float) -> float:
    """How much more |V| (V) a pulse of `width` needs to act as one of `reference` width:
    t ln(reference / width) (negative for longer pulses)."""
    return float(t * np.log(reference / width))


def read_factor(a: float, b: float, v_read: float) -> float:
    """I / (G V) of the sinh law at `v_read`: apparent over state conductance."""
    return float(a * np.sinh(b * v_read) / v_read)


def switching_rate(p: Polarity, v_abs: FloatArray) -> FloatArray:
    """s(|V|) = A (exp(|V|/t) - 1), 1/(ohm s); zero at zero voltage."""
    return np.asarray(p.a * np.expm1(np.asarray(v_abs) / p.t), dtype=np.float64)


def switching_bound(p: Polarity, v_abs: FloatArray) -> FloatArray:
    """r(|V|) = r0 + r1 |V| (ohm): the resistance a long pulse at |V| drives the device to."""
    return np.asarray(p.r0 + p.r1 * np.asarray(v_abs), dtype=np.float64)


def integrate_pulse(
    r: FloatArray, bound: FloatArray, rate: FloatArray, width: float, *, setting: bool
) -> FloatArray:
    """Resistance after `width` seconds at constant voltage (closed form, elementwise).

    SET (`setting`): R moves down to `bound` while above it; RESET: up to `bound` while below."""
    u0 = r - bound
    active = (u0 > 0) if setting else (u0 < 0)
    au = np.abs(u0)
    new = bound + u0 / (1.0 + rate * au * width)
    return np.where(active & (rate > 0), new, r)


class TiO2Devices:
    """An M x N array of TiO2 devices following `CompactPreset` (see module docstring)."""

    #: `read_noise_one`'s constants (slope, intercept, k_read v_read, r_off), found on first use
    _noise_one: tuple[float, float, float, float] | None = None
    #: the factor of the small-signal conductance a solver last asked for (`small_signal`):
    #: from then on `g` computes it in the same pass
    _slope: float | None = None
    #: (g, factor, factor * g, its conductance state or -1) for the state `g` was made for
    _g0_cache: tuple[FloatArray, float, FloatArray, int] | None = None

    def __init__(
        self,
        shape: tuple[int, int],
        params: CompactPreset,
        rng: np.random.Generator,
        *,
        g_init: float | None = None,
        noise: bool = True,
        pristine: bool = False,
        wear_acceleration: float = 1.0,
    ) -> None:
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (rows, cols) >= 1, got {shape}")
        self._shape = (int(shape[0]), int(shape[1]))
        self.params = p = params
        self.noise = noise
        self._k_read = read_factor(p.iv.a, p.iv.b, p.v_read)
        self._iv = SinhIV(p.iv.a / self._k_read, p.iv.b)
        var = p.variability
        lo, hi = p.initial.g_low, p.initial.g_high
        if g_init is None:
            g_read = rng.uniform(lo, hi, size=self._shape)
        else:
            if not g_init > 0:
                raise ValueError(f"g_init must be > 0 S, got {g_init!r}")
            g_read = np.full(self._shape, float(g_init))
        self._r = np.clip(self._k_read / g_read, p.r_on, p.r_off)
        self._a_set = p.set.a * np.exp(var.d2d_rate * rng.standard_normal(self._shape))
        self._a_reset = p.reset.a * np.exp(var.d2d_rate * rng.standard_normal(self._shape))
        self._dv_set = var.d2d_v * rng.standard_normal(self._shape)
        self._dv_reset = var.d2d_v * rng.standard_normal(self._shape)
        state, g_stuck = p.stuck.draw(self._shape, rng)
        self._stuck = state
        stuck = state > 0
        self._r[stuck] = self._k_read / g_stuck[stuck]
        if not (np.isfinite(wear_acceleration) and wear_acceleration >= 1):
            raise ValueError(f"wear_acceleration must be >= 1, got {wear_acceleration!r}")
        self.wear_acceleration = float(wear_acceleration)
        self._init_aging(rng.spawn(1)[0], pristine)  # own stream: the draws above stay put
        #: compiled pulse update of the devices under voltage (False: the numpy path); off
        #: below 32 x 32, where loading the kernel (about 0.25 s of CPU once per process)
        #: would cost more than it saves
        self.compiled = tio2_kernels.AVAILABLE and shape[0] * shape[1] >= 1024
        self._g_cache: FloatArray | None = None
        self._pending: np.ndarray | None = None  # healthy devices outside their window
        self._base_stale = False  # some _r_base differs from _r - _r_vol (after `advance`)
        self._healthy = (self._stuck == 0) & ~self._pristine
        self._n_pristine = int(self._pristine.sum())
        self._views: tuple[np.ndarray, ...] | None = None
        self._consts: dict[float, FloatArray] = {}
        self._scratch = np.empty(self._shape[0] * self._shape[1], dtype=np.int64)
        #: the generator last wrapped for the fused kernel, and its wrapper
        self._source: tuple[np.random.Generator, Any] | None = None
        #: the fused kernel's work arrays: changes, movers, normals, devices left to clip
        self._fused_work: tuple[np.ndarray, ...] | None = None
        self._pol = np.array([p.set.t, p.set.r0, p.set.r1, p.reset.t, p.reset.r0, p.reset.r1])

    # ------------------------------------------------------------------ aging (time, wear)
    def __getstate__(self) -> dict[str, Any]:
        """The state without the compiled path's views of the state arrays (rebuilt when
        needed): a copied or unpickled array would otherwise update the views' copies
        instead of its own state arrays, and drift from what its `g` shows."""
        state = self.__dict__.copy()
        state.update(_views=None, _pending=None, _g_cache=None, _g0_cache=None, _source=None,
                     _fused_work=None)
        return state

    def _init_aging(self, rng: np.random.Generator, pristine: bool) -> None:
        """Device clock, retention drift, volatile share, wear and forming state.

        Drawn from a stream of their own so that arrays without these effects are unchanged.
        """
        p, shape = self.params, self._shape
        self.clock = 0.0  # s of device time
        self._t_prog = np.zeros(shape)  # device time of the last programming change
        self._r_base = self._r.copy()  # non-volatile R at _t_prog
        self._r_vol = np.zeros(shape)  # volatile part of R, decays with volatility.tau
        self._wear = np.zeros(shape)  # full-window swings switched so far
        ret, end = p.retention, p.endurance
        self._drift = (ret.drift_per_decade * np.exp(ret.d2d_log_std * rng.standard_normal(shape))
                       if ret is not None else np.zeros(shape))
        self._cycles_half = (end.cycles_half * np.exp(end.d2d_log_std
                                                      * rng.standard_normal(shape))
                             if end is not None else np.full(shape, np.inf))
        self._pristine = np.zeros(shape, dtype=bool)
        self._dose = np.zeros(shape)
        f = p.forming
        self._v_form = (f.v_form + f.v_form_std * rng.standard_normal(shape)
                        if f is not None else np.full(shape, np.inf))
        self._g_formed = (rng.uniform(f.g_formed_low, f.g_formed_high, size=shape)
                          if f is not None else np.full(shape, np.nan))
        if pristine:
            if f is None:
                raise ValueError(f"preset {p.name!r} has no forming section: no pristine devices")
            self._pristine = self._stuck == 0
            g0 = rng.uniform(f.g_pristine_low, f.g_pristine_high, size=shape)
            self._r = np.where(self._pristine, self._k_read / g0, self._r)
            self._r_base = self._r.copy()

    @property
    def pristine(self) -> np.ndarray:
        """True for devices not formed yet."""
        return self._pristine.copy()

    @property
    def cycles(self) -> FloatArray:
        """Switching cycles each device has seen (full-window swings / 2)."""
        return self._wear / 2.0

    def window(self) -> tuple[FloatArray, FloatArray]:
        """Per-device (R_on, R_off) after wear (ohm): the window closes towards its middle."""
        p = self.params
        if p.endurance is None:
            return np.full(self._shape, p.r_on), np.full(self._shape, p.r_off)
        x = (self.cycles / self._cycles_half) ** p.endurance.steepness
        closed = x / (1.0 + x)
        mid = np.sqrt(p.r_on * p.r_off)
        return p.r_on + (mid - p.r_on) * closed, p.r_off - (p.r_off - mid) * closed

    def _form(self, v: FloatArray, width: float) -> None:
        """Forming dose of pristine devices under positive voltage; formed devices jump to
        their formed conductance and switch normally from then on."""
        f = self.params.forming
        if f is None or not self._pristine.any():
            return
        pos = self._pristine & (v > 0)
        if not pos.any():
            return
        dose = width / f.tau * np.exp((np.where(pos, v, 0.0) - self._v_form) / f.v_scale)
        self._dose += np.where(pos, dose, 0.0)
        formed = pos & (self._dose >= 1.0)
        if formed.any():
            self._pristine &= ~formed
            self._r = np.where(formed, self._k_read / self._g_formed, self._r)
            self._r_base = np.where(formed, self._r, self._r_base)
            self._r_vol = np.where(formed, 0.0, self._r_vol)
            self._t_prog = np.where(formed, self.clock, self._t_prog)
            self._changed(healthy=True)

    def _after_pulse(self, r_old: FloatArray, width: float) -> None:
        """Book a pulse's change: wear, volatile share, programming time; clock += width."""
        p = self.params
        dr = self._r - r_old
        self._wear += self.wear_acceleration * np.abs(dr) / (p.r_off - p.r_on)
        moved = np.abs(dr) > 1e-3 * r_old
        if p.volatility is not None and p.volatility.fraction > 0:
            self._r_vol = np.where(moved, self._r_vol + p.volatility.fraction * dr, self._r_vol)
        self._r_base = self._r - self._r_vol
        self._t_prog = np.where(moved, self.clock, self._t_prog)
        self.clock += width

    def advance(self, seconds: float) -> None:
        """Let `seconds` of device time pass with no voltage: the volatile part of each
        device's change decays, programmed states drift (retention)."""
        if not (np.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"time step must be finite and >= 0 s, got {seconds!r}")
        p = self.params
        if p.volatility is not None:
            self._r_vol = self._r_vol * np.exp(-seconds / p.volatility.tau)
        if p.retention is not None:  # the drift accrued over this interval of each device's age
            t0 = p.retention.t0
            age0 = np.maximum(self.clock - self._t_prog, 0.0)
            grow = np.log10((t0 + age0 + seconds) / (t0 + age0))
            self._r_base = self._r_base * (1.0 + self._drift * grow)
        self.clock += seconds
        r_on, r_off = self.window()
        healthy = (self._stuck == 0) & ~self._pristine
        self._r = np.where(healthy, np.clip(self._r_base + self._r_vol, r_on, r_off), self._r)
        self._changed()
        self._base_stale = True

    # ------------------------------------------------------------------ state
    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def g(self) -> FloatArray:
        """Conductance (S) a read at the preset's v_read measures (I/V); ~ dI/dV at 0 V.

        Read-only, and a new array whenever the state changes (so a map taken before a
        pulse keeps its values)."""
        g = self._g_cache
        if g is None:
            slope = self._slope
            if slope is not None and self.compiled:  # with the solver's g0, in one pass
                g, g0 = np.empty(self._shape), np.empty(self._shape)
                state = tio2_kernels.read_conductances(
                    self._r.reshape(-1), self._k_read, slope, g.reshape(-1), g0.reshape(-1))
                g0.flags.writeable = False
                self._g0_cache = (g, slope, g0, int(state))
            else:
                g = self._k_read / self._r
            g.flags.writeable = False
            self._g_cache = g
        return g

    def small_signal(self, slope: float) -> tuple[FloatArray, FloatArray, int]:
        """(g, slope * g, the state of the latter as `circuit_kernels.conductance_state`
        gives it, or -1 if not known) for the present state: the small-signal conductance a
        solver asks for after every pulse (`DeviceLaw.of_devices`; the same numbers as
        ``np.multiply(slope, g)``). Read-only; from the second state on computed with `g` in
        one compiled pass."""
        g = self.g
        kept = self._g0_cache
        if kept is not None and kept[0] is g and kept[1] == slope:
            return g, kept[2], kept[3]
        self._slope = slope
        g0 = np.multiply(slope, g)
        g0.flags.writeable = False
        self._g0_cache = (g, slope, g0, -1)
        return g, g0, -1

    def _changed(self, *, healthy: bool = False) -> None:
        """Forget what depends on the state (after a change outside `apply_voltage`)."""
        self._g_cache = None
        self._pending = None
        self._views = None
        if healthy:
            self._healthy = (self._stuck == 0) & ~self._pristine
            self._n_pristine = int(self._pristine.sum())

    @property
    def r(self) -> FloatArray:
        """State resistance (ohm)."""
        return self._r.copy()

    @property
    def stuck(self) -> np.ndarray:
        """0 healthy, 1 stuck at LRS, 2 stuck at HRS, per device."""
        return self._stuck.copy()

    @property
    def linear(self) -> bool:
        return False

    @property
    def iv(self) -> SinhIV:
        """The I-V law (optional DeviceArray attribute, see `xbarlab.sim.iv.iv_law_of`)."""
        return self._iv

    def current(self, v: FloatArray) -> FloatArray:
        return self._iv.current(self.g, v)

    def conductance(self, v: FloatArray) -> FloatArray:
        return self._iv.didv(self.g, v)

    def set_g(self, g: FloatArray, mask: np.ndarray) -> None:
        """Set the (read) conductance `g` (S) of the healthy devices in `mask` (clipped to the
        R_on..R_off range; stuck devices keep theirs)."""
        g = np.broadcast_to(np.asarray(g, dtype=np.float64), self._shape)
        if not np.all(np.isfinite(g[mask]) & (g[mask] > 0)):
            raise ValueError("conductances must be finite and > 0 S")
        sel = np.asarray(mask, dtype=bool) & (self._stuck == 0)
        self._r[sel] = np.clip(self._k_read / g[sel], self.params.r_on, self.params.r_off)
        self._r_base[sel] = self._r[sel] - self._r_vol[sel]
        self._pristine[sel] = False
        self._changed(healthy=True)

    def set_g_cell(self, cell: tuple[int, int], g: float) -> None:
        """`set_g` of one device, on scalars: (read) conductance `g` (S) for `cell` if it is
        healthy (the same value as `set_g` gives it)."""
        r, c = cell
        if not (math.isfinite(g) and g > 0):
            raise ValueError("conductances must be finite and > 0 S")
        if self._stuck[r, c] != 0:
            return
        p = self.params
        value = min(max(self._k_read / g, p.r_on), p.r_off)
        self._r[r, c] = value
        self._r_base[r, c] = value - self._r_vol[r, c]
        was_pristine = bool(self._pristine[r, c])
        self._pristine[r, c] = False
        self._changed(healthy=was_pristine)

    # ------------------------------------------------------------------ dynamics
    def apply_voltage(self, v: FloatArray, width: float, rng: np.random.Generator) -> None:
        """Evolve every device under its voltage `v` (M, N) held for `width` seconds.

        Draws (see the module docstring): one normal per device that can move for the
        jitter (clipped at +-`JITTER_CLIP`), then one per device that moves for the noise on
        its change."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != self._shape:
            raise ValueError(f"voltage map has shape {v.shape}, the array is {self._shape}")
        if not (math.isfinite(width) and width >= 0):
            raise ValueError(f"pulse width must be finite and >= 0 s, got {width!r}")
        if self._n_pristine:
            self._form(v, width)
        flat = v.reshape(-1)
        var = self.params.variability
        use_jit = self.noise and var.c2c_v > 0
        reach = var.c2c_v * JITTER_CLIP if use_jit else 0.0
        if self.compiled:
            source = self._source_of(rng)
            if source is not None:  # the whole update and its draws in one kernel
                self._pulse_fused(flat, width, source, use_jit, reach)
                return
            buf = self._scratch
            k, under = tio2_kernels.candidates(
                flat, self._healthy.reshape(-1), *self._kernel_views()[:5], self._pol, reach,
                buf,
            )
            idx = buf[:k]
        else:
            idx, under = self._candidates_numpy(flat, reach)
        if under == 0 or width == 0:
            self._nothing_moved(width)
            return
        z_jit = rng.standard_normal(idx.size) if use_jit else _EMPTY  # clipped where used
        if self.compiled:
            dr = np.empty(idx.size)
            movers = np.empty(idx.size, dtype=np.int64)
            views = self._kernel_views()
            n_move = tio2_kernels.pulse_dr(idx, flat, *views[:5], z_jit, self._pol,
                                           float(var.c2c_v), JITTER_CLIP, use_jit, float(width),
                                           dr, movers)
        else:
            dr = self._dr_numpy(flat, idx, z_jit, use_jit, width)
            n_move = int(np.count_nonzero(dr))
        use_c2c = self.noise and var.c2c_rel > 0
        z_c2c = rng.standard_normal(n_move) if use_c2c else _EMPTY
        if self.compiled:
            self._pulse_compiled(idx, dr, z_c2c, use_c2c, width)
        else:
            self._pulse_numpy(idx, dr, z_c2c, use_c2c, width)
        self._g_cache = None

    def _candidates_numpy(self, flat: FloatArray, reach: float) -> tuple[np.ndarray, int]:
        """Flat indices of the healthy devices under voltage that can move for a jitter
        within +-`reach` V, and how many are under voltage (`tio2_kernels.candidates`)."""
        idx = np.flatnonzero(flat)
        if idx.size:
            idx = idx[self._healthy.reshape(-1)[idx] & ~np.isnan(flat[idx])]
        if not idx.size:
            return idx, 0
        p = self.params
        x = flat[idx]
        r = self._r.reshape(-1)[idx]
        ok = np.zeros(idx.size, dtype=bool)
        for sel, pol, a_dev, dv, setting in (
            (x > 0, p.set, self._a_set, self._dv_set, True),
            (x < 0, p.reset, self._a_reset, self._dv_reset, False),
        ):
            a = a_dev.reshape(-1)[idx[sel]]
            v_max = (np.abs(x[sel]) - dv.reshape(-1)[idx[sel]]) + reach
            if setting:
                lim = r[sel] - (pol.r0 + (pol.r1 * v_max if pol.r1 < 0 else 0.0))
                side = lim > 0.0
            else:
                lim = r[sel] - (pol.r0 + (pol.r1 * v_max if pol.r1 > 0 else 0.0))
                side = lim < 0.0
            ok[sel] = (v_max > 0.0) & (a > 0.0) & (pol.t > 0.0) & side
        return idx[ok], int(idx.size)

    def _dr_numpy(self, flat: FloatArray, idx: np.ndarray, z_jit: FloatArray, use_jit: bool,
                  width: float) -> FloatArray:
        """The change of each device `idx` before the noise on it (`tio2_kernels.pulse_dr`)."""
        p = self.params
        x = flat[idx]
        r_old = self._r.reshape(-1)[idx]
        dr = np.zeros(idx.size)
        for sel, pol, a_dev, dv, setting in (
            (x > 0, p.set, self._a_set, self._dv_set, True),
            (x < 0, p.reset, self._a_reset, self._dv_reset, False),
        ):
            v_eff = np.abs(x[sel]) - dv.reshape(-1)[idx[sel]]
            if use_jit:
                z = np.clip(z_jit[sel], -JITTER_CLIP, JITTER_CLIP)
                v_eff = v_eff - p.variability.c2c_v * z
            on = v_eff > 0.0
            v_on = np.where(on, v_eff, 0.0)
            rate = a_dev.reshape(-1)[idx[sel]] * np.expm1(v_on / pol.t)
            moved = integrate_pulse(r_old[sel], switching_bound(pol, v_on), rate, width,
                                    setting=setting)
            dr[sel] = np.where(on, moved - r_old[sel], 0.0)
        return dr

    def _pulse_numpy(self, idx: np.ndarray, dr: FloatArray, z_c2c: FloatArray, use_c2c: bool,
                     width: float) -> None:
        """The pulse update over the whole array (the reference of `_pulse_compiled`): the
        changes `dr` of the devices `idx`, noise on the nonzero ones, every healthy device
        clipped into its window."""
        r_before = self._r.copy()
        if use_c2c:
            nz = dr != 0.0
            dr = dr.copy()
            dr[nz] = dr[nz] * np.clip(1.0 + self.params.variability.c2c_rel * z_c2c, 0.0, None)
        full = np.zeros(self._shape)
        full.reshape(-1)[idx] = dr
        r_on, r_off = self.window()
        self._r = np.where(self._healthy, np.clip(self._r + full, r_on, r_off), self._r)
        self._after_pulse(r_before, width)
        self._pending = None
        self._views = None
        self._base_stale = False

    _KERNEL_STATE = ("_r", "_a_set", "_a_reset", "_dv_set", "_dv_reset", "_wear",
                     "_cycles_half", "_r_vol", "_r_base", "_t_prog")

    def _kernel_views(self) -> tuple[np.ndarray, ...]:
        """Flat views of the state arrays the kernel reads and updates in place (kept until
        one of them is replaced: `_changed`, the numpy path)."""
        views = self._views
        if views is None:
            out = []
            for name in self._KERNEL_STATE:
                arr = getattr(self, name)
                if not arr.flags.c_contiguous or not arr.flags.writeable:
                    arr = np.array(arr, order="C")
                    setattr(self, name, arr)
                out.append(arr.reshape(-1))
            self._views = views = tuple(out)
        return views

    def _nothing_moved(self, width: float) -> None:
        """After a pulse that moved no device: the non-volatile part brought up to date if a
        wait left it stale (a new array), and the clock advanced."""
        if self._base_stale:
            self._r_base = self._r - self._r_vol
            self._base_stale = False
            self._views = None
        self.clock += width

    def _moved(self, width: float) -> None:
        """After the compiled update of the devices that moved: the non-volatile part of the
        others brought up to date (in place) if a wait left it stale, and the clock
        advanced."""
        if self._base_stale:
            np.subtract(self._r, self._r_vol, out=self._r_base)
            self._base_stale = False
        self.clock += width

    def _source_of(self, rng: np.random.Generator) -> Any:
        """`rng` wrapped for the fused kernel (`normal_source`), kept while the same
        generator comes back; None where it cannot be (not a numpy Generator)."""
        kept = self._source
        if kept is not None and kept[0] is rng:
            return kept[1]
        source = normal_source.source_of(rng)
        self._source = (rng, source) if source is not None else None
        return source

    def _pulse_fused(self, flat: FloatArray, width: float, source: Any, use_jit: bool,
                     reach: float) -> None:
        """`apply_voltage` on the compiled path in one kernel call (`tio2_kernels.pulse`):
        the same draws, in the same order, and the same update as the three kernels."""
        var = self.params.variability
        pending = self._outside_window()
        size = flat.shape[0]
        work = self._fused_work
        if work is None or work[0].shape[0] != size:
            work = self._fused_work = (np.empty(size), np.empty(size, dtype=np.int64),
                                       np.empty(2 * size), np.empty(size, dtype=np.int64))
        views = self._kernel_views()
        n_out = tio2_kernels.pulse(
            flat, self._healthy.reshape(-1), views, self._pol, reach, bool(use_jit),
            float(var.c2c_v), JITTER_CLIP, float(width), source,
            bool(self.noise and var.c2c_rel > 0), float(var.c2c_rel), pending,
            self._dev_consts(),
            float(self.clock), self._scratch, work[0], work[1], work[2], work[3],
        )
        if n_out < 0:  # nothing under voltage, or no time: nothing moved
            self._nothing_moved(width)
            return
        self._pending = work[3][:n_out].copy()
        self._moved(width)
        self._g_cache = None

    def _outside_window(self) -> np.ndarray:
        """Flat indices of the healthy devices outside their window (kept by the compiled
        update between pulses; found again after a change elsewhere)."""
        pending = self._pending
        if pending is None:
            lo, hi = self.window()
            pending = np.flatnonzero(self._healthy & ((self._r < lo) | (self._r > hi)))
        return pending

    def _dev_consts(self) -> FloatArray:
        """The device constants of `tio2_kernels.pulse_devices` (kept per wear
        acceleration)."""
        consts = self._consts.get(self.wear_acceleration)
        if consts is None:
            p = self.params
            end = p.endurance
            vol = p.volatility.fraction if p.volatility is not None else 0.0
            consts = np.array([p.r_on, p.r_off, np.sqrt(p.r_on * p.r_off), end is not None,
                               end.steepness if end is not None else 1.0,
                               self.wear_acceleration, vol])
            self._consts[self.wear_acceleration] = consts
        return consts

    def _pulse_compiled(self, idx: np.ndarray, dr: FloatArray, z_c2c: FloatArray,
                        use_c2c: bool, width: float) -> None:
        """The pulse update of the devices that move and of those a narrowed window has to
        clip, compiled (`tio2_kernels.pulse_devices`); same result as `_pulse_numpy`."""
        p = self.params
        pending = self._outside_window()
        consts = self._dev_consts()
        out = np.empty(idx.size + pending.size, dtype=np.int64)
        views = self._kernel_views()
        k = tio2_kernels.pulse_devices(
            idx, dr, pending, views[0], *views[5:], z_c2c,
            float(p.variability.c2c_rel), use_c2c, consts, float(self.clock), out,
        )
        self._pending = out[:k].copy()
        self._moved(width)

    def read_noise(self, currents: FloatArray, rng: np.random.Generator) -> FloatArray:
        """Relative noise with std% = slope R + intercept, R estimated from |I| at v_read."""
        rn = self.params.read_noise
        if not self.noise or (rn.slope_pct_per_ohm == 0 and rn.intercept_pct == 0):
            return currents
        if type(currents) is np.ndarray and currents.shape == (1,) \
                and currents.dtype == np.float64:  # one read: the same arithmetic on floats
            return np.array([self.read_noise_one(float(currents[0]), rng)])
        i = np.asarray(currents, dtype=np.float64)
        mag = np.abs(i)  # R estimated from |I|; 0 A reads as R_off
        r_app = np.divide(self._k_read * self.params.v_read, mag, out=np.full_like(mag, np.inf),
                          where=mag > 0)
        r_app = np.minimum(r_app, self.params.r_off)
        std = (rn.slope_pct_per_ohm * r_app + rn.intercept_pct) / 100.0
        return np.asarray(i * (1.0 + std * rng.standard_normal(i.shape)), dtype=np.float64)

    def read_noise_one(self, cur: float, rng: np.random.Generator) -> float:
        """`read_noise` of one current (A), on floats (the same value and draw)."""
        form = self._noise_one
        if form is None:
            p = self.params
            rn = p.read_noise
            form = self._noise_one = (rn.slope_pct_per_ohm, rn.intercept_pct,
                                      self._k_read * p.v_read, p.r_off)
        slope, intercept, kv, r_off = form
        if not self.noise or (slope == 0 and intercept == 0):
            return cur
        size = abs(cur)
        r_one = min(kv / size if size > 0 else math.inf, r_off)
        sd = (slope * r_one + intercept) / 100.0
        return cur * (1.0 + sd * rng.standard_normal())

    def describe(self) -> dict[str, Any]:
        return {
            "model": "tio2",
            "preset": self.params.name,
            "params": self.params.model_dump(),
            "noise": self.noise,
            "n_stuck_lrs": int((self._stuck == 1).sum()),
            "n_stuck_hrs": int((self._stuck == 2).sum()),
            "n_pristine": int(self._pristine.sum()),
            "wear_acceleration": self.wear_acceleration,
        }
