"""`xbarlab digits`: regular and hardware-aware digits MLPs, each programmed on simulated
64 x 64 wired chips (`xbarlab.nn.digits_study`), with a results table and a PNG.

Hardware-aware training (`hardware_noise`) injects the tuning error the chips leave, the
preset's stuck devices and, per layer, the effective-gain map of the wired MVM (cell voltage /
row voltage) computed on the circuit model at the regular network's targets with the training
images (layer 1) and its hidden activations (layer 2).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.nn.digits import (
    SIZES,
    DigitsData,
    HardwareNoise,
    accuracy,
    load_digits_split,
    logits_numpy,
    noisy_accuracy,
    save_npz,
    train_digits,
)
from xbarlab.nn.digits_chip import ChipConfig, chip_layout, gain_map, layer_targets, mvm_voltages
from xbarlab.nn.digits_study import ChipReport, Params, run_chip

BAR_TUNING = 0.04  # Kim et al. 2021, 64 x 64 passive metal-oxide array: < 4 % mean tuning error
BAR_IMPORT = 0.01  # same work: about 1 % mean error of imported ex-situ weights


@dataclass
class DigitsStudy:
    config: ChipConfig
    software: dict[str, float]  # test accuracy per network
    noisy: dict[str, float]  # mean test accuracy under the training noise model (no chip)
    chips: dict[str, list[ChipReport]]
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        cfg = {k: (v.value if hasattr(v, "value") else v) for k, v in vars(self.config).items()}
        return {"config": cfg, "software": self.software, "noisy": self.noisy,
                "chips": {k: [c.as_dict() for c in v] for k, v in self.chips.items()},
                "train_seconds": self.train_seconds, **self.extra}


def hardware_noise(params: Params, data: DigitsData, cfg: ChipConfig, tuning: float
                   ) -> HardwareNoise:
    """The training noise: `tuning`, the preset's stuck rates, and the wired MVM's per-cell
    gains at the targets of `params` (a regular network) on the training images."""
    gains = []
    h = data.x_train
    for placement, (w, b) in zip(chip_layout(SIZES, cfg), params, strict=True):
        t, sw, sb = layer_targets(placement, w, b, cfg)
        v, _ = mvm_voltages(h, cfg.size, sb / sw, cfg.v_read)
        rows, cols = placement.matrix_shape
        gains.append(gain_map(cfg, t, v)[:rows, :cols])
        h = 1.0 / (1.0 + np.exp(-(h @ w.T + b)))
    return HardwareNoise(tuning=tuning, gains=tuple(gains))


def run_study(cfg: ChipConfig, *, networks: tuple[str, ...] = ("regular", "hardware-aware"),
              chips: int = 1, epochs: int = 150, tuning: float = 0.10, seed: int = 0,
              progress: Callable[[str], None] | None = None, out: Path | None = None
              ) -> DigitsStudy:
    """Train the networks, program each on `chips` simulated chips, report."""
    say = progress or (lambda _m: None)
    data = load_digits_split()
    t0 = time.perf_counter()
    say("training the regular network")
    nets: dict[str, Params] = {"regular": train_digits(
        data.x_train, data.y_train, epochs=epochs, seed=seed).params}
    noise = hardware_noise(nets["regular"], data, cfg, tuning)
    if "hardware-aware" in networks:
        say("training the hardware-aware network (tuning noise, stuck devices, wire gains)")
        nets["hardware-aware"] = train_digits(
            data.x_train, data.y_train, epochs=epochs, seed=seed, hw=noise,
            init=nets["regular"]).params
    train_seconds = time.perf_counter() - t0
    software = {k: accuracy(logits_numpy(data.x_test, p), data.y_test) for k, p in nets.items()}
    noisy = {k: float(noisy_accuracy(data.x_test, data.y_test, p, noise, draws=20).mean())
             for k, p in nets.items()}
    if out is not None:
        for k, p in nets.items():
            save_npz(out / f"digits-{k}.npz", p)
    results: dict[str, list[ChipReport]] = {}
    for name in networks:
        results[name] = []
        for i in range(chips):
            chip_cfg = ChipConfig(**{**vars(cfg), "seed": cfg.seed + 1000 * i})
            say(f"{name} network, chip {i + 1}/{chips}")

            def tell(msg: str, name: str = name) -> None:
                say(f"  {name}: {msg}")

            results[name].append(run_chip(nets[name], data, chip_cfg, progress=tell))
    return DigitsStudy(cfg, software, noisy, results, train_seconds)


def _mean(reps: list[ChipReport], key: str, index: int | None = None) -> float:
    vals = [getattr(r, key) if index is None else getattr(r, key)[index] for r in reps]
    return float(np.mean(vals))


def table_rows(study: DigitsStudy) -> list[list[str]]:
    """Rows of the results table (one per network; chips averaged)."""
    rows = []
    for name, reps in study.chips.items():
        rows.append([
            name, f"{study.software[name]:.1%}", f"{study.noisy[name]:.1%}",
            f"{_mean(reps, 'before'):.1%}", f"{_mean(reps, 'after'):.1%}",
            " / ".join(f"{_mean(reps, 'tuning_error', i):.1%}" for i in range(2)),
            " / ".join(f"{_mean(reps, 'import_error', i):.2%}" for i in range(2)),
            f"{_mean(reps, 'pulses_before'):,.0f} + {_mean(reps, 'pulses_compensation'):,.0f}",
            f"{_mean(reps, 'seconds'):.0f} s ({_mean(reps, 'cpu_seconds'):.0f} s CPU)",
        ])
    return rows


HEADER = ["network", "software", "noise model", "chip, before", "chip, after compensation",
          "tuning error L1 / L2", "weight import error L1 / L2", "pulses (+ compensation)",
          "time per chip"]


def write_outputs(study: DigitsStudy, out: Path) -> tuple[Path, Path]:
    """results.json and digits.png (accuracy bars per network) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    js = out / "digits-results.json"
    js.write_text(json.dumps(study.as_dict(), indent=1, default=float))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    names = list(study.chips)
    kinds = [("software", [study.software[n] for n in names]),
             ("chip, before compensation", [_mean(study.chips[n], "before") for n in names]),
             ("chip, after compensation", [_mean(study.chips[n], "after") for n in names])]
    width = 0.8 / len(kinds)
    for k, (label, acc) in enumerate(kinds):
        vals = [100 * a for a in acc]
        xs = np.arange(len(names)) + (k - 1) * width
        ax.bar(xs, vals, width, label=label)
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 118)
    c = study.config
    ax.set_title(f"digits 63-32-10 on {c.size} x {c.size} TiO2 arrays, {c.r_wire:g} Ω segments, "
                 f"{c.pulse_scheme.value} pulses", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    png = out / "digits.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return js, png
