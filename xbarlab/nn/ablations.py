"""Ablations of the paper's transfer model: each effect alone and each effect removed.

The statistical transfer (`xbarlab.nn.transfer`) has four effects: tuning imprecision of
write-verify, the per-device systematic offset, the disturb of later programmings, and stuck
devices. `ablation_models` gives the full model, the model with none of them (the transferred
network is then exactly the trained one: its accuracy is the nominal accuracy on every
transfer), each effect alone, and each effect removed. `ablate` scores one network under every
variant with the same mapping and scheme as the main evaluation; each variant draws its
transfers from the same seed (the effects that stay on do not see the same draws, since the
switched-off ones no longer consume random numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.nn.mapping import Mapping, NetworkLayout
from xbarlab.nn.metrics import TransferMetrics, evaluate_transfers
from xbarlab.nn.transfer import TransferModel

EFFECTS = ("tuning", "offset", "disturb", "stuck")
EFFECT_TITLES = {"tuning": "tuning imprecision", "offset": "offset", "disturb": "disturb",
                 "stuck": "stuck devices"}


def ablation_models(model: TransferModel) -> dict[str, TransferModel]:
    """Variant name -> transfer model: "all", "none", "only <effect>", "without <effect>"."""
    out = {"all": model.only(**dict.fromkeys(EFFECTS, True)),
           "none": model.only(**dict.fromkeys(EFFECTS, False))}
    for e in EFFECTS:
        out[f"only {e}"] = model.only(**{f: f == e for f in EFFECTS})
    for e in EFFECTS:
        out[f"without {e}"] = model.only(**{f: f != e for f in EFFECTS})
    return out


def variant_title(name: str) -> str:
    """'only stuck' -> 'only stuck devices'."""
    head, _, effect = name.partition(" ")
    return f"{head} {EFFECT_TITLES[effect]}" if effect else name


def ablate(
    params: Sequence[tuple[FloatArray, FloatArray]],
    layout: NetworkLayout,
    model: TransferModel,
    x: FloatArray,
    y: FloatArray,
    n: int,
    seed: Sequence[int] | int,
    mapping: Mapping = "physical",
    single_column: bool = False,
    variants: Sequence[str] | None = None,
) -> dict[str, TransferMetrics]:
    """The paper's metric of one network under each ablation variant (`n` transfers each,
    drawn from ``np.random.default_rng(seed)``); `variants`: a subset of the names."""
    models = ablation_models(model)
    names = list(models) if variants is None else list(variants)
    unknown = set(names) - set(models)
    if unknown:
        raise ValueError(f"unknown ablation variants {sorted(unknown)}; known: {list(models)}")
    return {name: evaluate_transfers(params, layout, models[name], x, y, n,
                                     np.random.default_rng(seed), mapping, single_column)
            for name in names}
