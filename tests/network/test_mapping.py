"""Mapping a network onto tiles of arrays: targets, read-back, tiling, packing, order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xbarlab.network.mapping import LayoutError, map_layer, map_network
from xbarlab.network.model import Network, load_npz, save_npz

G_MIN, G_MAX = 100e-6, 500e-6


def _net(sizes: tuple[int, ...], seed: int = 0, positive_bias: bool = False) -> Network:
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in itertools.pairwise(sizes):
        bias = rng.normal(size=b)
        layers.append((rng.normal(size=(b, a)), np.abs(bias) if positive_bias else bias))
    return Network.of(layers)


@pytest.mark.parametrize("single", [False, True])
def test_targets_represent_the_weights_exactly(single: bool) -> None:
    net = _net((5, 3, 2), positive_bias=True)
    for w, b in net.layers:
        lm = map_layer(w, b, G_MIN, G_MAX, single)
        assert np.all(lm.targets >= G_MIN - 1e-18) and np.all(lm.targets <= G_MAX + 1e-18)
        w2, b2 = lm.params(lm.targets)
        np.testing.assert_allclose(w2, w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b2, b, rtol=1e-12, atol=1e-12)
        assert lm.bias.single == single  # all-positive bias: one device per value
        assert lm.targets.shape == (w.shape[1] + 1, 2 * w.shape[0])  # weights need pairs


def test_pair_map_spans_the_window_per_tensor() -> None:
    w = np.array([[2.0, -1.0], [0.5, 0.0]])
    lm = map_layer(w, np.array([0.1, -0.3]), G_MIN, G_MAX)
    # the largest |w| of the tensor spans the window; zero is the pair (g_min, g_min)
    assert lm.targets[0, 0] == pytest.approx(G_MAX)  # w[0, 0] = 2 on the positive device
    assert lm.targets[1, 1] == pytest.approx(G_MIN + 0.5 * (G_MAX - G_MIN))  # -1: negative
    assert lm.targets[-1, 3] == pytest.approx(G_MAX)  # bias -0.3, its own scale
    assert lm.targets[1, 2] == lm.targets[1, 3] == pytest.approx(G_MIN)  # w = 0


def test_all_single_column_layer_has_no_negative_columns() -> None:
    w = np.abs(np.random.default_rng(1).normal(size=(3, 4)))
    lm = map_layer(w, np.array([1.0, 2.0, 3.0]), G_MIN, G_MAX, single_column=True)
    assert not lm.paired and lm.targets.shape == (5, 3)
    assert lm.targets.min() == pytest.approx(G_MIN) and lm.targets.max() == pytest.approx(G_MAX)
    w2, b2 = lm.params(lm.targets)
    np.testing.assert_allclose(w2, w, atol=1e-12)
    np.testing.assert_allclose(b2, [1.0, 2.0, 3.0], atol=1e-12)


@pytest.mark.parametrize("pack", [True, False])
def test_tiles_cover_each_layer_once_within_the_arrays(pack: bool) -> None:
    net = _net((64, 20, 10))  # layer 1: 65 x 40 on 16 x 16 arrays
    nm = map_network(net, (16, 16), G_MIN, G_MAX, pack=pack)
    seen = [np.zeros(lm.targets.shape, dtype=int) for lm in nm.layers]
    for cell, (ly, i, j) in nm.where.items():
        seen[ly][i, j] += 1
        assert 0 <= cell[0] < nm.bank_shape[0] and 0 <= cell[1] < nm.bank_shape[1]
    assert all(np.all(s == 1) for s in seen)
    assert len(set(nm.cells)) == len(nm.cells) == sum(lm.targets.size for lm in nm.layers)
    for t in nm.tiles:
        assert t.ar + t.rows <= 16 and t.ac + t.cols <= 16 and t.cols % 2 == 0  # pairs whole
    if not pack:
        assert nm.n_arrays == len(nm.tiles)
    else:
        assert nm.n_arrays < len(nm.tiles)
    bank_targets = nm.targets()
    assert np.isfinite(bank_targets).sum() == len(nm.cells)
    back = nm.network_from(np.where(np.isfinite(bank_targets), bank_targets, 1.0))
    x = np.random.default_rng(2).uniform(size=(7, 64))
    np.testing.assert_allclose(back.logits(x), net.logits(x), rtol=1e-9, atol=1e-9)


def test_paper_network_packs_on_one_16x16_array_in_documented_order() -> None:
    nm = map_network(_net((2, 8, 1)), (16, 16), G_MIN, G_MAX, order="column-major")
    # layer 0 (3 x 16) fills the first shelf; layer 1 (9 x 2) starts a shelf below it
    assert nm.n_arrays == 1
    assert [(t.layer, t.ar, t.ac) for t in nm.tiles] == [(0, 0, 0), (1, 3, 0)]
    # column-major: the three rows of layer 0's first column come first
    assert nm.cells[:4] == [(0, 0), (1, 0), (2, 0), (0, 1)]
    assert nm.cells[48:50] == [(3, 0), (4, 0)]


def test_too_large_for_the_bench_is_a_layout_error() -> None:
    with pytest.raises(LayoutError, match="needs 2 arrays of 8 x 8"):
        map_network(_net((2, 8, 1)), (8, 8), G_MIN, G_MAX, max_arrays=1)


def test_npz_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    net = Network.of(_net((3, 4, 2)).layers, "relu", "digits")
    path = save_npz(net, Path(str(tmp_path)) / "n.npz")
    back = load_npz(path)
    assert back.activation == "relu" and back.dataset == "digits" and back.sizes == (3, 4, 2)
    for (w, b), (w2, b2) in zip(net.layers, back.layers, strict=True):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
