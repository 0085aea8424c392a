"""Regular and hardware-aware training: configuration, mechanics, and the headline effect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xbarlab.config import ConfigError
from xbarlab.nn.data import MoonsData, load_moons
from xbarlab.nn.mapping import layout_network
from xbarlab.nn.metrics import evaluate_transfers
from xbarlab.nn.transfer import TransferModel

torch = pytest.importorskip("torch")
from xbarlab.nn.model import MLP  # noqa: E402
from xbarlab.nn.reproduce import HARDWARE_AWARE_RECIPE  # noqa: E402
from xbarlab.nn.training import make_config, paper_config, train  # noqa: E402


@pytest.fixture(scope="module")
def data() -> MoonsData:
    return load_moons()


def test_invalid_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"lr: .*greater than 0"):
        make_config({"lr": -0.1})
    with pytest.raises(ConfigError, match="batch_size"):
        make_config({"batch_size": 0})
    with pytest.raises(ConfigError, match="bogus"):
        make_config({"bogus": 1})
    with pytest.raises(ConfigError, match="sizes"):
        make_config({"sizes": [2, 8, 2]})


def test_paper_settings() -> None:
    reg, ha = paper_config("regular"), paper_config("hardware-aware")
    assert (reg.lr, reg.batch_size, reg.sizes, reg.weight_decay) == (0.1, 256, (2, 8, 1), 0.0)
    assert ha.hardware_aware and ha.weight_decay == 1e-4


def test_model_matches_torch_linear_layers() -> None:
    torch.manual_seed(0)
    net = MLP((2, 8, 1))
    params = net.numpy_params()
    ref = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        ref[0].weight.copy_(torch.as_tensor(params[0][0]))
        ref[0].bias.copy_(torch.as_tensor(params[0][1]))
        ref[2].weight.copy_(torch.as_tensor(params[1][0]))
        ref[2].bias.copy_(torch.as_tensor(params[1][1]))
    x = torch.rand(5, 2)
    assert torch.allclose(net(x), ref(x)[:, 0])


def test_hardware_aware_without_effects_is_regular_training(data: MoonsData) -> None:
    # with every effect off, a transfer reproduces the weights exactly (up to rounding), so
    # straight-through hardware-aware training must follow the regular trajectory
    off = TransferModel.from_preset(tuning=False, offset=False, disturb=False, stuck=False)
    reg = train(make_config({"epochs": 30, "seed": 3}), data)
    ha = train(make_config({"epochs": 30, "seed": 3, "hardware_aware": True}), data, off)
    for (w1, b1), (w2, b2) in zip(reg.params, ha.params, strict=True):
        assert w1 == pytest.approx(w2, abs=1e-3) and b1 == pytest.approx(b2, abs=1e-3)


def test_updates_of_substituted_weights_are_undone(data: MoonsData) -> None:
    # every device stuck: every weight is substituted in every step, so none may move
    tm = TransferModel.from_preset()
    stuck = tm.stats.stuck.model_copy(update={"lrs_rate": 0.5, "hrs_rate": 0.5})
    all_stuck = dataclasses.replace(tm, stats=tm.stats.model_copy(update={"stuck": stuck}))
    torch.manual_seed(4)
    initial = MLP((2, 8, 1)).numpy_params()
    r = train(make_config({"epochs": 3, "seed": 4, "hardware_aware": True}), data, all_stuck)
    assert r.substituted_share == pytest.approx(1.0)
    for (w0, b0), (w1, b1) in zip(initial, r.params, strict=True):
        assert np.array_equal(w0, w1) and np.array_equal(b0, b1)


def test_hardware_aware_net_is_clearly_more_robust(data: MoonsData) -> None:
    # the headline effect at reduced scale: same transfer model, same transfers for both
    tm = TransferModel.from_preset()
    reg = train(paper_config("regular", epochs=400, seed=0), data, tm)
    ha = train(paper_config("hardware-aware", epochs=400, seed=0, **HARDWARE_AWARE_RECIPE),
               data, tm)
    layout = layout_network((2, 8, 1))
    m_reg = evaluate_transfers(reg.params, layout, tm, data.x_test, data.y_test, 400,
                               np.random.default_rng(11))
    m_ha = evaluate_transfers(ha.params, layout, tm, data.x_test, data.y_test, 400,
                              np.random.default_rng(11))
    assert m_reg.acc_nominal > 0.85 and m_ha.acc_nominal > 0.8
    assert m_ha.share_95 > m_reg.share_95 + 0.15
    assert m_ha.acc_min > m_reg.acc_min
