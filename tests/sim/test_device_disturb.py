"""Empirical disturb: k bookkeeping and the measured per-k statistics through SimCrossbar."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.test_device_validation import LAB, lab_params, program_and_track
from xbarlab.config import SimConfig
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.protocols.write_verify import programming_order
from xbarlab.sim.disturb import (
    EmpiricalDisturbDevices,
    empirical_stats,
    later_programmings,
    quantile_at,
)
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import load_statistical_preset


@pytest.mark.parametrize("order", ["row-major", "column-major"])
def test_later_programmings_counts_the_cells_programmed_after(order: str) -> None:
    shape = (3, 5)
    k = later_programmings(shape, order)
    cells = programming_order(shape, order)
    for i, cell in enumerate(cells):
        assert k[cell] == len(cells) - 1 - i
    with pytest.raises(ValueError, match="unknown programming order"):
        later_programmings(shape, "diagonal")


def test_quantile_function_hits_the_tabulated_quantiles() -> None:
    s = empirical_stats()
    levels = np.asarray(s.quantile_levels)
    for i, k in enumerate(s.k[:5]):
        got = quantile_at(s, np.full(levels.shape, k), levels)
        np.testing.assert_allclose(got, s.quantiles[i], atol=1e-15)
    assert quantile_at(s, np.array([0]), np.array([0.3]))[0] == 0.0


def test_empirical_disturb_reproduces_the_measured_per_k_statistics() -> None:
    params = lab_params(LAB)
    d: dict[int, list[float]] = {k: [] for k in range(1, 31)}
    for seed in range(8):
        # start below the window so that every cell needs pulses (and counts as programmed)
        cfg = SimConfig(rows=8, cols=8, device="tio2-o921c", seed=seed, disturb="empirical",
                        g_init=80e-6)
        xbar = build_sim_crossbar(cfg)
        dev = xbar.devices
        assert isinstance(dev, EmpiricalDisturbDevices)
        targets = np.random.default_rng(seed).uniform(100e-6, 500e-6, (8, 8))
        res = RunEngine(xbar, BenchLimits()).run(
            program_and_track(targets, params, "column-major"), protocol="empirical"
        ).raise_for_status()
        _, _, maps = res.value
        order = programming_order((8, 8), "column-major")
        np.testing.assert_array_equal(dev.k, later_programmings((8, 8), "column-major"))
        for i, cell in enumerate(order):
            # nobody moves before its own programming: the physics of half-selects is off
            if dev.stuck[cell] == 0:
                assert np.allclose(maps[: i + 1, cell[0], cell[1]], maps[0][cell], rtol=0.02)
            for k in range(1, 31):
                if i + 1 + k < len(maps) and dev.stuck[cell] == 0:
                    d[k].append(maps[i + 1 + k][cell] - maps[i + 1][cell])
    lab = load_statistical_preset("tio2-sherbrooke-2023").disturb
    for k in (1, 2, 5, 10, 20, 30):
        sim = np.array(d[k])
        assert sim.std() == pytest.approx(lab.std[k - 1], rel=0.2), k
        # sampling error of the mean, plus read noise on the two reads (< 1 uS)
        slack = 3 * lab.std[k - 1] / np.sqrt(sim.size) + 1e-6
        assert sim.mean() == pytest.approx(lab.mean[k - 1], abs=slack), k
