"""The authors' mapping mode against their code's rules, and seed independence of training."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.nn.authors import authors_draw, device_k, fixed_params, param_k
from xbarlab.nn.mapping import flat_map, layout_network, mapping_window
from xbarlab.nn.metrics import evaluate_transfers
from xbarlab.nn.transfer import TransferModel

G_MIN, G_MAX = 100e-6, 500e-6


def _their_k(shape: tuple[int, ...]) -> np.ndarray:
    """Their sample_adj_effect_offsets loop, transcribed: i counts numel..1, a 2-D tensor with
    more than one row is filled down columns of 8 rows, the last element is then set to 0."""
    k = np.zeros(shape, dtype=int)
    numel = int(np.prod(shape))
    x = y = 0
    for i in range(numel, 0, -1):
        if len(shape) > 1 and shape[0] > 1:
            k[y][x] = i
            y += 1
            if y == 8:
                y, x = 0, x + 1
        elif len(shape) > 1:
            k[0][x] = i
            x += 1
        else:
            k[x] = i
            x += 1
    k.reshape(-1)[-1] = 0
    return k


def test_k_per_tensor_follows_their_loop() -> None:
    expected = np.concatenate([_their_k(s).ravel() for s in [(8, 2), (8,), (1, 8), (1,)]])
    assert np.array_equal(param_k((2, 8, 1)), expected)
    fmap = flat_map(layout_network((2, 8, 1), (8, 8)))
    k = device_k(fmap, (2, 8, 1))
    assert np.array_equal(k[fmap.pos], expected) and np.array_equal(k[fmap.neg], expected)


def test_only_single_element_tensors_are_ideal() -> None:
    assert np.flatnonzero(fixed_params((2, 8, 1))).tolist() == [32]  # the output bias
    assert not fixed_params((2, 8, 3)).any()


def test_authors_window_puts_idle_devices_below_zero() -> None:
    assert mapping_window("authors", G_MIN, G_MAX) == pytest.approx((-400e-6, 400e-6))
    fmap = flat_map(layout_network((2, 1), (8, 8)))
    theta = np.array([2.0, -1.0, 0.0])  # w = (2, -1), b = 0
    g, scale = fmap.targets(theta, G_MIN, G_MAX, "authors")
    assert g[fmap.pos] * 1e6 == pytest.approx([400, -400, -400])
    assert g[fmap.neg] * 1e6 == pytest.approx([-400, 0, -400])
    assert fmap.weights(g, scale) == pytest.approx(theta)
    with pytest.raises(ValueError, match="mapping"):
        mapping_window("bogus", G_MIN, G_MAX)  # type: ignore[arg-type]


def test_disturb_outliers_become_60_uS() -> None:
    tm = TransferModel.from_preset("tio2-sherbrooke-2023").only(
        tuning=False, offset=False, stuck=False)
    st = tm.stats.disturb
    k = np.array([1, 30, 0])
    d = authors_draw(tm, k, 20000, np.random.default_rng(1))
    sig = np.array([st.std[st.k.index(1)], st.std[st.k.index(30)]])
    big = d.delta[:, :2] == 60e-6
    assert big.any()  # the clipped data reach beyond 4 sigma at k = 1
    assert np.all((np.abs(d.delta[:, :2]) <= 4 * sig + 1e-12) | big)
    assert np.all(d.delta[:, 2] == 0)


def test_output_bias_is_exact_in_authors_transfers() -> None:
    from xbarlab.nn.training import scaled_stuck

    # devices stuck half of the time (25 % at LRS): a bias pair whose G- sticks at LRS
    # (~573 uS > 500 uS) flips its sign; W2 = 0 so only the output bias decides
    tm = scaled_stuck(TransferModel.from_preset("tio2-sherbrooke-2023").only(
        tuning=False, offset=False, disturb=False), 50.0)
    layout = layout_network((2, 8, 1), (8, 8))
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(8, 2)), rng.normal(size=8)), (np.zeros((1, 8)), np.array([30.0]))]
    x, y = rng.random((50, 2)), np.ones(50)
    authors = evaluate_transfers(params, layout, tm, x, y, 400, rng, "authors")
    physical = evaluate_transfers(params, layout, tm, x, y, 400, rng, "physical")
    assert authors.acc_min == 1.0  # their code leaves a [1]-shaped tensor ideal
    assert 0.6 < physical.acc_mean < 0.9  # about 1 - 0.25 of the transfers flip the bias


torch = pytest.importorskip("torch")
from xbarlab.nn.data import load_moons  # noqa: E402
from xbarlab.nn.training import paper_config, train  # noqa: E402


@pytest.mark.parametrize("kind", ["regular", "hardware-aware"])
def test_seeds_change_the_network_and_one_seed_repeats(kind: str) -> None:
    data = load_moons()
    one = paper_config(kind, epochs=1, seed=0, lr=1e-12, init="authors")  # type: ignore[arg-type]
    a = train(one, data).params[0][0]
    b = train(one.model_copy(update={"seed": 1}), data).params[0][0]
    assert not np.allclose(a, b)  # lr ~ 0: the parameters are the initialisation
    c = train(paper_config(kind, epochs=3, seed=0), data).params[0][0]  # type: ignore[arg-type]
    again = train(paper_config(kind, epochs=3, seed=0), data).params[0][0]  # type: ignore[arg-type]
    assert np.array_equal(c, again)
