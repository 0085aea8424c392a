"""SimCrossbar with the ideal circuit, against analytic circuit results."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme, Crossbar
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices
from xbarlab.sim.factory import build_sim_crossbar


def _xbar(g: np.ndarray, noise: bool = False) -> SimCrossbar:
    dev = SimpleDevices(g.shape, SimpleDeviceParams(), np.random.default_rng(0), noise=noise)
    dev._g = g.copy()
    return SimCrossbar(dev, IdealCircuit(), compliance=1.0)


G = np.array([[100e-6, 200e-6, 300e-6], [400e-6, 150e-6, 250e-6]])


def test_is_a_crossbar() -> None:
    assert isinstance(build_sim_crossbar(SimConfig(rows=2, cols=2)), Crossbar)


@pytest.mark.parametrize("scheme", list(BiasScheme))
def test_line_biases_give_the_selected_cell_the_full_voltage(scheme: BiasScheme) -> None:
    rows, cols = line_biases((3, 4), (1, 2), 1.5, scheme)
    assert rows[1] - cols[2] == pytest.approx(1.5)
    if scheme is BiasScheme.HALF:
        v = rows[:, None] - cols[None, :]
        assert np.abs(np.delete(np.delete(v, 1, 0), 2, 1)).max() == 0
        assert np.abs(v[1, [0, 1, 3]]).max() == pytest.approx(0.75)
    if scheme is BiasScheme.THIRD:
        v = rows[:, None] - cols[None, :]
        v[1, 2] = 0
        assert np.abs(v).max() == pytest.approx(0.5)
    if scheme is BiasScheme.FLOATING:
        assert np.isnan(np.delete(rows, 1)).all() and np.isnan(np.delete(cols, 2)).all()


def test_grounded_read_is_exact() -> None:
    r = _xbar(G).read(None, 0.2, BiasScheme.GROUNDED)
    np.testing.assert_allclose(r.conductances.reshape(G.shape), G, rtol=1e-12)


def test_half_bias_read_includes_column_sneak() -> None:
    # Selected column at 0 V collects V/2 through every other cell of the column.
    r = _xbar(G).read([(0, 1)], 0.2, BiasScheme.HALF)
    expected = 0.2 * G[0, 1] + 0.1 * G[1, 1]
    assert r.currents[0] == pytest.approx(expected, rel=1e-12)


def test_floating_read_matches_series_sneak_path() -> None:
    g = np.array([[100e-6, 200e-6], [300e-6, 400e-6]])
    r = _xbar(g).read([(0, 0)], 0.2, BiasScheme.FLOATING)
    sneak = 1.0 / (1 / g[0, 1] + 1 / g[1, 1] + 1 / g[1, 0])
    assert r.currents[0] == pytest.approx(0.2 * (g[0, 0] + sneak), rel=1e-10)


def test_mvm_is_g_transpose_v() -> None:
    v = np.array([[0.1, -0.2], [0.05, 0.0]])
    out = _xbar(G).mvm(v)
    np.testing.assert_allclose(out.currents, v @ G, rtol=1e-12)


def test_v2_pulse_programs_only_the_selected_cell() -> None:
    xbar = _xbar(G)
    xbar.pulse((1, 1), 1.6, 1e-6, BiasScheme.HALF)  # half-selected cells see 0.8 V < threshold
    changed = xbar.g != G
    assert changed[1, 1] and changed.sum() == 1 and xbar.g[1, 1] > G[1, 1]
    xbar.pulse((1, 1), -1.6, 1e-6, BiasScheme.HALF)
    assert xbar.g[1, 1] < G[1, 1] * 1.5


def test_grounded_pulse_disturbs_the_whole_selected_row() -> None:
    xbar = _xbar(G)
    xbar.pulse((0, 0), 1.6, 1e-6, BiasScheme.GROUNDED)
    assert (xbar.g[0] > G[0]).all() and (xbar.g[1] == G[1]).all()


def test_seeded_sessions_repeat_and_differ_across_seeds() -> None:
    def session(seed: int) -> np.ndarray:
        x = build_sim_crossbar(SimConfig(rows=4, cols=4, seed=seed))
        for _ in range(5):
            x.pulse((2, 2), 1.5, 1e-6, BiasScheme.HALF)
        return x.read(None, 0.2, BiasScheme.GROUNDED).currents

    np.testing.assert_array_equal(session(3), session(3))
    assert not np.array_equal(session(3), session(4))


def test_out_of_array_cell_and_bad_mvm_shape() -> None:
    xbar = _xbar(G)
    with pytest.raises(IndexError, match=r"\(2, 0\) is outside the 2 x 3"):
        xbar.read([(2, 0)], 0.2, BiasScheme.GROUNDED)
    with pytest.raises(ValueError, match="3 rows"):
        xbar.mvm(np.zeros(3))


def test_compliance_clips_and_flags() -> None:
    xbar = _xbar(G)
    xbar.compliance = 30e-6
    r = xbar.read(None, 0.2, BiasScheme.GROUNDED)
    assert r.compliance.reshape(G.shape).tolist() == (0.2 * G > 30e-6).tolist()
    assert np.abs(r.currents).max() == pytest.approx(30e-6)
