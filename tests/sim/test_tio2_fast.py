"""The compiled pulse update of `TiO2Devices` (only the devices under voltage, and those a
narrowed window clips) against the numpy update over the whole array: same states to 1e-12
after random sequences of pulses (single-cell bias maps and dense wired-like maps), waits,
set_g and forming, with the cycle-to-cycle noise drawn in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim import tio2_kernels
from xbarlab.sim.presets import load_preset
from xbarlab.sim.tio2 import JITTER_CLIP, TiO2Devices

pytestmark = pytest.mark.skipif(not tio2_kernels.AVAILABLE, reason="numba missing")

STATE = ("_r", "_r_base", "_r_vol", "_wear", "_t_prog", "_pristine", "_dose")


def _pair(shape: tuple[int, int], seed: int, **kw: object) -> tuple[TiO2Devices, TiO2Devices]:
    preset = load_preset("tio2-o921c")
    out = []
    for compiled in (True, False):
        d = TiO2Devices(shape, preset, np.random.default_rng(seed), **kw)  # type: ignore[arg-type]
        d.compiled = compiled
        out.append(d)
    return out[0], out[1]


def _same(a: TiO2Devices, b: TiO2Devices) -> None:
    for name in STATE:
        x, y = getattr(a, name), getattr(b, name)
        if x.dtype == bool:
            assert np.array_equal(x, y), name
        else:
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-300, err_msg=name)
    assert a.clock == b.clock
    np.testing.assert_allclose(a.g, b.g, rtol=1e-12)


def _random_map(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    kind = rng.integers(4)
    cell = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
    volts = float(rng.choice([-1, 1]) * rng.uniform(0.5, 2.6))
    if kind == 0:  # wired-like: every device sees some voltage
        return rng.normal(0.0, 0.3, shape)
    scheme = (BiasScheme.HALF, BiasScheme.THIRD, BiasScheme.GROUNDED)[kind - 1]
    row_v, col_v = line_biases(shape, cell, volts, scheme)
    return row_v[:, None] - col_v[None, :]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_pulses_match_the_numpy_update(seed: int) -> None:
    shape = (9, 7)
    fast, ref = _pair(shape, seed, wear_acceleration=3e6)  # windows narrow visibly
    rng = np.random.default_rng(100 + seed)
    for step in range(300):
        v = _random_map(rng, shape)
        width = float(rng.choice([1e-6, 2e-7, 0.0, 1e-5]))
        s = int(rng.integers(1 << 30))
        fast.apply_voltage(v, width, np.random.default_rng(s))
        ref.apply_voltage(v, width, np.random.default_rng(s))
        if step % 37 == 5:
            wait = float(rng.uniform(0.0, 0.1))
            for d in (fast, ref):
                d.advance(wait)
        if step % 53 == 11:
            mask = rng.random(shape) < 0.2
            g = rng.uniform(50e-6, 700e-6, shape)
            for d in (fast, ref):
                d.set_g(g, mask)
        _same(fast, ref)
    assert (fast._wear > 0).any() and fast._pending is not None


def test_windows_narrowed_by_wear_clip_devices_off_the_pulsed_lines() -> None:
    """A device left at the edge of a window that wear then narrows is clipped by the next
    pulse anywhere in the array (the numpy update clips every healthy device)."""
    fast, ref = _pair((6, 6), 3, wear_acceleration=3e7)
    v = np.zeros((6, 6))
    for d in (fast, ref):
        for k in range(31):  # SET to the bound, RESET away, ...: wear after each move
            v[0, 0] = 2.5 if k % 2 == 0 else -1.5
            d.apply_voltage(v, 1e-6, np.random.default_rng(k))
    assert fast._pending is not None and 0 in fast._pending  # outside its narrowed window
    lo, hi = fast.window()
    r00 = fast._r[0, 0]
    assert not lo[0, 0] <= r00 <= hi[0, 0]
    w = np.zeros((6, 6))
    w[5, 5] = -1.5
    for d in (fast, ref):
        d.apply_voltage(w, 1e-6, np.random.default_rng(2))
    _same(fast, ref)
    assert fast._r[0, 0] == np.clip(r00, lo[0, 0], hi[0, 0])  # clipped without a voltage


def test_noise_off_and_pristine_devices_match() -> None:
    fast, ref = _pair((5, 8), 4, pristine=True)
    rng = np.random.default_rng(7)
    for _ in range(80):
        v = _random_map(rng, (5, 8)) * 1.6
        s = int(rng.integers(1 << 30))
        fast.apply_voltage(v, 1e-4, np.random.default_rng(s))
        ref.apply_voltage(v, 1e-4, np.random.default_rng(s))
        _same(fast, ref)
    assert not fast.pristine.all()
    quiet, quiet_ref = _pair((5, 8), 5, noise=False)
    for _ in range(40):
        v = _random_map(rng, (5, 8))
        quiet.apply_voltage(v, 1e-6, np.random.default_rng(0))
        quiet_ref.apply_voltage(v, 1e-6, np.random.default_rng(0))
    _same(quiet, quiet_ref)


def test_a_pulse_draws_for_the_devices_that_can_move() -> None:
    """The stream a pulse consumes: one normal per healthy device that can move (jitter),
    then one per device that moved (noise on the change), none for the others; a device
    that no jitter within the clip lets move draws nothing and does not change."""
    for compiled in (True, False):
        d, _ = _pair((16, 16), 6)
        d.compiled = compiled
        row_v, col_v = line_biases((16, 16), (3, 4), 1.5, BiasScheme.HALF)
        v = row_v[:, None] - col_v[None, :]
        r0 = d.r
        reach = d.params.variability.c2c_v * JITTER_CLIP
        idx, under = d._candidates_numpy(v.reshape(-1), reach)
        assert under == int(((v != 0) & (d.stuck == 0)).sum())
        assert 0 < idx.size < under  # half-selected devices on the wrong side of the bound
        rng = np.random.default_rng(9)
        d.apply_voltage(v, 1e-6, rng)
        moved = np.flatnonzero((d.r != r0).reshape(-1))
        assert np.isin(moved, idx).all()
        probe = np.random.default_rng(9)
        probe.standard_normal(idx.size + moved.size)
        assert rng.standard_normal() == probe.standard_normal()


def test_devices_that_cannot_move_stay_put_for_any_jitter() -> None:
    """The candidate rule is exact: with the jitter at either clip for every device, the
    devices it leaves out do not change."""
    d, _ = _pair((12, 12), 11, noise=True)
    rng = np.random.default_rng(3)
    v = rng.normal(0.0, 0.4, (12, 12))
    reach = d.params.variability.c2c_v * JITTER_CLIP
    idx, _ = d._candidates_numpy(v.reshape(-1), reach)
    out = np.setdiff1d(np.flatnonzero((v != 0) & d._healthy), idx)
    assert out.size > 0
    for z in (-JITTER_CLIP, JITTER_CLIP, 0.0):
        dr = d._dr_numpy(v.reshape(-1), out, np.full(out.size, z), True, 1e-6)
        assert not dr.any()


def test_g_is_a_read_only_snapshot() -> None:
    d, _ = _pair((4, 4), 8)
    before = d.g
    with pytest.raises(ValueError):
        before[0, 0] = 1.0
    v = np.zeros((4, 4))
    v[1, 1] = 2.0
    d.apply_voltage(v, 1e-6, np.random.default_rng(0))
    assert d.g is not before and d.g[1, 1] != before[1, 1]
    with pytest.raises(ValueError, match="finite"):
        d.set_g(np.full((4, 4), np.nan), np.ones((4, 4), dtype=bool))


def test_a_copy_made_after_pulses_evolves_as_the_original() -> None:
    """The compiled update works through flat views of the state arrays; a deep copy (or an
    unpickled array) must update its own arrays, not copies of the original's views."""
    import copy
    import pickle

    d, _ = _pair((8, 8), 3)
    row_v, col_v = line_biases((8, 8), (2, 5), 1.4, BiasScheme.HALF)
    v = row_v[:, None] - col_v[None, :]
    d.apply_voltage(v, 1e-6, np.random.default_rng(0))  # builds the kernel's views
    twins = [copy.deepcopy(d), pickle.loads(pickle.dumps(d))]
    for k in range(6):
        d.apply_voltage(v * (1 if k % 2 else -1), 1e-6, np.random.default_rng(k))
        for twin in twins:
            twin.apply_voltage(v * (1 if k % 2 else -1), 1e-6, np.random.default_rng(k))
    for twin in twins:
        for name in STATE:
            assert np.array_equal(getattr(twin, name), getattr(d, name)), name
        assert np.array_equal(twin.g, d.g)


def test_the_one_kernel_pulse_draws_and_updates_as_the_three_kernels() -> None:
    """The compiled update in one kernel call, its normals drawn in the kernel from the
    simulator's generator, against the three kernels with numpy's draws between them: the
    same states and the same stream, bit for bit, with draws made from Python on the same
    generator in between (read noise)."""
    shape = (10, 12)
    one, three = _pair(shape, 21, wear_acceleration=3e6)
    three.compiled = True
    three._source_of = lambda rng: None  # type: ignore[method-assign]
    gens = [np.random.default_rng(5), np.random.default_rng(5)]
    rng = np.random.default_rng(42)
    for step in range(250):
        v = _random_map(rng, shape)
        width = float(rng.choice([1e-6, 0.0, 1e-5]))
        for d, gen in zip((one, three), gens, strict=True):
            d.apply_voltage(v, width, gen)
            gen.standard_normal()  # a read's noise, drawn from Python
        if step % 41 == 7:
            for d in (one, three):
                d.advance(0.05)
        for name in STATE:
            assert np.array_equal(getattr(one, name), getattr(three, name)), name
    assert one._source is not None and one._source[0] is gens[0]
    assert np.array_equal(gens[0].standard_normal(4), gens[1].standard_normal(4))


def test_setting_one_device_is_set_g_of_that_device() -> None:
    """`set_g_cell` (one device, on scalars) leaves the state `set_g` with a one-cell mask
    leaves, for healthy, pristine and stuck devices."""
    one, ref = _pair((6, 5), 13, pristine=True)
    for d in (one, ref):
        d._stuck[4, 1] = 2  # a stuck device keeps its state
        d._changed(healthy=True)
    cells = [(0, 0), (5, 4), (2, 3), (2, 3), (4, 1)]
    rng = np.random.default_rng(1)
    for cell in cells:
        g = float(rng.uniform(20e-6, 900e-6))  # beyond the window too: clipped alike
        mask = np.zeros((6, 5), dtype=bool)
        mask[cell] = True
        one.set_g_cell(cell, g)
        ref.set_g(np.full((6, 5), g), mask)
        for name in STATE:
            assert np.array_equal(getattr(one, name), getattr(ref, name)), name
        assert np.array_equal(one._healthy, ref._healthy) and one._n_pristine == ref._n_pristine
    with pytest.raises(ValueError, match="finite"):
        one.set_g_cell((1, 1), float("nan"))


def test_the_small_signal_conductance_is_numpys_product_kept_per_state() -> None:
    """`small_signal` (what a wired solver's law asks for after every pulse): numpy's
    product the first time, from then on computed with `g` in one compiled pass; the same
    numbers bit for bit either way, read-only, kept per state, its state checked."""
    from xbarlab.sim import circuit_kernels

    d, _ = _pair((6, 5), 11)
    slope = 0.73956 * 1.23844
    g, g0, state = d.small_signal(slope)
    assert state == -1  # numpy's product: the solver checks it
    assert np.array_equal(g0, np.multiply(slope, g))
    assert d.small_signal(slope)[1] is g0
    rng = np.random.default_rng(0)
    for _ in range(6):
        before = g0
        d.apply_voltage(_random_map(rng, (6, 5)), 1e-6, rng)
        g, g0, state = d.small_signal(slope)
        assert g0 is not before and g is d.g
        assert np.array_equal(g, d._k_read / d._r)
        assert np.array_equal(g0, np.multiply(slope, g))
        assert state == circuit_kernels.conductance_state(g0) == 2
        assert not (g.flags.writeable or g0.flags.writeable)
        assert d.small_signal(slope)[1] is g0
    other = d.small_signal(2.0 * slope)  # another factor: not the kept one
    assert other[2] == -1 and np.array_equal(other[1], np.multiply(2.0 * slope, d.g))


@pytest.mark.parametrize(("r", "state"), [
    ([1e4, 2e4, 5e3], 2),
    ([1e4, np.inf, 5e3], 1),  # g = 0: lines may float
    ([1e4, -2e4, 5e3], 0),
    ([1e4, np.nan, 5e3], 0),
    ([1e4, 0.0, 5e3], 0),  # g = inf
])
def test_read_conductances_reports_the_state_the_solver_would_find(
    r: list[float], state: int,
) -> None:
    from xbarlab.sim import circuit_kernels

    r_arr = np.array(r)
    g, g0 = np.empty(3), np.empty(3)
    got = tio2_kernels.read_conductances(r_arr, 1.0815, 0.84, g, g0)
    with np.errstate(divide="ignore", invalid="ignore"):
        want_g = 1.0815 / r_arr
    assert np.array_equal(g, want_g, equal_nan=True)
    assert np.array_equal(g0, np.multiply(0.84, want_g), equal_nan=True)
    assert got == state == circuit_kernels.conductance_state(g0.reshape(1, 3))
