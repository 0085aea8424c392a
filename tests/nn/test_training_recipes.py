"""xbarlab's training options beyond the paper: K-transfer loss, warm start, selection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xbarlab.config import ConfigError
from xbarlab.nn.data import MoonsData, load_moons
from xbarlab.nn.mapping import layout_network
from xbarlab.nn.metrics import correct_matrix, mlp_logits
from xbarlab.nn.transfer import TransferModel

torch = pytest.importorskip("torch")
from xbarlab.nn.model import MLP  # noqa: E402
from xbarlab.nn.training import (  # noqa: E402
    RESTART_STRIDE,
    _HardwareSampler,
    _scale_aware,
    make_config,
    train,
    transfer_loss,
)


@pytest.fixture(scope="module")
def data() -> MoonsData:
    return load_moons()


def test_batched_forward_matches_one_network_at_a_time() -> None:
    torch.manual_seed(1)
    net = MLP((2, 8, 1))
    thetas = net.theta.detach() + 0.3 * torch.randn(5, net.theta.numel())
    x = torch.rand(7, 2)
    batched = net(x, thetas)
    assert batched.shape == (5, 7)
    for k in range(5):
        assert torch.allclose(batched[k], net(x, thetas[k]), atol=1e-6)


def test_k_sample_loss_is_the_mean_over_k_distinct_transfers(data: MoonsData) -> None:
    tm = TransferModel.from_preset()
    layout = layout_network((2, 8, 1))
    sampler = _HardwareSampler(tm, layout, 64, 5, "authors")
    torch.manual_seed(2)
    net = MLP((2, 8, 1), "authors")
    nominal = net.theta_numpy()
    new, _, _ = sampler.next(nominal, 6)
    assert new.shape == (6, nominal.size)
    assert len({row.tobytes() for row in new}) == 6  # six different transfers
    x = torch.as_tensor(data.x_train[:50], dtype=torch.float32)
    y = torch.as_tensor(data.y_train[:50], dtype=torch.float32)
    thetas = torch.as_tensor(new, dtype=torch.float32)
    ref = np.mean([float(torch.nn.BCEWithLogitsLoss()(net(x, thetas[k]), y)) for k in range(6)])
    assert float(transfer_loss(net, x, y, thetas)) == pytest.approx(ref, rel=1e-5)
    # trimmed: per point, the two largest of the six losses are left out
    per = np.array([torch.nn.BCEWithLogitsLoss(reduction="none")(net(x, thetas[k]), y)
                    .detach().numpy() for k in range(6)])  # (6, 50)
    kept = [sorted(per[:, p])[:4] for p in range(per.shape[1])]
    assert float(transfer_loss(net, x, y, thetas, 2)) == pytest.approx(np.mean(kept), rel=1e-5)


def test_sigmoid_loss_is_bounded_per_transfer() -> None:
    torch.manual_seed(5)
    net = MLP((2, 8, 1))
    thetas = net.theta.detach() + torch.randn(4, net.theta.numel())
    x = torch.rand(30, 2)
    y = (torch.rand(30) > 0.5).float()
    logits = net(x, thetas).detach().numpy()
    sign = 2 * y.numpy() - 1
    ref = np.mean(1 / (1 + np.exp(sign * logits)))  # sigmoid(-signed logit)
    assert float(transfer_loss(net, x, y, thetas, kind="sigmoid")) == pytest.approx(ref,
                                                                                    rel=1e-5)
    # a transfer that fails by a mile costs at most 1, BCE grows without bound
    far = net.theta.detach().unsqueeze(0) * 1e3
    assert float(transfer_loss(net, x, y, far, kind="sigmoid")) <= 1.0
    assert float(transfer_loss(net, x, y, far)) > 10.0
    with pytest.raises(ValueError, match="transfer loss"):
        transfer_loss(net, x, y, thetas, kind="hinge")


def test_straight_through_gradient_is_the_mean_of_the_transfers_gradients(
    data: MoonsData,
) -> None:
    torch.manual_seed(3)
    net = MLP((2, 8, 1))
    shift = 0.2 * torch.randn(3, net.theta.numel())
    x = torch.as_tensor(data.x_train[:40], dtype=torch.float32)
    y = torch.as_tensor(data.y_train[:40], dtype=torch.float32)
    transfer_loss(net, x, y, net.theta + shift).backward()
    assert net.theta.grad is not None
    grad = net.theta.grad.clone()
    ref = torch.zeros_like(grad)
    for k in range(3):  # gradient at each transferred point, w.r.t. that point
        t = (net.theta.detach() + shift[k]).requires_grad_()
        torch.nn.BCEWithLogitsLoss()(net(x, t), y).backward()
        ref += t.grad / 3
    assert torch.allclose(grad, ref, atol=1e-6)


def test_new_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="drop_worst"):
        make_config({"samples": 4, "drop_worst": 4})
    with pytest.raises(ConfigError, match="regular_epochs"):
        make_config({"epochs": 10, "regular_epochs": 10})
    with pytest.raises(ConfigError, match="restarts"):
        make_config({"restarts": 0})
    with pytest.raises(ConfigError, match="transfer_loss"):
        make_config({"transfer_loss": "hinge"})


def test_warm_start_epochs_are_regular_training(data: MoonsData) -> None:
    # the first regular_epochs of a hardware-aware run follow the regular run exactly
    reg = train(make_config({"epochs": 6, "seed": 6}), data)
    ha = train(make_config({"epochs": 6, "seed": 6, "hardware_aware": True,
                            "regular_epochs": 4}), data)
    assert ha.epoch_loss[:4] == pytest.approx(reg.epoch_loss[:4], rel=1e-6)
    assert ha.epoch_loss[4:] != pytest.approx(reg.epoch_loss[4:], rel=1e-3)


def _not_test(data: MoonsData) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation points that are no test point (broadcast comparison)."""
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    in_test = (x[:, None, :] == data.x_test[None, :, :]).all(axis=2).any(axis=1)
    return x[~in_test], y[~in_test]


def test_selection_points_exclude_every_test_point(data: MoonsData) -> None:
    x, y = data.selection_points()
    ref_x, ref_y = _not_test(data)
    assert np.array_equal(x, ref_x) and np.array_equal(y, ref_y)
    assert not (x[:, None, :] == data.x_test[None, :, :]).all(axis=2).any()
    if data.source.startswith("paper"):  # the paper's test points all reappear elsewhere
        assert len(x) == len(data.x_train) + len(data.x_val) - len(data.x_test)


def test_selection_never_reads_the_test_labels(data: MoonsData) -> None:
    # NaN test labels would poison any score computed on them: selection must not change
    cfg = make_config({"epochs": 20, "seed": 1, "hardware_aware": True, "mapping": "authors",
                       "select_every": 5, "select_transfers": 50, "restarts": 2})
    a = train(cfg, data)
    b = train(cfg, dataclasses.replace(data, y_test=np.full_like(data.y_test, np.nan)))
    assert a.extra["restart_scores"] == b.extra["restart_scores"]
    assert a.extra["selected_epoch"] == b.extra["selected_epoch"]
    for (w1, b1), (w2, b2) in zip(a.params, b.params, strict=True):
        assert np.array_equal(w1, w2) and np.array_equal(b1, b2)


def test_restarts_keep_the_best_on_the_selection_points(data: MoonsData) -> None:
    # regular networks are selected by nominal accuracy: recompute it independently
    x, y = _not_test(data)
    cfg = make_config({"epochs": 3, "lr": 0.05, "seed": 2, "restarts": 4})
    chosen = train(cfg, data)
    single = [train(make_config({"epochs": 3, "lr": 0.05, "seed": 2 + RESTART_STRIDE * r}), data)
              for r in range(4)]
    val_acc = [float(correct_matrix(mlp_logits(x, s.params), y).mean()) for s in single]
    assert len(set(val_acc)) > 1  # the restarts differ, so the choice matters
    best = int(np.argmax(val_acc))
    assert chosen.extra["restart"] == best
    assert np.array_equal(chosen.params[0][0], single[best].params[0][0])
    assert chosen.config.seed == 2 and chosen.config.restarts == 4


def test_checkpoint_selection_keeps_the_best_checkpoint(data: MoonsData) -> None:
    # a run with checkpoints every epoch returns the epoch of best validation accuracy,
    # recomputed here from runs stopped at each epoch (same seed, same trajectory)
    x, y = _not_test(data)
    cfg = {"epochs": 6, "lr": 0.05, "seed": 8}
    chosen = train(make_config({**cfg, "select_every": 1}), data)
    acc = []
    for e in range(1, 7):
        p = train(make_config({**cfg, "epochs": e}), data).params
        acc.append(float(correct_matrix(mlp_logits(x, p), y).mean()))
    last_best = len(acc) - int(np.argmax(acc[::-1]))  # ties: the later checkpoint
    assert chosen.extra["selected_epoch"] == last_best


def test_scale_aware_shift_keeps_the_value_and_adds_the_max_weight_gradient() -> None:
    layout = layout_network((2, 8, 1))
    fmap = _HardwareSampler(TransferModel.from_preset(), layout, 4, 0).fmap
    torch.manual_seed(9)
    theta = torch.randn(fmap.n_params, requires_grad=True)
    nominal = theta.detach().numpy().astype(np.float64)
    shift = 0.1 * torch.randn(3, fmap.n_params)
    scaled = _scale_aware(shift, theta, nominal, fmap)
    assert torch.allclose(scaled, shift, atol=1e-6)  # same transfer
    (theta + scaled).sum().backward()
    # analytic: 3 everywhere, plus, at each tensor's max|w| element, sign(w) * sum of the
    # tensor's shifts per unit of max|w|
    ref = np.full(fmap.n_params, 3.0)
    for t in range(fmap.n_tensors):
        idx = np.flatnonzero(fmap.tensor == t)
        i = idx[np.argmax(np.abs(nominal[idx]))]
        ref[i] += np.sign(nominal[i]) * shift[:, idx].sum().item() / abs(nominal[i])
    assert theta.grad is not None
    assert theta.grad.numpy() == pytest.approx(ref, rel=1e-4)
