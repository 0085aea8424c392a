"""Device time and wear of the TiO2 model: forming, retention drift, volatile relaxation,
endurance wear, and the simulator's clock (waits advance it, nothing sleeps)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import CompactPreset, load_compact_preset
from xbarlab.sim.tio2 import TiO2Devices


def _preset(**sections: dict[str, Any]) -> CompactPreset:
    """tio2-o921c without spreads or stuck devices, aging sections replaced as given."""
    p = load_compact_preset("tio2-o921c")
    data = p.model_dump()
    data["variability"].update(d2d_v=0.0, d2d_rate=0.0, c2c_v=0.0, c2c_rel=0.0)
    data["stuck"].update(lrs_rate=0.0, hrs_rate=0.0)
    for key in ("retention", "volatility", "endurance", "forming"):
        data[key] = sections.get(key)
    return CompactPreset.model_validate(data)


def _dev(p: CompactPreset, **kw: Any) -> TiO2Devices:
    return TiO2Devices((2, 2), p, np.random.default_rng(0), noise=False, **kw)


def test_retention_drift_follows_the_log_time_law() -> None:
    """R grows by drift_per_decade per decade of (t0 + age) / t0: one wait of 1e4 s, or 40
    waits of 250 s, give 1 + 0.01 log10(10001) within the product-vs-sum difference."""
    p = _preset(retention={"drift_per_decade": 0.01, "t0": 1.0, "d2d_log_std": 0.0})
    one, many = _dev(p, g_init=300e-6), _dev(p, g_init=300e-6)
    r0 = one.r
    one.advance(1e4)
    for _ in range(40):
        many.advance(250.0)
    expected = 1 + 0.01 * np.log10(1e4 + 1)
    np.testing.assert_allclose(one.r / r0, expected, rtol=1e-12)
    np.testing.assert_allclose(many.r / r0, expected, rtol=2e-3)
    assert np.all(one.g < 300e-6)  # drift towards HRS


def test_programming_restarts_the_retention_clock() -> None:
    p = _preset(retention={"drift_per_decade": 0.01, "t0": 1.0, "d2d_log_std": 0.0})
    dev = _dev(p, g_init=200e-6)
    dev.advance(1e6)
    dev.apply_voltage(np.array([[1.3, 0.0], [0.0, 0.0]]), 1e-6, np.random.default_rng(0))
    r_prog = dev.r
    dev.advance(9.0)  # age 9 s: log10(10) = 1 decade for the programmed device
    assert dev.r[0, 0] / r_prog[0, 0] == pytest.approx(1.01, rel=1e-6)
    # the others are 1e6 s old: 9 s more is almost nothing
    assert dev.r[1, 1] / r_prog[1, 1] == pytest.approx(1.0, abs=1e-7)


def test_volatile_share_relaxes_with_its_time_constant() -> None:
    p = _preset(volatility={"fraction": 0.2, "tau": 0.04})
    dev = _dev(p, g_init=200e-6)
    r0 = dev.r
    dev.apply_voltage(np.full((2, 2), 1.4), 1e-6, np.random.default_rng(0))
    dr = dev.r - r0
    assert np.all(dr < 0)
    dev.advance(0.04)
    np.testing.assert_allclose(dev.r - r0, dr * (0.8 + 0.2 * np.exp(-1)), rtol=1e-9)
    dev.advance(10.0)
    np.testing.assert_allclose(dev.r - r0, 0.8 * dr, rtol=1e-6)


FORMING = {"g_pristine_low": 1e-6, "g_pristine_high": 1e-6, "v_form": 2.0, "v_form_std": 0.0,
           "v_scale": 0.1, "tau": 1e-4, "g_formed_low": 200e-6, "g_formed_high": 200e-6}


def test_forming_dose_law() -> None:
    """A pulse of tau at v_form forms a device; at v_form - v_scale ln 2 it takes two."""
    dev = _dev(_preset(forming=FORMING), pristine=True)
    np.testing.assert_allclose(dev.g, 1e-6)
    rng = np.random.default_rng(0)
    v_half = 2.0 - 0.1 * np.log(2)
    dev.apply_voltage(np.array([[v_half, 2.0], [-2.5, 1.0]]), 1e-4 * (1 - 1e-9), rng)
    assert dev.pristine.tolist() == [[True, True], [True, True]]  # just below a full dose
    dev.apply_voltage(np.array([[v_half, 2.0], [-2.5, 1.0]]), 1e-4 * (1 + 1e-9), rng)
    assert dev.pristine.tolist() == [[False, False], [True, True]]  # negative V never forms
    assert np.all(dev.g[0] > 100e-6) and np.all(dev.g[1] < 2e-6)


def test_pristine_needs_a_forming_section() -> None:
    with pytest.raises(ValueError, match="no forming section"):
        _dev(_preset(), pristine=True)


def test_wear_closes_the_window() -> None:
    p = _preset(endurance={"cycles_half": 100.0, "steepness": 2.0, "d2d_log_std": 0.0})
    dev = _dev(p, g_init=300e-6)
    rng = np.random.default_rng(0)
    on0, off0 = dev.window()
    for _ in range(200):
        dev.apply_voltage(np.full((2, 2), 2.0), 1e-4, rng)
        dev.apply_voltage(np.full((2, 2), -2.4), 1e-4, rng)
    on, off = dev.window()
    assert np.all(dev.cycles > 20)
    x = (dev.cycles / 100.0) ** 2
    mid = np.sqrt(p.r_on * p.r_off)
    np.testing.assert_allclose(on, p.r_on + (mid - p.r_on) * x / (1 + x), rtol=1e-12)
    assert np.all(on > on0) and np.all(off < off0)
    dev.apply_voltage(np.full((2, 2), -2.4), 1e-4, rng)  # a pulse is clipped to the window
    assert np.all(dev.r == off)  # it had when the pulse began


def test_simulator_waits_advance_device_time_without_sleeping() -> None:
    xbar = build_sim_crossbar(SimConfig(rows=4, cols=4, noise=False, seed=3))
    g0 = xbar.read(None, 0.2, BiasScheme.GROUNDED).conductances
    t = time.perf_counter()
    clock = xbar.wait(86400.0)
    assert time.perf_counter() - t < 1.0
    assert clock == pytest.approx(86400.0)
    g1 = xbar.read(None, 0.2, BiasScheme.GROUNDED).conductances
    assert np.all(g1 < g0) and np.median(g1 / g0) < 0.97  # ~5 decades of 1 %


def test_arrays_without_aging_keep_their_random_draws() -> None:
    """Aging draws come from a spawned stream: the initial states of a seed do not move."""
    p_plain, p_aging = _preset(), load_compact_preset("tio2-o921c")
    a = TiO2Devices((3, 3), p_plain, np.random.default_rng(5))
    data = p_aging.model_dump()
    data["variability"] = p_plain.variability.model_dump()
    data["stuck"] = p_plain.stuck.model_dump()
    b = TiO2Devices((3, 3), CompactPreset.model_validate(data), np.random.default_rng(5))
    np.testing.assert_array_equal(a.g, b.g)
