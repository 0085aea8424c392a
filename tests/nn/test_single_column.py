"""The authors' single-column scheme: one device per weight for single-sign tensors."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.config import ConfigError
from xbarlab.nn.mapping import flat_map, flatten_params, layout_network
from xbarlab.nn.single_column import (
    column_stuck,
    column_targets,
    column_transfer,
    column_weights,
    single_tensors,
)
from xbarlab.nn.transfer import TransferDraw, TransferModel

G_MIN, G_MAX = 100e-6, 500e-6
SIZES = (2, 3, 1)


def _theta() -> np.ndarray:
    """2-3-1 net: mixed-sign W1, all-negative hidden bias, all-positive W2, output bias."""
    w1 = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    b1 = np.array([-1.0, -3.0, -2.0])
    w2 = np.array([[0.2, 0.6, 1.0]])
    b2 = np.array([0.3])
    return flatten_params([(w1, b1), (w2, b2)])


def _fmap():  # type: ignore[no-untyped-def]
    return flat_map(layout_network(SIZES, (8, 8)))


def test_single_sign_tensors_are_detected_single_elements_never() -> None:
    assert single_tensors(_fmap(), _theta()).tolist() == [False, True, True, False]


def test_hidden_bias_maps_min_max_onto_the_physical_window_by_hand() -> None:
    fmap, theta = _fmap(), _theta()
    cm = column_targets(fmap, theta, G_MIN, G_MAX, "authors", True)
    b1 = np.arange(6, 9)  # parameters of the hidden bias in theta
    # [min w, max w] = [-3, -1] onto [100, 500] uS: -1 -> 500, -3 -> 100, -2 -> 300 uS
    assert cm.g[fmap.pos[b1]] * 1e6 == pytest.approx([500.0, 100.0, 300.0])
    w2 = np.arange(9, 12)  # [0.2, 1.0] onto [100, 500] uS: 0.6 -> 300 uS
    assert cm.g[fmap.pos[w2]] * 1e6 == pytest.approx([100.0, 300.0, 500.0])
    assert cm.single[b1].all() and cm.single[w2].all() and not cm.single[:6].any()


def test_round_trip_and_one_device_per_single_sign_weight() -> None:
    fmap, theta = _fmap(), _theta()
    cm = column_targets(fmap, theta, G_MIN, G_MAX, "authors", True)
    assert column_weights(fmap, cm.g, cm) == pytest.approx(theta, abs=1e-12)
    # 6 mixed-sign W1 weights and the output bias on pairs, 6 single-column weights
    assert int(cm.devices_used()) == 2 * 7 + 6
    pairs = column_targets(fmap, theta, G_MIN, G_MAX, "authors", False)
    assert int(pairs.devices_used()) == 2 * theta.size
    assert column_weights(fmap, pairs.g, pairs) == pytest.approx(theta, abs=1e-12)
    # pairs keep the authors' +-400 uS window, single columns use 100-500 uS
    assert pairs.g.min() == pytest.approx(-400e-6) and cm.g[fmap.pos[cm.single]].min() >= G_MIN


def test_unused_device_is_ignored_and_the_offset_is_subtracted() -> None:
    fmap, theta = _fmap(), _theta()
    cm = column_targets(fmap, theta, G_MIN, G_MAX, "authors", True)
    tm = TransferModel.from_preset(tuning=False, disturb=False, stuck=False)
    d_shape = (1, cm.g.size)
    unused = fmap.neg[cm.single]
    stuck_g = np.full(d_shape, np.nan)
    stuck_g[0, unused] = 573e-6  # stuck unused devices change nothing
    offset = np.full(d_shape, 0.1)
    d = TransferDraw(offset, np.zeros(d_shape), np.zeros(d_shape), stuck_g)
    out = column_transfer(tm, fmap, cm, d)[0]
    assert not column_stuck(fmap, d.stuck, cm).any()
    b1 = 7  # hidden bias -3 -> 100 uS, programmed at 90 uS -> -3 - 10 uS * 2 / 400 uS
    assert out[b1] == pytest.approx(-3.0 - 10e-6 * 2.0 / 400e-6)
    w1 = 0  # pair weight 0.5 of max|w| 2: G+ = -400 + 800 * 0.25 uS, G- = -400 uS, both x 1.1
    assert out[w1] == pytest.approx(0.5 * 1.1)


def test_reproduce_config_single_column_defaults_and_bad_input() -> None:
    pytest.importorskip("torch")
    from xbarlab.nn import reproduce as rp

    assert rp.make_reproduce_config({"mapping": "authors"}).uses_single_column
    assert not rp.make_reproduce_config({"mapping": "physical"}).uses_single_column
    assert not rp.make_reproduce_config({"single_column": False}).uses_single_column
    cfg = rp.make_reproduce_config({})
    assert cfg.train_config("hardware-aware", 0).single_column
    with pytest.raises(ConfigError, match="authors"):
        rp.make_reproduce_config({"mapping": "physical", "single_column": True})
