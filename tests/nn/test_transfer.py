"""The statistical transfer model against its analytic moments and the paper's data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from xbarlab.nn.data import reference_dir
from xbarlab.nn.transfer import (
    TransferModel,
    apply,
    draw,
    transfer,
    transfer_std,
)
from xbarlab.sim.presets import StatisticalPreset

N = 40_000


def explicit_stats(**over: Any) -> StatisticalPreset:
    """A statistics object with round numbers, independent of any preset file."""
    data: dict[str, Any] = {
        "name": "explicit",
        "window": {"g_min": 100e-6, "g_max": 500e-6},
        "tuning": {"slope_pct_per_uS": -1e-3, "intercept_pct": 1.0},  # 0.9 % at 100 uS
        "offset": {"mean_pct": -0.5, "std_pct": 0.25},
        "disturb": {
            "source": "test", "clip": 40e-6, "k": [1, 3], "n": [100, 100],
            "mean": [-1e-6, -5e-6], "std": [2e-6, 8e-6],
            "quantile_levels": [0.0, 0.5, 1.0],
            "quantiles": [[-3e-6, -1e-6, 1e-6], [-15e-6, -5e-6, 5e-6]],
        },
        "stuck": {"lrs_rate": 0.02, "lrs_mean": 600e-6, "lrs_std": 50e-6, "hrs_rate": 0.03,
                  "hrs_low": 10e-6, "hrs_high": 100e-6},
    }
    data.update(over)
    return StatisticalPreset.model_validate(data)


def test_tuning_imprecision_has_the_fitted_std() -> None:
    tm = TransferModel(explicit_stats(), offset=False, disturb=False, stuck=False)
    targets = np.array([100e-6, 300e-6, 500e-6])
    g = transfer(tm, targets, np.zeros(3, int), N, np.random.default_rng(0))
    rel = g / targets - 1
    # std% = -1e-3 * G[uS] + 1.0
    assert rel.std(axis=0) * 100 == pytest.approx([0.9, 0.7, 0.5], rel=0.03)
    assert rel.mean(axis=0) == pytest.approx(0, abs=3e-4)


def test_offset_shifts_by_the_mean_percentage() -> None:
    tm = TransferModel(explicit_stats(), tuning=False, disturb=False, stuck=False)
    g = transfer(tm, np.array([200e-6]), np.zeros(1, int), N, np.random.default_rng(1))
    rel = g[:, 0] / 200e-6 - 1
    assert rel.mean() * 100 == pytest.approx(-0.5, abs=0.01)
    assert rel.std() * 100 == pytest.approx(0.25, rel=0.03)


def test_disturb_follows_the_quantiles_of_its_k() -> None:
    tm = TransferModel(explicit_stats(), tuning=False, offset=False, stuck=False)
    k = np.array([0, 1, 2, 3, 9])
    d = transfer(tm, np.full(5, 200e-6), k, N, np.random.default_rng(2)) - 200e-6
    assert np.all(d[:, 0] == 0)  # nothing programmed after it
    # piecewise-linear inverse CDF through (0, -3), (0.5, -1), (1, 1) uS: median -1, mean -1
    for col, (lo, med, hi) in ((1, (-3, -1, 1)), (2, (-3, -1, 1)), (3, (-15, -5, 5)),
                               (4, (-15, -5, 5))):
        assert d[:, col].min() * 1e6 >= lo - 1e-9 and d[:, col].max() * 1e6 <= hi + 1e-9
        assert np.median(d[:, col]) * 1e6 == pytest.approx(med, abs=0.05 * (hi - lo))


def test_stuck_devices_appear_at_their_rates_and_levels() -> None:
    tm = TransferModel(explicit_stats())
    d = draw(tm, np.zeros(50, int), 4000, np.random.default_rng(5))
    g = apply(tm, np.full(50, 300e-6), d)
    # healthy devices stay within a few % of 300 uS (k = 0: no disturb); stuck ones do not
    lrs, hrs = g > 330e-6, g < 150e-6
    total = g.size
    assert lrs.sum() / total == pytest.approx(0.02, rel=0.1)
    assert hrs.sum() / total == pytest.approx(0.03, rel=0.1)
    assert g[lrs].mean() == pytest.approx(600e-6, rel=0.02)
    assert g[hrs].min() >= 10e-6 and g[hrs].max() <= 100e-6
    assert np.array_equal(d.stuck, lrs | hrs)


def test_transfers_are_seeded() -> None:
    tm = TransferModel.from_preset()
    t, k = np.full(30, 250e-6), np.arange(30)
    a = transfer(tm, t, k, 10, np.random.default_rng(7))
    b = transfer(tm, t, k, 10, np.random.default_rng(7))
    c = transfer(tm, t, k, 10, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_analytic_std_matches_sampled_std() -> None:
    tm = TransferModel(explicit_stats(), stuck=False)
    t, k = np.array([150e-6, 450e-6]), np.array([1, 3])
    g = transfer(tm, t, k, N, np.random.default_rng(9))
    assert g.std(axis=0) == pytest.approx(transfer_std(tm, t, k), rel=0.05)


def test_bad_k_is_refused() -> None:
    tm = TransferModel.from_preset()
    with pytest.raises(ValueError, match="k must be >= 0"):
        draw(tm, np.array([-1, 2]), 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="same shape"):
        transfer(tm, np.ones(3) * 1e-4, np.zeros(2, int), 3, np.random.default_rng(0))


@pytest.mark.skipif(not (reference_dir() / "delta_dicts.json").is_file(),
                    reason="reference data absent")
def test_disturb_reproduces_the_measured_arrays() -> None:
    # the paper's measured conductance changes per k (siemens), read directly
    data = json.loads((reference_dir() / "delta_dicts.json").read_text())
    tm = TransferModel.from_preset(tuning=False, offset=False, stuck=False)
    for k in (1, 10, 30):
        measured = np.asarray(data[str(k)], dtype=float)
        sim = transfer(tm, np.array([300e-6]), np.array([k]), 20_000,
                       np.random.default_rng(k))[:, 0] - 300e-6
        assert sim.mean() == pytest.approx(measured.mean(), abs=0.1 * measured.std())
        assert sim.std() == pytest.approx(measured.std(), rel=0.08)
