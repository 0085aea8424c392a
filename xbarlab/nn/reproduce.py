"""``reproduce drolet2023``: the seed paper's headline result, over several training seeds.

Drolet et al. 2023 (arXiv 2305.18495): a 2-8-1 MLP on half moons, transferred ex situ onto
passive TiO2 arrays; 79.5 % of the test points are classified correctly in >= 95 % of the
simulated transfers for the hardware-aware network, 18.5 % for the regular one.

Both networks are trained for every seed (the seed sets the initialisation, the batch order
and the training transfers; the evaluation draws use [eval_seed, seed], identical for both
networks of a seed) and evaluated over N statistical transfers (preset tio2-sherbrooke-2023,
always with the preset's true rates). Two mapping modes (`ReproduceConfig.mapping`) and two
recipes (`ReproduceConfig.recipe`, `RECIPES`); `xbarlab reproduce drolet2023` runs the paper
recipe on the authors' mapping, then xbarlab's recipe on the physical mapping:

- mapping "authors": as the authors' code: +-400 uS pairs, per-tensor disturb index, 60 uS
  disturb outliers, ideal output bias (`xbarlab.nn.authors`), and (``single_column``, default
  on) their single-column scheme for single-sign tensors (`xbarlab.nn.single_column`); the
  same networks and transfers are also scored with the other scheme. Departure: the outlier
  threshold uses the preset's per-k std of the clipped data. Mapping "physical": 100-500 uS
  pairs tiled onto 8 x 8 arrays, disturb index by placement and column-major programming order.

Every figure is reported as the mean over seeds with its 95 % Student t confidence interval
(`xbarlab.nn.intervals`), the nominal accuracy next to it, and the threshold-free mean
per-point correctness (= mean transfer accuracy = area under the CDF), the share of points in
the 93-97 % band (those a new draw of transfers can move across the threshold), the share of
near-linear networks (`xbarlab.nn.near_linear`) and a fine histogram of the per-point
correctness (`plot_point_histogram`). ``--full``: 10 seeds x 10 000 transfers. Options:
``ablations`` (each transfer effect alone and each removed, `xbarlab.nn.ablations`) and
``dedup`` (the de-duplicated split with a clean test set, `xbarlab.nn.dedup`). The
measurements below predate the single-column scheme and the intervals (see the README for
the current figures).
- recipe "paper": Xavier init with biases 0.01, Adam lr 0.1 constant, batch 256, BCE with
  logits, 10 000 epochs; the hardware-aware net adds weight decay 1e-4 and stuck-device
  substitution with undone updates, one sampled transfer per step.
- recipe "xbarlab" (hardware-aware net only; the regular net is the paper's on the authors'
  mapping, 2000 epochs with torch's init on the physical one): weight decay 0, 8 transfers
  per step in one batched pass (loss averaged), cosine lr 0.1 -> 1e-3; on the authors'
  mapping also stuck rates x1.5 in training and 6000 epochs, on the physical 2000 epochs.
  Why: with the paper's weight decay (Adam L2 1e-4) every hardware-aware run we made ended on
  a near-linear boundary (87-88.5 % nominal test accuracy, the best a straight line does on
  this split); without it, 8 transfers per step keep the network non-linear (97-98 %) and
  robust. Nothing here looks at the test split. No selection is used: restarts and
  checkpoint selection on `MoonsData.selection_points` are implemented and measured (4
  restarts: 68.2 +- 1.2 % vs 69.2 +- 1.3 % without, 2000 epochs; checkpoints every 250 of
  6000 epochs: 74.0 +- 3.5 % (71.5, 79.0, 71.5) vs 73.3 +- 1.3 %), no significant gain.

Measured (3 seeds, 2000 transfers, paper split; share of test points >= 95 % correct: mean
+- std (per seed) [nominal test accuracy per seed]):

  mapping   recipe   regular                                 hardware-aware
  authors   paper    18.8 +- 5.9 (16.5, 13.0, 27.0) [97.5,   71.7 +- 7.3 (75.0, 78.5, 61.5)
                     97.0, 97.5]                              [86.5, 87.5, 94.5]
  authors   xbarlab  the paper recipe's                      73.3 +- 1.3 (74.0, 74.5, 71.5)
                                                              [97.5, 97.5, 98.0]
  physical  xbarlab  13.5 +- 6.1 (8.0, 10.5, 22.0) [98.0,    64.5 +- 0.4 (64.5, 65.0, 64.0)
                     97.5, 97.0]                              [98.0, 97.5, 98.0]
  physical  paper    10.3 +- 5.1 (4.5, 9.5, 17.0) [97.5,     64.0 +- 3.1 (60.5, 63.5, 68.0)
                     97.0, 97.5]                              [96.5, 95.5, 94.5]

The default run (authors/paper, then physical/xbarlab) takes 2 min 52 s on 2 cores.

With ``--compensate`` (``ReproduceConfig.compensate``; xbarlab extension, not the paper's
method: read back, re-tune the healthy devices' targets with the stuck ones fixed, reprogram
the moved devices, `xbarlab.nn.compensation`), same networks and transfers (per seed):

  mapping   recipe   regular + compensation           hardware-aware + compensation
  authors   paper    59.2 +- 17.4 (78.0, 63.5, 36.0)  85.5 +- 2.3 (82.5, 86.0, 88.0)
  physical  xbarlab  49.3 +- 5.5 (53.0, 53.5, 41.5)   78.2 +- 1.7 (77.5, 76.5, 80.5)

(mean transfer accuracy after: 90.0 / 91.5 % authors, 89.2 / 93.8 % physical; about 22
devices reprogrammed per transfer; 115 s of compensation in all, the run takes 4 min 41 s).

Findings. (1) The metric is bounded by the nominal accuracy, and a near-linear boundary is
the most robust one: the paper recipe's hardware-aware nets land there on 2 of 3 seeds, and a
bounded loss (``transfer_loss="sigmoid"``, 8 transfers, no weight decay, cosine, 2000
epochs) gives 85.5 % on every seed at 87-87.5 % nominal accuracy. The paper's 79.5 % is one
saved network per kind (their main_CDF.py); neither it nor its nominal accuracy is in the
reference material.
(2) Non-degenerate networks (nominal >= 95 %) reach 72-74 % on the authors' mapping with every
variant tried (longer training, 16 transfers, trimmed loss, warm start, restarts with
selection, stuck x1.5-2, a max|w|-aware gradient), about 64 % on the physical mapping: the
79.5 % target is not met on average by a network that actually fits the moons (best single
seed 79.0 %, with checkpoint selection). Stuck devices dominate (for a 97 % net: 68 % with
only stuck devices, 91 % with everything but them). (3) The paper's split repeats every test
point in the training (172 of 200) or validation (28) split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from xbarlab.config import validate_config
from xbarlab.crossbar import FloatArray
from xbarlab.nn.ablations import EFFECTS, ablate, variant_title
from xbarlab.nn.compensation import CompensationConfig, evaluate_compensated
from xbarlab.nn.data import MoonsData, load_moons
from xbarlab.nn.dedup import dedup_split
from xbarlab.nn.intervals import Interval, t_interval
from xbarlab.nn.mapping import layout_network
from xbarlab.nn.metrics import (
    NEAR_THRESHOLD,
    PAPER_BINS,
    PAPER_SHARE_95,
    THRESHOLD,
    TransferMetrics,
    cdf_curve,
    evaluate_transfers,
)
from xbarlab.nn.near_linear import AGREEMENT_THRESHOLD, R2_THRESHOLD, Linearity, linearity
from xbarlab.nn.training import TrainConfig, paper_config, train
from xbarlab.nn.transfer import DEFAULT_PRESET, TransferModel

KINDS = ("regular", "hardware-aware")
MAPPING_MODES = ("authors", "physical")
RECIPE_NAMES = ("paper", "xbarlab")
DEFAULT_RECIPE = {"authors": "paper", "physical": "xbarlab"}
# the paper's settings (Adam lr 0.1 constant, batch 256, BCE, 10 000 epochs, Xavier init with
# biases 0.01, weight decay 1e-4 and stuck substitution on the HA net: `paper_config`)
_PAPER = {"epochs": 10_000, "init": "authors"}
# xbarlab's hardware-aware recipe (both mappings): no weight decay, 8 transfers per step in
# one batched pass, cosine lr decay 0.1 -> 1e-3 (what changed and why: module docstring)
_XBARLAB_HA = {"weight_decay": 0.0, "samples": 8, "lr_schedule": "cosine"}
RECIPES: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "authors": {
        "paper": {"regular": _PAPER, "hardware-aware": _PAPER},
        "xbarlab": {"regular": _PAPER, "hardware-aware": {**_XBARLAB_HA, "epochs": 6000,
                                                           "stuck_scale": 1.5,
                                                           "init": "authors"}},
    },
    "physical": {
        "paper": {"regular": _PAPER, "hardware-aware": _PAPER},
        "xbarlab": {"regular": {"epochs": 2000}, "hardware-aware": {**_XBARLAB_HA,
                                                                    "epochs": 2000}},
    },
}
MAPPING_TITLES = {"authors": "authors' mapping (+-400 uS, as their code)",
                  "physical": "xbarlab physical mapping (100-500 uS pairs on 8 x 8 arrays)"}
RECIPE_TITLES = {"paper": "paper recipe",
                 "xbarlab": "xbarlab recipe (HA: no weight decay, 8 transfers/step, cosine lr)"}
HARDWARE_AWARE_RECIPE: dict[str, Any] = {
    k: v for k, v in RECIPES["physical"]["xbarlab"]["hardware-aware"].items() if k != "epochs"}
TARGETS = {"hardware-aware": (">=", 0.795), "regular": ("<=", 0.25)}


class ReproduceConfig(BaseModel):
    """Settings of the reproduction."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seeds: int = Field(3, ge=1, le=100, description="training seeds per network")
    transfers: int = Field(2000, ge=1, le=1_000_000, description="simulated transfers")
    mapping: Literal["authors", "physical"] = Field(
        "authors", description="authors: their code's mapping; physical: xbarlab's")
    recipe: Literal["default", "paper", "xbarlab"] = Field(
        "default", description="training recipe; default: paper (authors), xbarlab (physical)")
    epochs: int | None = Field(None, ge=1, le=1_000_000, description="None: the recipe's")
    data: str = Field("auto", pattern="^(auto|paper|sklearn)$")
    preset: str = DEFAULT_PRESET
    eval_seed: int = Field(2023, ge=0)
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads while training")
    hardware_aware: dict[str, Any] | None = Field(None, description="None: the mode's recipe")
    regular: dict[str, Any] | None = Field(None, description="None: the mode's recipe")
    compensate: bool = Field(False, description="also evaluate read-back compensation "
                             "(xbarlab extension, `xbarlab.nn.compensation`)")
    compensation: CompensationConfig = Field(default_factory=CompensationConfig)
    ablations: bool = Field(False, description="also score every network with each effect "
                            "alone and each removed (`xbarlab.nn.ablations`)")
    jobs: int = Field(1, ge=1, le=64, description="worker processes over the (seed, network) "
                      "pairs; the results do not depend on it")
    dedup: bool = Field(False, description="train and test on the de-duplicated split "
                        "(`xbarlab.nn.dedup`): no test point repeated in training/validation")
    single_column: bool | None = Field(
        None, description="authors' single-column scheme for single-sign tensors "
        "(`xbarlab.nn.single_column`); None: on in the authors' mapping. Authors' mapping only")

    @model_validator(mode="after")
    def _single_column_mode(self) -> ReproduceConfig:
        if self.single_column and self.mapping != "authors":
            raise ValueError("single_column is the authors' scheme: use it with mapping "
                             "'authors' only")
        return self

    @property
    def uses_single_column(self) -> bool:
        """Whether the networks are trained and scored with the single-column scheme."""
        return self.mapping == "authors" if self.single_column is None else self.single_column

    @property
    def recipe_name(self) -> str:
        return DEFAULT_RECIPE[self.mapping] if self.recipe == "default" else self.recipe

    @property
    def title(self) -> str:
        return f"{RECIPE_TITLES[self.recipe_name]}, {MAPPING_TITLES[self.mapping]}"

    def train_epochs(self, kind: str) -> int:
        return self.train_config(kind, 0).epochs

    def train_config(self, kind: str, seed: int) -> TrainConfig:
        given = self.hardware_aware if kind == "hardware-aware" else self.regular
        over = dict(RECIPES[self.mapping][self.recipe_name][kind] if given is None else given)
        if self.epochs is not None:
            over["epochs"] = self.epochs
        return paper_config(
            kind,  # type: ignore[arg-type]
            **{"preset": self.preset, "seed": seed, "threads": self.threads,
               "mapping": self.mapping, "single_column": self.uses_single_column, **over},
        )


def make_reproduce_config(data: dict[str, Any] | None = None) -> ReproduceConfig:
    return validate_config(data or {}, ReproduceConfig, "<reproduce config>")


@dataclass
class NetResult:
    kind: str
    seed: int
    metrics: TransferMetrics
    train_seconds: float
    eval_seconds: float
    params: list[tuple[np.ndarray, np.ndarray]]
    config: dict[str, Any]
    compensated: TransferMetrics | None = None  # same transfers + read-back compensation
    compensate_seconds: float = 0.0
    reprogrammed: float = float("nan")  # devices reprogrammed per transfer (mean)
    # authors' mapping: the same network and transfers scored with the other scheme for
    # single-sign tensors (pairs if trained with the single-column scheme, and vice versa)
    other_scheme: TransferMetrics | None = None
    linearity: Linearity | None = None  # on every data point (`xbarlab.nn.near_linear`)
    ablations: dict[str, TransferMetrics] = field(default_factory=dict)


@dataclass
class Reproduction:
    config: ReproduceConfig
    data_source: str
    results: list[NetResult] = field(default_factory=list)
    seconds: float = 0.0

    def of(self, kind: str) -> list[NetResult]:
        return [r for r in self.results if r.kind == kind]

    @property
    def compensated(self) -> bool:
        return any(r.compensated is not None for r in self.results)

    def share_95(self, kind: str, compensated: bool = False) -> tuple[float, float, list[float]]:
        """(mean, std over seeds, per seed) of the share of points >= 95 % correct (after
        read-back compensation with `compensated`)."""
        v = [(r.compensated if compensated and r.compensated else r.metrics).share_95
             for r in self.of(kind)]
        return float(np.mean(v)), float(np.std(v)), v

    def interval(self, kind: str, attr: str = "share_95", source: str = "metrics") -> Interval:
        """Mean and 95 % t-interval over seeds of a `TransferMetrics` attribute; `source`:
        "metrics", "other_scheme" or "compensated"."""
        v = [getattr(getattr(r, source), attr) for r in self.of(kind)
             if getattr(r, source) is not None]
        return t_interval(v)

    @property
    def has_other_scheme(self) -> bool:
        return any(r.other_scheme is not None for r in self.results)

    def meets_targets(self) -> dict[str, bool]:
        out = {}
        for kind, (op, value) in TARGETS.items():
            mean = self.share_95(kind)[0]
            out[kind] = mean >= value if op == ">=" else mean <= value
        return out


Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stage names the network being trained."""


def _net_result(cfg: ReproduceConfig, data: MoonsData, seed: int, kind: str,
                progress: Progress | None = None) -> NetResult:
    """Train and evaluate one network (module level: a worker process can run it)."""
    tm = TransferModel.from_preset(cfg.preset)
    every_point = np.concatenate([data.x_train, data.x_val, data.x_test])
    tcfg = cfg.train_config(kind, seed)
    stage = f"{kind} seed {seed}"

    def on_epoch(epoch: int, loss: float, total: int = tcfg.epochs * tcfg.restarts) -> None:
        if progress is not None and (epoch % 50 == 0 or epoch == total):
            progress(stage, epoch, total)

    tr = train(tcfg, data, tm, on_epoch)
    t1 = time.perf_counter()
    layout = layout_network(tcfg.sizes, tcfg.array_shape, tcfg.order)
    rng = np.random.default_rng([cfg.eval_seed, seed])  # same transfers for both nets
    m = evaluate_transfers(tr.params, layout, tm, data.x_test, data.y_test,
                           cfg.transfers, rng, tcfg.mapping, tcfg.single_column)
    res = NetResult(kind, seed, m, tr.seconds, time.perf_counter() - t1, tr.params,
                    tcfg.model_dump(), linearity=linearity(tr.params, every_point))
    if cfg.ablations:
        if progress is not None:
            progress(f"{stage} ablations", 0, 1)
        res.ablations = ablate(tr.params, layout, tm, data.x_test, data.y_test,
                               cfg.transfers, [cfg.eval_seed, seed], tcfg.mapping,
                               tcfg.single_column)
    if tcfg.mapping == "authors":
        res.other_scheme = evaluate_transfers(
            tr.params, layout, tm, data.x_test, data.y_test, cfg.transfers,
            np.random.default_rng([cfg.eval_seed, seed]), tcfg.mapping,
            not tcfg.single_column)
    if cfg.compensate:
        if progress is not None:
            progress(f"{stage} compensation", 0, 1)
        t2 = time.perf_counter()
        _, after, comp = evaluate_compensated(
            tr.params, layout, tm, data.selection_points(), data.x_test, data.y_test,
            cfg.transfers, np.random.default_rng([cfg.eval_seed, seed]), tcfg.mapping,
            cfg.compensation)
        res.compensated = after
        res.compensate_seconds = time.perf_counter() - t2
        res.reprogrammed = comp.reprogrammed_per_transfer
    return res


def _net_job(args: tuple[ReproduceConfig, MoonsData, int, str]) -> NetResult:
    return _net_result(*args)


def reproduce_drolet2023(
    cfg: ReproduceConfig | None = None,
    progress: Progress | None = None,
    data: MoonsData | None = None,
    on_result: Callable[[Reproduction], None] | None = None,
) -> Reproduction:
    """Train both networks for every seed and evaluate them over `cfg.transfers` transfers;
    `on_result(rep)` after each network (e.g. to save partial results of a long run).

    With ``cfg.jobs > 1`` the (seed, network) pairs run in that many worker processes (spawned:
    torch is not forked); every network is seeded on its own, so the results are the same as
    in one process, and `progress` hears of each network when it is done."""
    cfg = cfg or ReproduceConfig()
    t0 = time.perf_counter()
    data = data or load_moons(cfg.data)
    if cfg.dedup:
        data = dedup_split(data)
    rep = Reproduction(cfg, data.source)
    tasks = [(seed, kind) for seed in range(cfg.seeds) for kind in KINDS]
    if cfg.jobs > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(tasks)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for res in pool.map(_net_job, [(cfg, data, s, k) for s, k in tasks]):
                if progress is not None:
                    total = cfg.train_config(res.kind, res.seed)
                    n = total.epochs * total.restarts
                    progress(f"{res.kind} seed {res.seed}", n, n)
                rep.results.append(res)
                if on_result is not None:
                    on_result(rep)
    else:
        for s, k in tasks:
            rep.results.append(_net_result(cfg, data, s, k, progress))
            if on_result is not None:
                on_result(rep)
    rep.seconds = time.perf_counter() - t0
    return rep


SCHEME_NAMES = {True: "single-column for single-sign tensors", False: "pairs only"}
ROW_METRICS = (("points >= 95 % correct", "share_95"),
               ("mean per-point correctness = area under the CDF (threshold-free)", "acc_mean"),
               ("nominal accuracy", "acc_nominal"),
               ("min transfer accuracy", "acc_min"),
               (f"points {100 * (THRESHOLD - NEAR_THRESHOLD):.0f}-"
                f"{100 * (THRESHOLD + NEAR_THRESHOLD):.0f} % correct (threshold-sensitive)",
                "near_threshold"))


def _cell(rep: Reproduction, kind: str, attr: str, source: str = "metrics") -> str:
    v = [getattr(getattr(r, source), attr) for r in rep.of(kind)
         if getattr(r, source) is not None]
    per = ", ".join(f"{100 * x:.1f}" for x in v)
    return f"{t_interval(v).pct()} ({per})"


def table_rows(rep: Reproduction) -> list[tuple[str, str, str, str]]:
    """(row label, regular, hardware-aware, paper regular / hardware-aware) for printing.

    Every figure: mean over seeds [95 % Student t confidence interval] (per seed). The mean
    per-point correctness (mean over test points of the share of transfers that classify the
    point correctly) equals the mean transfer accuracy and the area under the CDF curve."""
    def pct(v: float) -> str:
        return f"{100 * v:.1f} %"

    rows = []
    for label, attr in ROW_METRICS:
        paper = (f"{pct(PAPER_SHARE_95['regular'])} / {pct(PAPER_SHARE_95['hardware-aware'])}"
                 if attr == "share_95" else "")
        rows.append((label, _cell(rep, KINDS[0], attr), _cell(rep, KINDS[1], attr), paper))
    if rep.has_other_scheme:
        other = SCHEME_NAMES[not rep.config.uses_single_column]
        for label, attr in ROW_METRICS[:2]:
            rows.append((f"same nets, {other}: {label}", _cell(rep, KINDS[0], attr, "other_scheme"),
                         _cell(rep, KINDS[1], attr, "other_scheme"), ""))
    cells = []
    for k in KINDS:
        lin = [r.linearity for r in rep.of(k) if r.linearity is not None]
        n_lin = sum(x.near_linear for x in lin)
        cells.append(f"{n_lin} of {len(lin)} seeds ({100 * n_lin / max(len(lin), 1):.0f} %)")
    rows.append((f"near-linear nets (logit R^2 >= {R2_THRESHOLD:g}, decisions = affine fit's "
                 f"on >= {100 * AGREEMENT_THRESHOLD:.0f} %)", cells[0], cells[1], ""))
    if rep.compensated:
        rows += _compensation_rows(rep)
    for i, (lo, hi) in enumerate(PAPER_BINS):
        name = f"{100 * lo:.0f} <= x < {min(100 * hi, 100):.0f} %" if hi <= 1 else (
            f"x >= {100 * lo:.0f} %")
        cells = [pct(float(np.mean([r.metrics.bins[i] for r in rep.of(k)]))) for k in KINDS]
        rows.append((f"  points {name}", cells[0], cells[1], ""))
    return rows


def ablation_rows(rep: Reproduction) -> list[tuple[str, str, str, str, str]]:
    """(variant, regular share >= 95 %, regular mean correctness, HA share, HA mean) per
    ablation variant: mean over seeds [95 % t-interval]; empty without ablations."""
    names = list(dict.fromkeys(n for r in rep.results for n in r.ablations))
    rows = []
    for name in names:
        cells = []
        for kind in KINDS:
            for attr in ("share_95", "acc_mean"):
                v = [getattr(r.ablations[name], attr) for r in rep.of(kind) if name in r.ablations]
                cells.append(t_interval(v).pct())
        rows.append((variant_title(name), cells[0], cells[1], cells[2], cells[3]))
    return rows


def _compensation_rows(rep: Reproduction) -> list[tuple[str, str, str, str]]:
    """Rows of the same networks and transfers after read-back compensation (which maps every
    tensor on pairs: with the single-column scheme, compare with the pairs-only rows)."""
    rows = []
    for label, attr in (("+ read-back compensation: points >= 95 % correct", "share_95"),
                        ("+ read-back compensation: mean transfer accuracy", "acc_mean")):
        if rep.config.uses_single_column:  # compensation maps every tensor on pairs
            label += f" ({SCHEME_NAMES[False]})"
        rows.append((label, _cell(rep, KINDS[0], attr, "compensated"),
                     _cell(rep, KINDS[1], attr, "compensated"), "(xbarlab extension)"))
    cells = [f"{np.mean([r.reprogrammed for r in rep.of(k)]):.1f} devices, "
             f"{sum(r.compensate_seconds for r in rep.of(k)):.1f} s" for k in KINDS]
    rows.append(("  reprogrammed per transfer, compensation time", cells[0], cells[1], ""))
    return rows


def plot_cdf(rep: Reproduction, path: str | Path) -> Path:
    """PNG: share of test points correct in at least a fraction t of the transfers, vs t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    colors = {"regular": "tab:red", "hardware-aware": "tab:blue"}
    for kind in KINDS:
        for j, r in enumerate(rep.of(kind)):
            t, share = cdf_curve(r.metrics.point_fraction)
            ax.plot(100 * t, 100 * share, color=colors[kind], alpha=0.8,
                    label=f"{kind} ({len(rep.of(kind))} seeds)" if j == 0 else None)
            if r.compensated is not None:
                t, share = cdf_curve(r.compensated.point_fraction)
                ax.plot(100 * t, 100 * share, color=colors[kind], alpha=0.8, ls="--",
                        label=f"{kind} + read-back compensation" if j == 0 else None)
        ax.plot([95], [100 * PAPER_SHARE_95[kind]], marker="*", ms=12, ls="",
                color=colors[kind], label=f"paper, {kind}")
    ax.axvline(95, color="grey", ls=":", lw=1)
    ax.set_xlabel("correct in at least this share of transfers (%)")
    ax.set_ylabel("test points (%)")
    ax.set_title(f"Drolet et al. 2023, {rep.config.mapping} mapping, "
                 f"{rep.config.recipe_name} recipe: {rep.config.transfers} transfers", fontsize=10)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p


HIST_EDGES = np.round(np.arange(0.80, 1.0001, 0.005), 6)  # fine bins around the threshold


def _pooled_fractions(rep: Reproduction, kind: str) -> FloatArray:
    return np.concatenate([np.asarray(r.metrics.point_fraction) for r in rep.of(kind)])


def point_histogram(rep: Reproduction, kind: str) -> tuple[FloatArray, FloatArray]:
    """(bin edges from 80 % to 100 % in 0.5 % steps, share of test points per bin) of the
    per-point correctness, pooled over the seeds. The points right in every transfer (100 %)
    and those below 80 % are in no bin (`edge_shares` gives both)."""
    frac = _pooled_fractions(rep, kind)
    inside = frac[frac < 1.0]
    counts, edges = np.histogram(inside, bins=HIST_EDGES)
    return edges, counts / max(len(frac), 1)


def edge_shares(rep: Reproduction, kind: str) -> tuple[float, float]:
    """(share of points below 80 %, share at 100 %), pooled over the seeds."""
    frac = _pooled_fractions(rep, kind)
    return float(np.mean(frac < HIST_EDGES[0])), float(np.mean(frac >= 1.0))


def plot_point_histogram(rep: Reproduction, path: str | Path) -> Path:
    """PNG: histogram of the per-point correctness near the 95 % threshold, per network kind
    (all seeds pooled), with the threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(6.4, 5.6), dpi=120, sharex=True)
    colors = {"regular": "tab:red", "hardware-aware": "tab:blue"}
    for ax, kind in zip(axes, KINDS, strict=True):
        edges, share = point_histogram(rep, kind)
        ax.bar(100 * edges[:-1], 100 * share, width=100 * np.diff(edges), align="edge",
               color=colors[kind], alpha=0.8, edgecolor="white", lw=0.3)
        below, full = edge_shares(rep, kind)
        ax.axvline(100 * THRESHOLD, color="black", ls=":", lw=1)
        ax.set_title(f"{kind}: {len(rep.of(kind))} seeds x {rep.config.transfers} transfers; "
                     f"not shown: {100 * full:.1f} % of points at 100 %, {100 * below:.1f} % "
                     "below 80 %", fontsize=8)
        ax.set_ylabel("test points (%)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("per-point correctness: share of transfers classifying it right "
                        "(%, 0.5 % bins)")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p


def results_tree(rep: Reproduction) -> dict[str, Any]:
    """Everything worth keeping, as a nested mapping for `xbarlab.log.results.write_results`."""
    tree: dict[str, Any] = {
        "paper": {"reference": "Drolet et al. 2023, arXiv 2305.18495",
                  "share_95_regular": PAPER_SHARE_95["regular"],
                  "share_95_hardware_aware": PAPER_SHARE_95["hardware-aware"]},
        "config": {"reproduce": rep.config.model_dump(), "data_source": rep.data_source,
                   "effects": list(EFFECTS),
                   "seconds": rep.seconds, "bins": [list(b) for b in PAPER_BINS]},
    }
    for kind in KINDS:
        mean, std, per = rep.share_95(kind)
        group: dict[str, Any] = {"share_95_mean": mean, "share_95_std": std,
                                 "share_95": np.asarray(per),
                                 "single_column": rep.config.uses_single_column}
        for _, attr in ROW_METRICS:
            ci = rep.interval(kind, attr)
            group[f"{attr}_ci95"] = np.array([ci.low, ci.high])
            if rep.has_other_scheme:
                group[f"other_scheme_{attr}"] = np.asarray(
                    [getattr(r.other_scheme, attr) for r in rep.of(kind) if r.other_scheme])
        for r in rep.of(kind):
            m = r.metrics
            group[f"seed{r.seed}"] = {
                "share_95": m.share_95, "acc_mean": m.acc_mean, "acc_std": m.acc_std,
                "acc_min": m.acc_min, "acc_nominal": m.acc_nominal, "bins": np.asarray(m.bins),
                "point_fraction": np.asarray(m.point_fraction),
                "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds,
                "near_threshold": m.near_threshold,
                **({"linearity": {"logit_r2": r.linearity.logit_r2,
                                  "agreement": r.linearity.agreement,
                                  "unit_linearity": r.linearity.unit_linearity,
                                  "near_linear": r.linearity.near_linear}}
                   if r.linearity is not None else {}),
                **({"ablations": {name.replace(" ", "_"): {
                    "share_95": a.share_95, "acc_mean": a.acc_mean, "acc_nominal": a.acc_nominal,
                    "point_fraction": np.asarray(a.point_fraction)}
                    for name, a in r.ablations.items()}} if r.ablations else {}),
                "train_config": r.config,
                **({"compensated": {
                    "share_95": r.compensated.share_95, "acc_mean": r.compensated.acc_mean,
                    "acc_std": r.compensated.acc_std, "acc_min": r.compensated.acc_min,
                    "bins": np.asarray(r.compensated.bins),
                    "point_fraction": np.asarray(r.compensated.point_fraction),
                    "seconds": r.compensate_seconds, "reprogrammed_per_transfer": r.reprogrammed,
                }} if r.compensated is not None else {}),
                **{f"layer{i + 1}": {"weight": w, "bias": b} for i, (w, b) in enumerate(r.params)},
            }
        edges, share = point_histogram(rep, kind)
        below, full = edge_shares(rep, kind)
        group["point_histogram"] = {"edges": edges, "share": share, "share_below": below,
                                    "share_at_100": full}
        group["near_linear_share"] = float(np.mean(
            [r.linearity.near_linear for r in rep.of(kind) if r.linearity is not None]))
        if rep.compensated:
            c_mean, c_std, c_per = rep.share_95(kind, compensated=True)
            group.update({"compensated_share_95_mean": c_mean, "compensated_share_95_std": c_std,
                          "compensated_share_95": np.asarray(c_per)})
        tree[kind.replace("-", "_")] = group
    return tree
