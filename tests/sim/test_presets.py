"""Device presets: published figures, derived disturb statistics, validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from xbarlab.analysis.derive_sherbrooke import article_dir, disturb_statistics, load_delta_dicts
from xbarlab.sim.presets import (
    PresetError,
    StatisticalPreset,
    list_presets,
    load_preset,
    preset_dir,
    sample_disturb,
)

STAT = "tio2-sherbrooke-2023"
needs_reference = pytest.mark.skipif(article_dir() is None, reason="reference data absent")


def test_statistical_preset_has_the_published_figures() -> None:
    # figures quoted in the reference README / the authors' layer defaults
    s = load_preset(STAT)
    assert isinstance(s, StatisticalPreset)
    assert (s.window.g_min, s.window.g_max) == pytest.approx((100e-6, 500e-6))
    assert s.tuning.std_pct(100e-6) == pytest.approx(0.63, abs=0.005)
    assert s.tuning.std_pct(500e-6) == pytest.approx(0.38, abs=0.005)
    assert (s.offset.mean_pct, s.offset.std_pct) == pytest.approx((-0.589, 0.339))
    assert (s.stuck.lrs_rate, s.stuck.hrs_rate) == pytest.approx((0.005, 0.005))
    assert (s.stuck.lrs_mean, s.stuck.lrs_std) == pytest.approx((573e-6, 99e-6))
    assert (s.stuck.hrs_low, s.stuck.hrs_high) == pytest.approx((10e-6, 100e-6))
    d = s.disturb
    i1, i30 = d.k.index(1), d.k.index(30)
    # README: k=1 1259 samples, mean -0.4 uS, std 6.7 uS; k=30 mean -7.7 uS, std 18.5 uS
    assert d.n[i1] == 1259
    assert d.mean[i1] == pytest.approx(-0.4e-6, abs=0.1e-6)
    assert d.std[i1] == pytest.approx(6.7e-6, abs=0.1e-6)
    assert d.mean[i30] == pytest.approx(-7.7e-6, abs=0.1e-6)
    assert d.std[i30] == pytest.approx(18.5e-6, abs=0.1e-6)
    assert all(-40e-6 - 1e-12 <= q <= 40e-6 + 1e-12 for row in d.quantiles for q in row)


@needs_reference
def test_disturb_file_matches_a_fresh_derivation() -> None:
    folder = article_dir()
    assert folder is not None
    deltas = load_delta_dicts(folder)
    fresh = disturb_statistics(deltas)
    d = load_preset(STAT).disturb
    assert d.k == fresh["k"]
    np.testing.assert_allclose(d.mean, fresh["mean"], atol=1e-9)
    np.testing.assert_allclose(d.std, fresh["std"], atol=1e-9)
    np.testing.assert_allclose(d.quantiles, fresh["quantiles"], atol=1e-9)
    # and the raw numbers, independently of the derivation code
    assert d.mean[d.k.index(10)] == pytest.approx(float(np.mean(deltas[10])), abs=2e-9)


@needs_reference
@pytest.mark.parametrize("k", [1, 5, 30])
def test_sampled_disturb_follows_the_measured_distribution(k: int) -> None:
    folder = article_dir()
    assert folder is not None
    measured = np.sort(load_delta_dicts(folder)[k])
    s = load_preset(STAT)
    drawn = np.sort(sample_disturb(s.disturb, np.full(40_000, k), np.random.default_rng(1)))
    # two-sample Kolmogorov-Smirnov distance, well under the 5 % critical value
    grid = np.linspace(-40e-6, 40e-6, 801)
    cdf_m = np.searchsorted(measured, grid, side="right") / measured.size
    cdf_d = np.searchsorted(drawn, grid, side="right") / drawn.size
    crit = 1.36 * np.sqrt(1 / measured.size + 1 / drawn.size)
    assert np.max(np.abs(cdf_m - cdf_d)) < crit
    assert drawn.std() == pytest.approx(measured.std(), rel=0.08)


def test_disturb_sampling_is_seeded_vectorised_and_handles_k_edges() -> None:
    d = load_preset(STAT).disturb
    k = np.array([[0, 1, 2], [30, 48, 63]])
    a = sample_disturb(d, k, np.random.default_rng(5))
    b = d.sample(k, np.random.default_rng(5))
    assert a.shape == k.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, sample_disturb(d, k, 5))  # an integer seed works too
    assert a[0, 0] == 0.0
    # beyond the table: the largest tabulated k
    big = sample_disturb(d, np.full(20_000, 200), np.random.default_rng(2))
    last = sample_disturb(d, np.full(20_000, d.k[-1]), np.random.default_rng(2))
    np.testing.assert_array_equal(big, last)
    many = sample_disturb(d, np.full(50_000, 1), np.random.default_rng(3))
    assert many.mean() == pytest.approx(d.mean[0], abs=0.1e-6)
    with pytest.raises(ValueError, match="k must be >= 0"):
        sample_disturb(d, np.array([-1]), np.random.default_rng(0))


def test_a_batch_of_transfers_draws_the_same_as_element_by_element() -> None:
    # rows repeating the same k (n transfers of the same devices) take a faster route; both
    # must be the piecewise-linear inverse CDF of the tabulated quantiles, element by element
    d = load_preset(STAT).disturb
    k = np.array([0, 1, 3, 30, 48, 63, 200])
    batch = np.broadcast_to(k, (500, k.size))
    got = sample_disturb(d, batch, np.random.default_rng(7))
    u = np.random.default_rng(7).random(batch.shape)
    row = np.clip(np.searchsorted(d.k, k, side="right") - 1, 0, len(d.k) - 1)
    want = np.array([[np.interp(u[i, j], d.quantile_levels, d.quantiles[row[j]]) if k[j] else 0.0
                      for j in range(k.size)] for i in range(batch.shape[0])])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-18)
    mixed = batch.copy()
    mixed[0, 0] = 1  # rows differ: the general route
    np.testing.assert_allclose(sample_disturb(d, mixed, np.random.default_rng(7))[1:], want[1:],
                               rtol=0, atol=1e-18)


def test_unknown_preset_lists_the_known_ones() -> None:
    assert STAT in list_presets()
    with pytest.raises(PresetError, match=r"unknown device preset 'nope'.*tio2-sherbrooke-2023"):
        load_preset("nope")


def _walk_figures(node: Any, path: str, out: list[str]) -> None:
    """Collect paths of bare numbers that are not inside a {value, unit, source} figure."""
    if isinstance(node, dict):
        if "value" in node:
            if not (node.get("unit") and str(node.get("source", "")).strip()):
                out.append(path)
            return
        for k, v in node.items():
            _walk_figures(v, f"{path}.{k}", out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.append(path)


@pytest.mark.parametrize("name", [n for n in list_presets() if n != "simple"])
def test_every_figure_in_a_preset_file_has_unit_and_source(name: str) -> None:
    data = yaml.safe_load((preset_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    bare: list[str] = []
    _walk_figures(data, name, bare)
    assert bare == []
    load_preset(name)  # and it validates


def _stat_file_with(tmp_path: Path, edit: dict[str, Any]) -> Path:
    src = preset_dir() / f"{STAT}.yaml"
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    data["disturb"] = {"file": str(preset_dir() / f"{STAT}-disturb.yaml")}
    for dotted, value in edit.items():
        *head, last = dotted.split(".")
        node = data
        for h in head:
            node = node[h]
        if value is None:
            del node[last]
        else:
            node[last] = value
    out = tmp_path / "bad.yaml"
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("edit", "field", "what"),
    [
        ({"stuck.lrs_rate.value": 1.5}, "stuck.lrs_rate", "less than or equal to 1"),
        ({"stuck.hrs_rate.value": -0.1}, "stuck.hrs_rate", "greater than or equal to 0"),
        ({"window.g_min": None}, "window.g_min", "Field required"),
        ({"window.g_min.value": 600e-6}, "window", "g_min"),
        ({"window.g_max.unit": "uS"}, "window", "unit 'uS' given, expected 'S'"),
        ({"offset.std_pct.source": ""}, "offset", "source line is required"),
    ],
)
def test_bad_statistical_file_names_the_field(
    tmp_path: Path, edit: dict[str, Any], field: str, what: str
) -> None:
    from xbarlab.sim.presets import load_preset_file

    path = _stat_file_with(tmp_path, edit)
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert field in msg
    assert what in msg
