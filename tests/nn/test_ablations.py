"""Ablation toggles remove their effect: with none, the transfer is the trained network."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.nn.ablations import EFFECTS, ablate, ablation_models
from xbarlab.nn.mapping import layout_network
from xbarlab.nn.metrics import correct_matrix, mlp_logits
from xbarlab.nn.transfer import TransferModel

GRID = np.stack(np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 40)), -1).reshape(-1, 2)


def net() -> list[tuple[np.ndarray, np.ndarray]]:
    """A random 2-8-1 net whose boundary halves the unit square; its hidden bias is all
    negative (the authors' single-column scheme maps it on one device per weight)."""
    rng = np.random.default_rng(4)
    layers = [(rng.normal(0, 4, (8, 2)), -np.abs(rng.normal(0, 1, 8)) - 0.1),
              (rng.normal(0, 3, (1, 8)), np.zeros(1))]
    layers[1] = (layers[1][0], -np.median(mlp_logits(GRID, layers, dtype=np.float64)[0])[None])
    return layers


def data() -> tuple[np.ndarray, np.ndarray]:
    """A 40 x 40 grid over the input range labelled by the network itself (nominal 100 %):
    the points next to its boundary flip under any perturbation of the weights."""
    y = (mlp_logits(GRID, net(), dtype=np.float64)[0] > 0).astype(float)
    return GRID, y


def test_models_switch_exactly_their_effects() -> None:
    models = ablation_models(TransferModel.from_preset())
    assert len(models) == 2 + 2 * len(EFFECTS)
    for e in EFFECTS:
        assert [getattr(models[f"only {e}"], f) for f in EFFECTS] == [f == e for f in EFFECTS]
        assert [getattr(models[f"without {e}"], f) for f in EFFECTS] == [f != e for f in EFFECTS]
    assert not any(getattr(models["none"], f) for f in EFFECTS)
    assert all(getattr(models["all"], f) for f in EFFECTS)


@pytest.mark.parametrize(("mapping", "single"), [("physical", False), ("authors", False),
                                                  ("authors", True)])
def test_no_effect_gives_the_nominal_accuracy_on_every_transfer(mapping: str,
                                                                single: bool) -> None:
    x, y = data()
    layout = layout_network((2, 8, 1), (8, 8))
    res = ablate(net(), layout, TransferModel.from_preset(), x, y, 200, 7, mapping,  # type: ignore[arg-type]
                 single)
    nominal_correct = correct_matrix(mlp_logits(x, net()), y)[0]
    nominal = float(np.mean(nominal_correct))
    none = res["none"]
    assert none.correct is not None
    assert (none.correct == nominal_correct[None, :]).all()  # every transfer is the nominal net
    assert none.acc_min == pytest.approx(nominal) and none.share_95 == pytest.approx(nominal)
    # each effect alone degrades some transfers; all of them together degrade the most
    for e in EFFECTS:
        assert res[f"only {e}"].acc_min < nominal, e
    assert res["all"].acc_mean < min(res[f"only {e}"].acc_mean for e in EFFECTS) + 0.02
    assert res["without stuck"].acc_mean > res["all"].acc_mean


def test_unknown_variant_is_refused() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="unknown ablation"):
        ablate(net(), layout_network((2, 8, 1), (8, 8)), TransferModel.from_preset(), x, y, 5,
               0, variants=["only magic"])
