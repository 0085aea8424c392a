"""TiO2 device model: I-V, integrated switching dynamics, variability, stuck devices."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.integrate import solve_ivp

from xbarlab.crossbar import BiasScheme
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import DeviceArray, make_device_array
from xbarlab.sim.presets import (
    CompactPreset,
    PresetError,
    load_compact_preset,
    load_preset_file,
    preset_dir,
)
from xbarlab.sim.tio2 import TiO2Devices, integrate_pulse

NAME = "tio2-o921c"


def _params(**changes: Any) -> CompactPreset:
    """The preset with dotted-path overrides, e.g. ``{"variability.d2d_v": 0.0}``."""
    data = load_compact_preset(NAME).model_dump()
    for dotted, value in changes.items():
        node = data
        *head, last = dotted.split("__")
        for h in head:
            node = node[h]
        node[last] = value
    return CompactPreset.model_validate(data)


def _ideal(**changes: Any) -> CompactPreset:
    """No device-to-device spread, no stuck devices."""
    base = {
        "variability__d2d_v": 0.0, "variability__d2d_rate": 0.0,
        "stuck__lrs_rate": 0.0, "stuck__hrs_rate": 0.0,
    }
    return _params(**{**base, **changes})


def _devices(p: CompactPreset, shape: tuple[int, int] = (4, 4), seed: int = 0,
             g_init: float | None = 250e-6, noise: bool = False) -> TiO2Devices:
    return TiO2Devices(shape, p, np.random.default_rng(seed), g_init=g_init, noise=noise)


def _pulse(dev: TiO2Devices, v: float, width: float, seed: int = 0) -> None:
    dev.apply_voltage(np.full(dev.shape, v), width, np.random.default_rng(seed))


# ------------------------------------------------------------------ I-V


def test_current_is_the_sinh_law_and_conductance_its_derivative() -> None:
    p = load_compact_preset(NAME)
    dev = _devices(_ideal())
    v = np.linspace(-2, 2, 41)[:, None, None] * np.ones(dev.shape)
    expected = p.iv.a / dev.r * np.sinh(p.iv.b * v)  # the source's law on the state R
    np.testing.assert_allclose(dev.current(v), expected, rtol=1e-12)
    h = 1e-6
    numeric = (dev.current(v + h) - dev.current(v - h)) / (2 * h)
    np.testing.assert_allclose(dev.conductance(v), numeric, rtol=1e-6)
    assert dev.linear is False and isinstance(dev, DeviceArray)


def test_a_read_at_0p2_V_sees_the_initial_conductance() -> None:
    # g_init is a read conductance (I/V at 0.2 V), as on the bench
    dev = _devices(_ideal(), g_init=300e-6)
    i = dev.current(np.full(dev.shape, 0.2))
    np.testing.assert_allclose(i / 0.2, 300e-6, rtol=1e-12)
    np.testing.assert_allclose(dev.g, 300e-6, rtol=1e-12)
    # and g is the small-signal conductance at 0 V to within 1 %
    np.testing.assert_allclose(dev.conductance(np.zeros(dev.shape)), dev.g, rtol=0.011)


# ------------------------------------------------------------------ dynamics


@pytest.mark.parametrize("setting", [True, False])
@pytest.mark.parametrize(("r0", "bound", "rate"), [(8000.0, 2000.0, 3.0), (3000.0, 12000.0, 0.5),
                                                    (5000.0, 4990.0, 50.0)])
def test_closed_form_matches_fine_step_integration(
    setting: bool, r0: float, bound: float, rate: float
) -> None:
    width = 2e-6

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        r = y[0]
        if setting:  # dR/dt = -s (R - r)^2 while R > r
            return np.array([-rate * (r - bound) ** 2 if r > bound else 0.0])
        return np.array([rate * (bound - r) ** 2 if r < bound else 0.0])

    sol = solve_ivp(
        rhs, (0, width), [r0], method="RK45", rtol=1e-10, atol=1e-9, max_step=width / 1e4
    )
    got = integrate_pulse(np.array(r0), np.array(bound), np.array(rate), width, setting=setting)
    assert float(got) == pytest.approx(sol.y[0, -1], rel=1e-7)


def test_pulses_split_in_two_equal_one_pulse_of_twice_the_width() -> None:
    # an exact integration is a flow: two w-pulses == one 2w-pulse
    a, b = _devices(_ideal()), _devices(_ideal())
    for _ in range(2):
        _pulse(a, 1.3, 1e-6)
    _pulse(b, 1.3, 2e-6)
    np.testing.assert_allclose(a.g, b.g, rtol=1e-12)


def test_positive_pulses_set_negative_pulses_reset() -> None:
    dev = _devices(_ideal())
    g0 = dev.g.copy()
    _pulse(dev, 1.2, 1e-6)
    assert (dev.g > g0).all()
    g1 = dev.g.copy()
    _pulse(dev, -1.2, 1e-6)
    assert (dev.g < g1).all()


def test_change_grows_with_amplitude_and_width() -> None:
    changes = []
    for v in (0.8, 1.0, 1.2, 1.4):
        dev = _devices(_ideal())
        g0 = dev.g.copy()
        _pulse(dev, v, 1e-6)
        changes.append(float((dev.g - g0).mean()))
    assert all(b > a > 0 for a, b in pairwise(changes))
    by_width = []
    for w in (0.5e-6, 1e-6, 2e-6):
        dev = _devices(_ideal())
        g0 = dev.g.copy()
        _pulse(dev, -1.2, w)
        by_width.append(float((g0 - dev.g).mean()))
    assert all(b > a > 0 for a, b in pairwise(by_width))


@pytest.mark.parametrize("v", [0.6, 0.7, 0.8, -0.6, -0.7, -0.9])
def test_long_pulses_saturate_at_the_amplitude_dependent_bound(v: float) -> None:
    p = _ideal()
    pol = p.set if v > 0 else p.reset
    bound = float(np.clip(pol.r0 + pol.r1 * abs(v), p.r_on, p.r_off))
    start = 400e-6 if v < 0 else 120e-6  # read conductances far on the moving side
    dev = _devices(p, g_init=start)
    _pulse(dev, v, 1e3)  # the approach is algebraic (u ~ 1/(s t)): a very long pulse
    np.testing.assert_allclose(dev.r, bound, rtol=1e-3)
    # a larger amplitude saturates further
    dev2 = _devices(p, g_init=start)
    _pulse(dev2, v * 1.15, 1e3)
    assert (dev2.g > dev.g).all() if v > 0 else (dev2.g < dev.g).all()


def test_no_change_on_the_far_side_of_the_bound() -> None:
    # at +0.6 V the SET bound is ~3 kohm: a device already below it does not move
    p = _ideal()
    dev = _devices(p, g_init=500e-6)
    r_before = dev.r
    assert (r_before < p.set.r0 + p.set.r1 * 0.6).all()
    g0 = dev.g.copy()
    _pulse(dev, 0.6, 1e-3)
    np.testing.assert_array_equal(dev.g, g0)


def test_conductance_stays_within_r_on_r_off() -> None:
    p = _params()
    dev = _devices(p, shape=(16, 16), g_init=None, noise=True)
    rng = np.random.default_rng(1)
    for v in (3.0, -3.0, 2.5, -2.8):
        for _ in range(20):
            dev.apply_voltage(np.full(dev.shape, v), 1e-4, rng)
            r = dev.r[dev.stuck == 0]
            assert r.min() >= p.r_on * (1 - 1e-12) and r.max() <= p.r_off * (1 + 1e-12)


def test_zero_voltage_and_zero_width_change_nothing() -> None:
    dev = _devices(_params(), g_init=None, noise=True)
    g0 = dev.g.copy()
    dev.apply_voltage(np.zeros(dev.shape), 1e-3, np.random.default_rng(0))
    _pulse(dev, 1.5, 0.0)
    np.testing.assert_array_equal(dev.g, g0)


def test_bad_pulse_input_is_refused() -> None:
    dev = _devices(_ideal())
    with pytest.raises(ValueError, match="shape"):
        dev.apply_voltage(np.zeros((2, 2)), 1e-6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="width"):
        _pulse(dev, 1.0, -1e-6)


# ------------------------------------------------------------------ variability


def test_same_seed_same_array_and_same_trajectory() -> None:
    def run(seed: int) -> np.ndarray:
        dev = TiO2Devices((6, 6), _params(), np.random.default_rng(seed), noise=True)
        rng = np.random.default_rng(seed + 100)
        for v in (1.3, -1.3, 1.5):
            dev.apply_voltage(np.full(dev.shape, v), 1e-6, rng)
        return dev.g.copy()

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.allclose(run(3), run(4))


def test_device_to_device_spread_of_the_response_matches_the_parameters() -> None:
    # one small pulse at V: dR = s u^2 w with s = A e^d (exp((V - dv)/t) - 1) and
    # u = R - r0 - r1 (V - dv); to first order in dv,
    # var(log dR) = d2d_rate^2 + d2d_v^2 (e^x / (t (e^x - 1)) - 2 r1 / u)^2, x = V/t
    p = _params(stuck__lrs_rate=0.0, stuck__hrs_rate=0.0)
    dev = _devices(p, shape=(120, 120), g_init=250e-6, seed=5)
    r0 = dev.r
    v, w = 1.2, 1e-8  # a short pulse keeps the change in the small-change regime
    _pulse(dev, v, w)
    dr = r0 - dev.r
    x = v / p.set.t
    u = float(r0.mean()) - p.set.r0 - p.set.r1 * v
    slope = np.exp(x) / (p.set.t * np.expm1(x)) - 2 * p.set.r1 / u
    expected = np.hypot(p.variability.d2d_rate, p.variability.d2d_v * slope)
    assert np.std(np.log(dr)) == pytest.approx(expected, rel=0.08)


def test_cycle_to_cycle_noise_magnitude() -> None:
    # no d2d: the spread of one pulse's change across devices is c2c only
    p = _ideal(variability__c2c_v=0.0)
    dev = _devices(p, shape=(100, 100), noise=True)
    r0 = dev.r
    dev.apply_voltage(np.full(dev.shape, 1.2), 1e-8, np.random.default_rng(9))
    dr = r0 - dev.r
    assert np.std(dr) / np.mean(dr) == pytest.approx(p.variability.c2c_rel, rel=0.06)


@pytest.mark.parametrize("g_read", [100e-6, 300e-6, 500e-6])
def test_read_noise_follows_the_published_fit(g_read: float) -> None:
    p = _ideal()
    dev = _devices(p, shape=(1, 1), g_init=g_read, noise=True)
    xbar = SimCrossbar(dev, IdealCircuit(), seed=2, compliance=1.0)
    reads = np.array([xbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED).conductances[0]
                      for _ in range(4000)])
    r_state = float(dev.r[0, 0])
    expected_pct = p.read_noise.slope_pct_per_ohm * r_state + p.read_noise.intercept_pct
    assert reads.std() / reads.mean() * 100 == pytest.approx(expected_pct, rel=0.08)
    assert reads.mean() == pytest.approx(g_read, rel=5e-4)


def test_noise_off_means_deterministic_reads_and_pulses() -> None:
    dev = _devices(_ideal(), noise=False)
    i = np.array([1e-5, 2e-5])
    np.testing.assert_array_equal(dev.read_noise(i, np.random.default_rng(0)), i)


# ------------------------------------------------------------------ stuck devices


def test_stuck_devices_ignore_pulses() -> None:
    p = _params(stuck__lrs_rate=0.5, stuck__hrs_rate=0.5)
    dev = _devices(p, shape=(10, 10), g_init=None, noise=True)
    assert (dev.stuck > 0).all()
    g0 = dev.g.copy()
    rng = np.random.default_rng(0)
    for v in (2.0, -2.4, 2.1, -3.0):
        dev.apply_voltage(np.full(dev.shape, v), 1e-3, rng)
    np.testing.assert_array_equal(dev.g, g0)


# ------------------------------------------------------------------ half-select in a crossbar


def test_half_selected_devices_move_less_than_the_selected_one() -> None:
    p = _ideal()
    results = {}
    for scheme in (BiasScheme.HALF, BiasScheme.THIRD):
        dev = _devices(p, shape=(5, 5), g_init=300e-6)
        xbar = SimCrossbar(dev, IdealCircuit(), seed=1, compliance=1.0)
        g0 = dev.g.copy()
        for _ in range(10):
            xbar.pulse((2, 2), -1.4, 1e-6, scheme)
        results[scheme] = dg = (dev.g - g0) / g0
        sel = dg[2, 2]
        half = np.concatenate([np.delete(dg[2], 2), np.delete(dg[:, 2], 2)])
        assert sel < 0 and (half < 0).all() and (np.abs(half) < 0.2 * abs(sel)).all()
    # V/2: unselected-unselected cells see 0 V and stay; V/3: they see +V/3 and may SET a bit
    assert np.abs(np.delete(np.delete(results[BiasScheme.HALF], 2, 0), 2, 1)).max() == 0
    # V/3 stresses the half-selected cells less than V/2
    h2 = np.abs(np.delete(results[BiasScheme.HALF][2], 2)).mean()
    h3 = np.abs(np.delete(results[BiasScheme.THIRD][2], 2)).mean()
    assert h3 < h2


# ------------------------------------------------------------------ presets and factory


def test_factory_resolves_the_compact_preset_and_keeps_simple() -> None:
    rng = np.random.default_rng(0)
    assert isinstance(make_device_array(NAME, (3, 4), rng), TiO2Devices)
    assert make_device_array("simple", (3, 4), rng).linear
    with pytest.raises(PresetError, match=r"unknown device preset 'nope'.*simple.*tio2-o921c"):
        make_device_array("nope", (2, 2), rng)
    with pytest.raises(PresetError, match="statistical"):
        make_device_array("tio2-sherbrooke-2023", (2, 2), rng)


def _bad_compact(tmp_path: Path, dotted: str, value: Any) -> Path:
    data = yaml.safe_load((preset_dir() / f"{NAME}.yaml").read_text(encoding="utf-8"))
    *head, last = dotted.split(".")
    node = data
    for h in head:
        node = node[h]
    node[last] = value
    out = tmp_path / "bad-compact.yaml"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("dotted", "value", "field", "what"),
    [
        ("r_on.value", -5.0, "r_on", "greater than 0"),
        ("r_on.value", 20000.0, "(top level)", "r_on"),
        ("stuck.hrs_rate.value", 2.0, "stuck.hrs_rate", "less than or equal to 1"),
        ("set.t.value", -0.05, "set.t", "greater than 0"),
        ("iv.b.unit", "1/mV", "iv", "unit '1/mV' given, expected '1/V'"),
    ],
)
def test_bad_compact_file_names_the_field(
    tmp_path: Path, dotted: str, value: Any, field: str, what: str
) -> None:
    path = _bad_compact(tmp_path, dotted, value)
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    msg = str(err.value)
    assert f"{path}: {field}" in msg and what in msg
