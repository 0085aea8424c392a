"""Regular and hardware-aware training of the paper's MLP.

Hardware-aware training (Drolet et al. 2023) differs from regular training in three ways:

1. every forward pass uses a freshly sampled transfer of the current weights (mapping to pairs,
   tuning imprecision, offset, disturb, stuck devices: `xbarlab.nn.transfer`), with
   straight-through gradients to the nominal weights (w_eff = w + stopgrad(w_transfer - w));
2. weights with a stuck device in their pair act as dropped out: their value in that pass is
   the stuck one, and the optimizer's update to them is undone after the step;
3. regularisation: weight decay (1e-4 in the paper) and optionally a KL term pulling the
   transfer distribution N(w, s^2) of each weight towards a prior N(0, p^2).

Regular training is plain Adam on the nominal weights. All settings live in `TrainConfig`;
`paper_config` gives the paper's. Options beyond the paper (xbarlab's recipe in
`xbarlab.nn.reproduce.RECIPES` uses the first three; the others are kept, measured and tested,
see the reproduce docstring for the numbers):

- ``samples``: K transfers per step, evaluated in one batched forward pass, loss averaged
  (`transfer_loss`); a parameter stuck in any of the K has its update undone;
- ``lr_schedule="cosine"``, ``weight_decay``: lr decay 0.1 -> 1e-3; the paper's 1e-4 weight
  decay (Adam L2) drives the 2-8-1 net onto a near-linear boundary (87.5 % accuracy);
- ``stuck_scale``: stuck rates seen in training multiplied (evaluation keeps the true rates);
- ``drop_worst`` (per point, a trimmed mean over the K transfers), ``transfer_loss="sigmoid"``
  (a bounded loss), ``regular_epochs`` (warm start without transfers), ``scale_gradient``
  (the gradient also sees that a tensor's max|w| sets the noise of all its weights);
- selection: ``select_every`` (checkpoints) and ``restarts`` (trainings of seeds
  seed + 1000 r), scored on `MoonsData.selection_points`, the training and validation points
  that are not test points, never the test split; ``select_min_accuracy`` ranks networks
  below a nominal accuracy after the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xbarlab.config import validate_config
from xbarlab.nn.authors import mode_draw, mode_fixed, mode_k
from xbarlab.nn.data import MoonsData
from xbarlab.nn.mapping import (
    FlatMap,
    Mapping,
    NetworkLayout,
    flat_map,
    flatten_params,
    layout_network,
    unflatten_params,
)
from xbarlab.nn.metrics import THRESHOLD, correct_matrix, mlp_logits
from xbarlab.nn.model import MLP, Params
from xbarlab.nn.single_column import column_stuck, column_targets, column_transfer
from xbarlab.nn.transfer import DEFAULT_PRESET, TransferModel, transfer_std


class TrainConfig(BaseModel):
    """Training settings (the paper's defaults: Adam lr 0.1, batch 256, BCE with logits)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    sizes: tuple[int, ...] = Field((2, 8, 1), description="layer widths, input first")
    epochs: int = Field(2000, ge=1, le=1_000_000)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.1, gt=0, le=10)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: decay from lr to lr_final over the epochs"
    )
    lr_final: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, description="Adam (L2) weight decay")
    hardware_aware: bool = False
    stuck_substitution: bool = Field(True, description="undo updates of stuck-substituted weights")
    mapping: Literal["physical", "authors"] = Field(
        "physical", description="physical: pairs in [g_min, g_max]; authors: +-(g_max - g_min)"
    )
    single_column: bool = Field(
        False, description="authors mapping only: single-sign tensors on one device per weight "
        "(`xbarlab.nn.single_column`)")
    init: Literal["torch", "authors"] = Field(
        "torch", description="torch: nn.Linear default; authors: Xavier weights, biases 0.01"
    )
    stuck_scale: float = Field(
        1.0, ge=0, le=50, description="multiplier of the stuck rates seen in training"
    )
    kl_weight: float = Field(0.0, ge=0, description="weight of the KL term (0: off)")
    kl_prior_std: float = Field(1.0, gt=0, description="std of the N(0, p^2) weight prior")
    preset: str = Field(DEFAULT_PRESET, description="statistical device preset")
    array_rows: int = Field(8, ge=2, le=4096)
    array_cols: int = Field(8, ge=2, le=4096)
    order: Literal["row-major", "column-major"] = "column-major"
    samples: int = Field(1, ge=1, le=64, description="transfers averaged per training step")
    transfer_loss: Literal["bce", "sigmoid"] = Field(
        "bce", description="hardware-aware loss per point and transfer: bce (the paper's), or "
        "sigmoid(-margin), bounded: a transfer that fails badly weighs no more than one that "
        "fails narrowly"
    )
    scale_gradient: bool = Field(
        False, description="straight-through shift expressed per unit of its tensor's max|w| "
        "and multiplied by the (differentiable) max|w|: the gradient sees that a larger "
        "max|w| makes every weight of the tensor noisier"
    )
    drop_worst: int = Field(
        0, ge=0, description="per point, the worst losses of the `samples` transfers left out"
    )
    regular_epochs: int = Field(
        0, ge=0, description="hardware-aware: first epochs trained without transfers (warm start)"
    )
    select_every: int = Field(
        0, ge=0, description="epochs between validation checkpoints; keep the best (0: last)"
    )
    select_transfers: int = Field(200, ge=1, description="transfers per validation checkpoint")
    select_min_accuracy: float = Field(
        0.0, ge=0, le=1, description="checkpoints or restarts whose nominal validation accuracy "
        "is below this are chosen only if none reaches it"
    )
    restarts: int = Field(
        1, ge=1, le=100, description="trainings per seed (seeds seed + 1000 r); the best on the "
        "validation split is kept"
    )
    draw_block: int = Field(512, ge=1, description="transfers drawn at once during training")
    seed: int = Field(0, ge=0)
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads while training")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2 or any(s < 1 for s in v) or v[-1] != 1:
            raise ValueError(f"need >= 2 positive widths ending in 1 output, got {v}")
        return v

    @model_validator(mode="after")
    def _drop_worst(self) -> TrainConfig:
        if self.regular_epochs >= self.epochs:
            raise ValueError(
                f"regular_epochs ({self.regular_epochs}) must be smaller than epochs "
                f"({self.epochs})"
            )
        if self.drop_worst >= self.samples:
            raise ValueError(
                f"drop_worst ({self.drop_worst}) must be smaller than samples ({self.samples})"
            )
        return self

    @property
    def array_shape(self) -> tuple[int, int]:
        return (self.array_rows, self.array_cols)


def make_config(data: dict[str, Any] | None = None, source: str = "<train config>") -> TrainConfig:
    """`TrainConfig` from plain data; invalid values raise `ConfigError` naming the field."""
    return validate_config(data or {}, TrainConfig, source)


def paper_config(kind: Literal["regular", "hardware-aware"], **overrides: Any) -> TrainConfig:
    """The paper's settings for the regular or the hardware-aware network (+ overrides)."""
    if kind not in ("regular", "hardware-aware"):
        raise ValueError(f"kind must be 'regular' or 'hardware-aware', got {kind!r}")
    base: dict[str, Any] = (
        {"hardware_aware": True, "weight_decay": 1e-4} if kind == "hardware-aware" else {}
    )
    return make_config({**base, **overrides})


@dataclass
class TrainResult:
    config: TrainConfig
    params: Params
    epoch_loss: list[float]
    seconds: float
    train_accuracy: float
    substituted_share: float = 0.0  # mean share of weights substituted per step
    extra: dict[str, Any] = field(default_factory=dict)


class _HardwareSampler:
    """Draws transfers of the current weights in blocks; one per training step."""

    def __init__(self, tm: TransferModel, layout: NetworkLayout, block: int, seed: int,
                 mapping: Mapping = "physical", single_column: bool = False) -> None:
        self.tm, self.block, self.mapping = tm, block, mapping
        self.single_column = single_column
        self.fmap = flat_map(layout)
        self.k = mode_k(layout, self.fmap, mapping)
        self.fixed = mode_fixed(layout, mapping)
        self.rng = np.random.default_rng(seed)
        self._draw = mode_draw(mapping, tm, self.k, block, self.rng)
        self._i = 0

    def next(
        self, theta: np.ndarray, samples: int = 1, with_std: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(transferred theta (S, P), substituted-parameter mask (P,): stuck in any of the
        S transfers, per-parameter std (P,) if asked)."""
        if self._i + samples > self.block:
            self._draw = mode_draw(self.mapping, self.tm, self.k, max(self.block, samples),
                                   self.rng)
            self._i = 0
        d = self._draw.take(slice(self._i, self._i + samples))
        self._i += samples
        cm = column_targets(self.fmap, theta, self.tm.g_min, self.tm.g_max, self.mapping,
                            self.single_column)
        g, scale = cm.g, cm.scale
        new = column_transfer(self.tm, self.fmap, cm, d)
        mask = np.asarray(column_stuck(self.fmap, d.stuck, cm).any(axis=0))
        if self.fixed is not None:
            new[:, self.fixed] = theta[self.fixed]
            mask[self.fixed] = False
        if not with_std:
            return new, mask, None
        s = transfer_std(self.tm, g, self.k)
        return new, mask, scale * np.hypot(s[self.fmap.pos], s[self.fmap.neg])


class _Selector:
    """Validation checkpoints: keeps the parameters with the best validation score.

    Scored on `MoonsData.selection_points` (training and validation points that are not test
    points; the paper's split repeats every test point in one of the other two): hardware-
    aware networks by the paper's metric (share of points correct in >= 95 % of a fixed set
    of simulated transfers with the preset's true rates, then the mean transfer accuracy),
    regular ones by their nominal accuracy: each is selected with what its training knows. A
    network below `select_min_accuracy` nominal accuracy on these points ranks after every
    one that reaches it."""

    def __init__(self, cfg: TrainConfig, data: MoonsData, tm: TransferModel | None) -> None:
        self.x, self.y = data.selection_points()
        self.tm = tm
        self.min_accuracy = cfg.select_min_accuracy
        self.best: tuple[float, float, float] | None = None
        self.best_theta: np.ndarray | None = None
        self.best_epoch = 0
        if tm is not None:
            layout = layout_network(cfg.sizes, cfg.array_shape, cfg.order)
            self.fmap = flat_map(layout)
            self.fixed = mode_fixed(layout, cfg.mapping)
            self.draw = mode_draw(cfg.mapping, tm, mode_k(layout, self.fmap, cfg.mapping),
                                  cfg.select_transfers, np.random.default_rng(cfg.seed + 104729))
        self.sizes = cfg.sizes
        self.mapping: Mapping = cfg.mapping
        self.single_column = cfg.single_column

    def score(self, theta: np.ndarray) -> tuple[float, float, float]:
        """(reaches the accuracy floor, main score, tie-breaker); larger is better."""
        nominal = correct_matrix(mlp_logits(self.x, unflatten_params(theta, self.sizes)), self.y)
        floor = float(nominal.mean() >= self.min_accuracy)
        if self.tm is None:
            return (floor, float(nominal.mean()), 0.0)
        cm = column_targets(self.fmap, theta, self.tm.g_min, self.tm.g_max, self.mapping,
                            self.single_column)
        t = column_transfer(self.tm, self.fmap, cm, self.draw)
        if self.fixed is not None:
            t[:, self.fixed] = theta[self.fixed]
        ok = correct_matrix(mlp_logits(self.x, unflatten_params(t, self.sizes)), self.y)
        return (floor, float((ok.mean(axis=0) >= THRESHOLD).mean()), float(ok.mean()))

    def __call__(self, epoch: int, theta: np.ndarray) -> None:
        score = self.score(theta)
        if self.best is None or score >= self.best:
            self.best, self.best_theta, self.best_epoch = score, theta.copy(), epoch


def scaled_stuck(tm: TransferModel, factor: float) -> TransferModel:
    """`tm` with its stuck-at-LRS and stuck-at-HRS rates multiplied by `factor`."""
    st = tm.stats.stuck
    lrs, hrs = st.lrs_rate * factor, st.hrs_rate * factor
    if lrs + hrs > 1:
        raise ValueError(f"stuck_scale {factor} makes the stuck rates exceed 1")
    stuck = st.model_copy(update={"lrs_rate": lrs, "hrs_rate": hrs})
    return replace(tm, stats=tm.stats.model_copy(update={"stuck": stuck}))


def _scale_aware(shift: torch.Tensor, theta: torch.Tensor, nominal: np.ndarray,
                 fmap: FlatMap) -> torch.Tensor:
    """`shift` (K, P) rewritten as (shift / max|w|) * max|w| with the second factor a
    differentiable function of theta (per tensor of `fmap`); same value, more gradient."""
    w_max_np = fmap.tensor_max(nominal)  # (P,), 1 for an all-zero tensor
    per_tensor = torch.stack([theta[torch.from_numpy(fmap.tensor == t)].abs().max()
                              for t in range(fmap.n_tensors)])
    w_max = per_tensor[torch.from_numpy(fmap.tensor)]
    return shift / torch.from_numpy(w_max_np.astype(np.float32)) * w_max


def transfer_loss(
    net: MLP, x: torch.Tensor, y: torch.Tensor, thetas: torch.Tensor, drop_worst: int = 0,
    kind: str = "bce",
) -> torch.Tensor:
    """BCE-with-logits (or, `kind` "sigmoid", sigmoid(-signed logit)) of the networks
    `thetas` (K, P) on (x, y), averaged over the K transfers and the points; with
    `drop_worst`, each point's `drop_worst` largest losses of the K are left out first (a
    trimmed mean: robustness in most transfers, not all)."""
    logits = net(x, thetas)  # (K, batch): one pass for all K transfers
    target = y.expand_as(logits)
    if kind == "bce":
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none")
    elif kind == "sigmoid":
        per = torch.sigmoid(-(2 * target - 1) * logits)
    else:
        raise ValueError(f"transfer loss must be 'bce' or 'sigmoid', got {kind!r}")
    if drop_worst:
        per = per.sort(dim=0).values[: thetas.shape[0] - drop_worst]
    return per.mean()


def train(
    cfg: TrainConfig,
    data: MoonsData,
    transfer_model: TransferModel | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train an MLP on `data` per `cfg`; hardware-aware uses `transfer_model` (or cfg.preset).

    Runs with `cfg.threads` torch threads (1 by default: a 2-8-1 network gains nothing from
    more, and shared cores lose a lot to oversubscription); the previous setting is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        if cfg.restarts == 1:
            return _train(cfg, data, transfer_model, on_epoch)
        return _train_restarts(cfg, data, transfer_model, on_epoch)
    finally:
        torch.set_num_threads(threads)


RESTART_STRIDE = 1000  # restart r of seed s trains with seed s + RESTART_STRIDE * r


def _train_restarts(
    cfg: TrainConfig,
    data: MoonsData,
    transfer_model: TransferModel | None,
    on_epoch: Callable[[int, float], None] | None,
) -> TrainResult:
    """`cfg.restarts` trainings; the one with the best validation score (`_Selector`, the
    same validation transfers for all) is returned, its config the given one."""
    results, scores = [], []
    tm = None
    if cfg.hardware_aware:
        tm = transfer_model if transfer_model is not None else TransferModel.from_preset(cfg.preset)
    judge = _Selector(cfg, data, tm)
    for r in range(cfg.restarts):
        sub = cfg.model_copy(update={"seed": cfg.seed + RESTART_STRIDE * r, "restarts": 1})

        def shifted(epoch: int, loss: float, r: int = r) -> None:
            if on_epoch is not None:
                on_epoch(r * cfg.epochs + epoch, loss)

        res = _train(sub, data, transfer_model, shifted)
        results.append(res)
        scores.append(judge.score(flatten_params(res.params)))
    best = max(range(cfg.restarts), key=lambda i: scores[i])
    chosen = results[best]
    return replace(
        chosen, config=cfg, seconds=sum(r.seconds for r in results),
        extra={**chosen.extra, "restart": best, "restart_scores": scores},
    )


def _train(
    cfg: TrainConfig,
    data: MoonsData,
    transfer_model: TransferModel | None,
    on_epoch: Callable[[int, float], None] | None,
) -> TrainResult:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = MLP(cfg.sizes, cfg.init)
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != cfg.sizes[0]:
        raise ValueError(
            f"data have shape {tuple(x.shape)}, the network takes {cfg.sizes[0]} inputs"
        )
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    sampler = None
    tm = None
    if cfg.hardware_aware:
        tm = transfer_model if transfer_model is not None else TransferModel.from_preset(cfg.preset)
        tm_train = scaled_stuck(tm, cfg.stuck_scale) if cfg.stuck_scale != 1.0 else tm
        layout = layout_network(cfg.sizes, cfg.array_shape, cfg.order)
        sampler = _HardwareSampler(tm_train, layout, cfg.draw_block, cfg.seed + 7919, cfg.mapping,
                                   cfg.single_column)
    selector = _Selector(cfg, data, tm) if cfg.select_every else None
    n = x.shape[0]
    theta = net.theta
    epoch_loss: list[float] = []
    substituted, steps = 0, 0
    p2 = cfg.kl_prior_std**2
    for epoch in range(cfg.epochs):
        if cfg.lr_schedule == "cosine":
            frac = epoch / max(cfg.epochs - 1, 1)
            lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + np.cos(np.pi * frac))
            for group in opt.param_groups:
                group["lr"] = lr
        perm = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            keep = None
            if sampler is None or epoch < cfg.regular_epochs:
                loss = loss_fn(net(xb), yb)
            else:
                nominal = theta.detach().numpy().astype(np.float64)
                new, mask, std = sampler.next(nominal, cfg.samples, cfg.kl_weight > 0)
                # straight-through: the value of the transfer, the gradient of the nominal
                shift = torch.from_numpy((new - nominal).astype(np.float32))
                if cfg.scale_gradient:
                    shift = _scale_aware(shift, theta, nominal, sampler.fmap)
                loss = transfer_loss(net, xb, yb, theta + shift, cfg.drop_worst,
                                     cfg.transfer_loss)
                if std is not None:
                    s2 = torch.from_numpy(np.maximum(std, 1e-12).astype(np.float32) ** 2)
                    kl = (0.5 * torch.log(p2 / s2) + (s2 + theta**2) / (2 * p2) - 0.5).sum()
                    loss = loss + cfg.kl_weight * kl / n
                if cfg.stuck_substitution and mask.any():
                    keep = torch.from_numpy(mask)
                    saved = theta.detach()[keep].clone()
                    substituted += int(mask.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if keep is not None:
                with torch.no_grad():
                    theta[keep] = saved
            total += loss.detach() * len(idx)
            steps += 1
        epoch_loss.append(float(total) / n)
        if selector is not None and (
            (epoch + 1) % cfg.select_every == 0 or epoch + 1 == cfg.epochs
        ):
            selector(epoch + 1, net.theta_numpy())
        if on_epoch is not None:
            on_epoch(epoch + 1, epoch_loss[-1])
    extra: dict[str, Any] = {}
    if selector is not None and selector.best_theta is not None:
        with torch.no_grad():
            theta.copy_(torch.from_numpy(selector.best_theta.astype(np.float32)))
        extra = {"selected_epoch": selector.best_epoch, "selection_score": selector.best}
    with torch.no_grad():
        acc = float(((net(x) > 0).float() == y).float().mean())
    return TrainResult(
        cfg, net.numpy_params(), epoch_loss, time.perf_counter() - t0, acc,
        substituted / max(steps * theta.numel(), 1), extra,
    )
