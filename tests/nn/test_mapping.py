"""Mapping weights to differential pairs and placing layers on arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xbarlab.nn.mapping import (
    LayoutError,
    flat_map,
    flatten_params,
    layout_network,
    map_tensor,
    place_layer,
    unflatten_params,
    unmap_pairs,
)
from xbarlab.protocols.write_verify import programming_order

G_MIN, G_MAX = 100e-6, 500e-6


def test_pairs_of_a_known_tensor() -> None:
    # max|w| = 2 -> 2 maps to 500 uS, 1 to 300 uS; the idle device of each pair sits at 100 uS
    p = map_tensor(np.array([-2.0, 0.0, 1.0, 2.0]), G_MIN, G_MAX)
    assert p.g_pos * 1e6 == pytest.approx([100, 100, 300, 500])
    assert p.g_neg * 1e6 == pytest.approx([500, 100, 100, 100])
    assert p.scale == pytest.approx(2.0 / 400e-6)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e3, 1e3)))
def test_pairs_stay_in_the_window_and_round_trip(w: np.ndarray) -> None:
    p = map_tensor(w, G_MIN, G_MAX)
    for g in (p.g_pos, p.g_neg):
        assert np.all(g >= G_MIN * (1 - 1e-12)) and np.all(g <= G_MAX * (1 + 1e-12))
    assert np.all(np.minimum(p.g_pos, p.g_neg) == pytest.approx(G_MIN))
    assert unmap_pairs(p.g_pos, p.g_neg, p.scale) == pytest.approx(w, abs=1e-9 * (1 + abs(w).max()))


def test_bad_weights_and_window_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        map_tensor(np.array([1.0, np.nan]), G_MIN, G_MAX)
    with pytest.raises(ValueError, match="g_min < g_max"):
        map_tensor(np.array([1.0]), G_MAX, G_MIN)


@pytest.mark.parametrize("order", ["row-major", "column-major"])
def test_k_counts_later_programmings_in_the_same_array(order: str) -> None:
    p = place_layer(5, 6, (4, 8), order)  # type: ignore[arg-type]  # 6 x 12 matrix -> tiles of 4 x 8 (pairs kept whole)
    k = p.device_k()
    for t in p.tiles:
        # reference: the write-verify protocol's own programming order of a tile
        seq = programming_order((t.rows, t.cols), order)
        n = len(seq)
        for pos, (r, c) in enumerate(seq):
            assert k[t.row0 + r, t.col0 + c] == n - 1 - pos
    covered = np.zeros(p.matrix_shape, dtype=int)
    for t in p.tiles:
        assert t.rows <= 4 and t.cols <= 8 and t.col0 % 2 == 0 and t.cols % 2 == 0
        covered[t.row0 : t.row0 + t.rows, t.col0 : t.col0 + t.cols] += 1
    assert np.all(covered == 1)


def test_odd_array_width_never_splits_a_pair() -> None:
    p = place_layer(2, 4, (8, 5))
    assert all(t.cols % 2 == 0 and t.col0 % 2 == 0 for t in p.tiles)


def test_layer_too_large_without_tiling_names_the_sizes() -> None:
    with pytest.raises(LayoutError, match=r"3 x 16 array.*8 x 8"):
        place_layer(2, 8, (8, 8), tile=False, name="layer 1")
    with pytest.raises(LayoutError, match=r"needs 4 arrays of 8 x 8.*only 2"):
        layout_network((2, 8, 1), (8, 8), max_arrays=2)


def test_flat_index_map_agrees_with_the_matrix_layout() -> None:
    rng = np.random.default_rng(3)
    layout = layout_network((3, 5, 2, 1), (4, 6), "row-major")
    fmap = flat_map(layout)
    params = [(rng.normal(size=(5, 3)), rng.normal(size=5)), (rng.normal(size=(2, 5)),
              rng.normal(size=2)), (rng.normal(size=(1, 2)), rng.normal(size=1))]
    theta = flatten_params(params)
    g_matrix, scales = layout.targets(params, G_MIN, G_MAX)
    g_flat, scale = fmap.targets(theta, G_MIN, G_MAX)
    assert g_flat == pytest.approx(g_matrix)
    g_noisy = g_matrix * (1 + 0.05 * rng.normal(size=g_matrix.shape))
    back = layout.params(g_noisy, scales)
    assert fmap.weights(g_noisy, scale) == pytest.approx(flatten_params(back))
    for (w, b), (w2, b2) in zip(unflatten_params(theta, (3, 5, 2, 1)), params, strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
