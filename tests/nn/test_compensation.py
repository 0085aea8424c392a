"""Read-back compensation: no test labels, stuck devices untouched, window kept, fixes a known
stuck device, leaves a converged network alone, clear config errors."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
import torch

from xbarlab.config import ConfigError
from xbarlab.nn.compensation import (
    CompensationConfig,
    compensate,
    make_compensation_config,
)
from xbarlab.nn.data import make_matched_moons
from xbarlab.nn.mapping import flat_map, flatten_params, layout_network, mapping_window
from xbarlab.nn.metrics import correct_matrix, mlp_logits
from xbarlab.nn.transfer import TransferDraw, TransferModel, draw


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def random_params(sizes: tuple[int, ...], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 3, (b, a)), rng.normal(0, 1, b)) for a, b in pairwise(sizes)]


def stuck_heavy(model: TransferModel) -> TransferModel:
    """The preset with 10 % stuck devices, so small draws have many."""
    s = model.stats
    return replace(model, stats=s.model_copy(update={
        "stuck": s.stuck.model_copy(update={"lrs_rate": 0.05, "hrs_rate": 0.05})}))


def test_retune_never_reads_test_labels() -> None:
    data = make_matched_moons(1)
    blind = replace(data, y_test=np.full_like(data.y_test, np.nan))
    sizes = (2, 4, 1)
    layout = layout_network(sizes)
    model = stuck_heavy(TransferModel.from_preset())
    cfg = CompensationConfig(steps=20)
    d = draw(model, layout.device_k(), 8, np.random.default_rng(3))
    out = [compensate(random_params(sizes), layout, model, dd.selection_points(), d,
                      np.random.default_rng(4), "physical", cfg) for dd in (data, blind)]
    assert out[0].stuck.any()
    np.testing.assert_array_equal(out[0].targets, out[1].targets)
    np.testing.assert_array_equal(out[0].final, out[1].final)


@pytest.mark.parametrize("mapping", ["physical", "authors"])
def test_stuck_devices_stay_and_targets_stay_in_window(mapping: str) -> None:
    data = make_matched_moons(2)
    sizes = (2, 4, 1)
    layout = layout_network(sizes)
    model = stuck_heavy(TransferModel.from_preset())
    d = draw(model, layout.device_k(), 16, np.random.default_rng(5))
    cfg = CompensationConfig(steps=40, lr=0.3, read_noise_pct=5.0, only_stuck_transfers=False)
    c = compensate(random_params(sizes, 1), layout, model, data.selection_points(), d,
                   np.random.default_rng(6), mapping, cfg)  # type: ignore[arg-type]
    st = d.stuck
    assert st.sum() >= 3
    np.testing.assert_array_equal(c.targets[st], c.read_back[st])
    np.testing.assert_array_equal(c.final[st], d.stuck_g[st])
    assert not c.reprogrammed[st].any()
    assert not np.array_equal(c.read_back[st], c.programmed[st])  # read noise was applied
    lo, hi = mapping_window(mapping, model.g_min, model.g_max)  # type: ignore[arg-type]
    healthy = c.targets[~st]
    assert healthy.min() >= lo - 1e-12 and healthy.max() <= hi + 1e-12
    assert np.isclose(healthy.min(), lo) or np.isclose(healthy.max(), hi)  # lr 0.3 hits edges
    # devices not reprogrammed keep their programmed conductance
    keep = ~c.reprogrammed
    np.testing.assert_array_equal(c.final[keep], c.programmed[keep])


def linear_case(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in the unit square, class 1 where x1 - x2 > 0.1 (a 2-1 net: w = (4, -4),
    b = -0.4 classifies them all)."""
    x = np.random.default_rng(seed).uniform(0, 1, (n, 2))
    return x, (x[:, 0] - x[:, 1] > 0.1).astype(np.float64)


def test_compensation_fixes_a_known_stuck_device() -> None:
    sizes = (2, 1)
    layout = layout_network(sizes)
    model = TransferModel.from_preset()
    params = [(np.array([[4.0, -4.0]]), np.array([-0.4]))]
    fmap = flat_map(layout)
    g0, _ = fmap.targets(flatten_params(params), model.g_min, model.g_max)
    n, dev = 1, int(fmap.pos[0])  # positive device of w1 (at g_max) stuck half way
    stuck_g = np.full((n, g0.size), np.nan)
    stuck_g[0, dev] = 0.5 * (model.g_min + model.g_max)
    zeros = np.zeros((n, g0.size))
    d = TransferDraw(zeros, zeros, zeros, stuck_g)
    exact = model.only(tuning=False, offset=False, disturb=False, stuck=False)
    # training labels drawn with P(1) = sigmoid(2 (x1 - x2 - 0.1)): the BCE optimum is
    # w = (2, -2), b = -0.2, reachable with w1 stuck at 2 (the boundary is scale-free)
    rng = np.random.default_rng(0)
    x_fit = rng.uniform(0, 1, (20000, 2))
    p1 = 1 / (1 + np.exp(-2 * (x_fit[:, 0] - x_fit[:, 1] - 0.1)))
    y_fit = (rng.uniform(size=20000) < p1).astype(np.float64)
    x_test, y_test = linear_case(400, 1)
    c = compensate(params, layout, exact, (x_fit, y_fit), d, np.random.default_rng(0),
                   "physical", CompensationConfig(steps=1000, lr=0.01))

    def acc(theta: np.ndarray) -> float:
        p = [(theta[:, :2].reshape(-1, 1, 2), theta[:, 2:])]
        return float(correct_matrix(mlp_logits(x_test, p), y_test).mean())

    assert c.theta_before[0, 0] == pytest.approx(2.0)  # the stuck device halves w1
    assert acc(c.theta_before) < 0.93
    assert acc(c.theta_after) >= 0.98
    assert c.final[0, dev] == stuck_g[0, dev]
    assert c.reprogrammed.sum() >= 1


def test_converged_network_is_left_alone() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (600, 2))
    y = (rng.uniform(size=600) < 1 / (1 + np.exp(-6 * (x[:, 0] - x[:, 1])))).astype(float)
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x, y)
    params = [(lr.coef_.astype(float), lr.intercept_.astype(float))]
    layout = layout_network((2, 1))
    exact = TransferModel.from_preset().only(tuning=False, offset=False, disturb=False,
                                             stuck=False)
    d = draw(exact, layout.device_k(), 4, np.random.default_rng(0))
    c = compensate(params, layout, exact, (x, y), d, np.random.default_rng(1), "physical",
                   CompensationConfig(steps=300, only_stuck_transfers=False))
    theta = flatten_params(params)
    assert np.max(np.abs(c.theta_after - theta)) < 0.03 * np.max(np.abs(theta))
    before = correct_matrix(mlp_logits(x, params), y)[0]
    after = correct_matrix(mlp_logits(x, [(c.theta_after[:, :2].reshape(-1, 1, 2),
                                             c.theta_after[:, 2:])]), y)
    assert np.mean(after == before[None, :]) > 0.99
    # the default only re-tunes transfers with stuck devices: nothing happens here
    c2 = compensate(params, layout, exact, (x, y), d, np.random.default_rng(1), "physical")
    assert not c2.reprogrammed.any()
    np.testing.assert_array_equal(c2.final, c2.programmed)


@pytest.mark.parametrize(("data", "field"), [
    ({"steps": -1}, "steps"), ({"lr": 0.0}, "lr"), ({"moving": "all"}, "moving"),
    ({"tolerance": 2.0}, "tolerance"), ({"read_noise_pct": -1}, "read_noise_pct"),
    ({"stepz": 3}, "stepz"),
])
def test_bad_config_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_compensation_config(data)


def test_draw_of_another_network_is_refused() -> None:
    layout = layout_network((2, 1))
    model = TransferModel.from_preset()
    d = draw(model, layout_network((2, 3, 1)).device_k(), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="devices"):
        compensate([(np.ones((1, 2)), np.ones(1))], layout, model,
                   (np.zeros((3, 2)), np.zeros(3)), d, np.random.default_rng(0))
