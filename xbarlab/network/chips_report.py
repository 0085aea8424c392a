"""Figures of a many-chip study (`xbarlab.network.chips_study`): per network and variant
(programmed as is, or with chip-in-the-loop compensation) the share of test points correct on
>= 95 % of the chips with a percentile bootstrap interval over the chips, the mean chip
accuracy with a t-interval over the chips, the nominal accuracy, and the compensation's cost;
a table, a results tree (HDF5 via `xbarlab.log.results`) and a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.bench.config import OperationTiming
from xbarlab.network.chips_study import ChipRecord
from xbarlab.nn.intervals import Interval, bootstrap_share_interval, t_interval

THRESHOLD = 0.95
VARIANTS = ("programmed", "compensated")


@dataclass
class NetworkChips:
    """One trained network and its chips."""

    name: str  # "regular", "hardware-aware"
    seed: int
    nominal: float  # software test accuracy
    chips: list[ChipRecord]

    def correct(self, variant: str) -> np.ndarray:
        """(chips, points) correctness of the variant."""
        after = variant == VARIANTS[1]
        return np.array([c.after if after else c.before for c in self.chips], dtype=bool)


@dataclass
class VariantFigures:
    name: str
    variant: str
    share_95: Interval  # points correct on >= 95 % of the chips, bootstrap over chips
    chip_accuracy: Interval  # mean test accuracy of a chip, t over chips
    nominal: float
    chips: int

    @property
    def label(self) -> str:
        return f"{self.name}, {self.variant}"


@dataclass
class Cost:
    """Mean per chip: pulses, devices written and bench time of programming and compensation."""

    pulses_program: float
    pulses_compensation: float
    devices: float
    rewritten: float  # devices written by compensation and restore jobs, per chip
    rounds: float
    restored_chips: int  # chips returned to an earlier round's state
    bench_program: float  # s
    bench_compensation: float  # s
    cpu: float  # s of simulator CPU per chip


def figures(net: NetworkChips) -> list[VariantFigures]:
    out = []
    for v in VARIANTS:
        c = net.correct(v)
        out.append(VariantFigures(net.name, v, bootstrap_share_interval(c, THRESHOLD),
                                  t_interval(c.mean(axis=1)), net.nominal, len(c)))
    return out


def cost(net: NetworkChips, timing: OperationTiming | None = None) -> Cost:
    t = timing or OperationTiming()
    cs = net.chips
    return Cost(
        float(np.mean([c.program.pulses for c in cs])),
        float(np.mean([c.compensation.pulses for c in cs])),
        float(np.mean([c.devices for c in cs])),
        float(np.mean([c.rewritten for c in cs])),
        float(np.mean([c.rounds for c in cs])),
        sum(1 for c in cs if c.restored),
        float(np.mean([c.program.bench_seconds(t) for c in cs])),
        float(np.mean([c.compensation.bench_seconds(t) for c in cs])),
        float(np.mean([c.cpu_seconds for c in cs])))


def table_rows(nets: list[NetworkChips]) -> list[list[str]]:
    """Rows: network, variant, share >= 95 % [CI], chip accuracy [CI], nominal, chips, cost."""
    rows = []
    for net in nets:
        k = cost(net)
        for f in figures(net):
            if f.variant == VARIANTS[0]:
                extra = (f"{k.pulses_program:.0f} pulses, {_span(k.bench_program)} on a bench")
            else:
                extra = (f"+{k.pulses_compensation:.0f} pulses "
                         f"(+{100 * k.pulses_compensation / max(k.pulses_program, 1):.0f} %), "
                         f"{k.rewritten:.0f} devices rewritten, {k.rounds:.1f} rounds, "
                         f"+{_span(k.bench_compensation)}; {k.restored_chips} chips restored")
            rows.append([f"{net.name} (seed {net.seed})", f.variant, f.share_95.pct(),
                         f.chip_accuracy.pct(), f"{100 * f.nominal:.1f} %", str(f.chips), extra])
    return rows


def _span(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def results_tree(nets: list[NetworkChips], config: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {"config": config}
    for net in nets:
        k = cost(net)
        node: dict[str, Any] = {"nominal": net.nominal, "seed": net.seed,
                                "chip_index": np.array([c.index for c in net.chips]),
                                "cost": dict(vars(k))}
        for f in figures(net):
            key = "compensated" if f.variant == VARIANTS[1] else "programmed"
            node[key] = {"correct": net.correct(f.variant).astype(np.int8),
                         "share_95": np.array([f.share_95.mean, f.share_95.low,
                                               f.share_95.high]),
                         "chip_accuracy": np.array([f.chip_accuracy.mean, f.chip_accuracy.low,
                                                    f.chip_accuracy.high])}
        node["cal_accuracy"] = {"programmed": np.array([c.cal_before for c in net.chips]),
                                "compensated": np.array([c.cal_after for c in net.chips])}
        node["stuck"] = np.array([c.stuck for c in net.chips])
        node["pulses"] = {"program": np.array([c.program.pulses for c in net.chips]),
                          "compensation": np.array([c.compensation.pulses for c in net.chips])}
        tree[net.name.replace("-", "_")] = node
    return tree


def plot(nets: list[NetworkChips], path: Path, title: str) -> Path:
    """Three panels: share of test points correct on >= t of the chips against t (the 95 %
    line marked), the distribution of chip accuracy, and the cost per chip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.6))
    colours = {"regular": "tab:red", "hardware-aware": "tab:blue"}
    t = np.linspace(0.8, 1.0, 201)
    bins = np.linspace(0.80, 1.0, 41)
    for net in nets:
        col = colours.get(net.name, "tab:gray")
        for f in figures(net):
            style = "--" if f.variant == VARIANTS[0] else "-"
            frac = net.correct(f.variant).mean(axis=0)
            a.plot(100 * t, [100 * np.mean(frac >= x) for x in t], style, color=col,
                   label=f"{f.label}: {100 * f.share_95.mean:.1f} %")
            acc = net.correct(f.variant).mean(axis=1)
            b.hist(100 * np.clip(acc, bins[0], bins[-1]), bins=100 * bins, histtype="step",
                   ls=style, color=col, label=f"{f.label}: mean {100 * acc.mean():.1f} %")
        b.axvline(100 * net.nominal, color=col, lw=0.8, alpha=0.6)
    a.axvline(95, color="k", lw=0.8)
    a.axhline(85, color="k", lw=0.8, ls=":")
    a.set(xlabel="chips classifying the point correctly (%)",
          ylabel="test points correct on at least that share (%)",
          title="robustness over chips", ylim=(0, 101))
    a.legend(fontsize=7, loc="lower left")
    b.set(xlabel="test accuracy of a chip (%; first bin: 80 % or less; thin lines: nominal)",
          ylabel="chips",
          title="chip accuracy")
    b.legend(fontsize=7, loc="upper left")
    names = [n.name for n in nets]
    ks = [cost(n) for n in nets]
    x = np.arange(len(nets))
    c.bar(x - 0.2, [k.pulses_program for k in ks], 0.4, label="programming", color="0.6")
    c.bar(x + 0.2, [k.pulses_compensation for k in ks], 0.4, label="compensation",
          color="tab:green")
    c.set_xticks(x, names)
    c.set(ylabel="pulses per chip (mean)", title="cost")
    c.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
