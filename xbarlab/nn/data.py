"""The half-moons data set of the seed paper (Drolet et al. 2023), or a matched substitute.

`load_moons` reads the paper's exact split (train 875 / test 200 / validation 125, features
min-max scaled to [0, 1]) from the reference folder when it is present, and otherwise draws
scikit-learn's ``make_moons`` with a noise level matched to the paper's set (about 0.16, not the
0.05 the authors' generator script states), scaled and split the same way. `MoonsData.source`
says which one was used. numpy only (scikit-learn is imported lazily for the fallback).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xbarlab.crossbar import FloatArray

REFERENCE_ENV = "XBARLAB_REFERENCE_DIR"
PAPER_SPLIT = {"train": 875, "test": 200, "validation": 125}
MATCHED_NOISE = 0.16


def reference_dir() -> Path:
    """The seed paper's reference folder: $XBARLAB_REFERENCE_DIR, else ../shared/reference/
    hardware-aware-article next to the repository."""
    env = os.environ.get(REFERENCE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "reference" / "hardware-aware-article"


@dataclass(frozen=True)
class MoonsData:
    """Features (n, 2) in [0, 1] and labels (n,) in {0, 1} per split, and their origin."""

    x_train: FloatArray
    y_train: FloatArray
    x_test: FloatArray
    y_test: FloatArray
    x_val: FloatArray
    y_val: FloatArray
    source: str

    def selection_points(self) -> tuple[FloatArray, FloatArray]:
        """Points for model selection (checkpoints, restarts): every training and validation
        point that is not also a test point (exact match of the features).

        The paper's split overlaps: 172 of its 200 test points are training points and the
        other 28 are validation points (the authors' networks, and any network trained on
        their split, have seen 86 % of the test points). Selecting on the validation split
        alone would therefore look at test points; this set never does (it reads the test
        features only to leave those points out, never the test labels)."""
        x = np.concatenate([self.x_train, self.x_val])
        y = np.concatenate([self.y_train, self.y_val])
        test = {tuple(p) for p in np.asarray(self.x_test).tolist()}
        keep = np.array([tuple(p) not in test for p in x.tolist()], dtype=bool)
        return x[keep], y[keep]


def _read_reference(path: Path) -> MoonsData:
    parts: dict[str, list[tuple[float, float, float]]] = {k: [] for k in PAPER_SPLIT}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        needed = {"split", "x1", "x2", "label"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(needed)}, got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            split = row["split"]
            if split not in parts:
                raise ValueError(f"{path}: line {n}: unknown split {split!r}")
            parts[split].append((float(row["x1"]), float(row["x2"]), float(row["label"])))
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1, 3) for k, v in parts.items()}
    return MoonsData(
        arrays["train"][:, :2], arrays["train"][:, 2], arrays["test"][:, :2], arrays["test"][:, 2],
        arrays["validation"][:, :2], arrays["validation"][:, 2],
        source=f"paper split ({path})",
    )


def make_matched_moons(seed: int = 0, noise: float = MATCHED_NOISE) -> MoonsData:
    """``make_moons`` with the paper's sizes and scaling; `noise` in make_moons units."""
    from sklearn.datasets import make_moons

    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    n = sum(PAPER_SPLIT.values())
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    a, b = PAPER_SPLIT["train"], PAPER_SPLIT["train"] + PAPER_SPLIT["test"]
    y = y.astype(np.float64)
    return MoonsData(
        x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:],
        source=f"sklearn make_moons(n={n}, noise={noise}, random_state={seed}), min-max scaled",
    )


def load_moons(prefer: str = "auto", seed: int = 0) -> MoonsData:
    """The paper's split when available (`prefer` "auto" or "paper"), else matched make_moons.

    ``prefer="paper"`` raises if the reference file is missing; ``"sklearn"`` always draws."""
    if prefer not in ("auto", "paper", "sklearn"):
        raise ValueError(f"prefer must be 'auto', 'paper' or 'sklearn', got {prefer!r}")
    path = reference_dir() / "half_moons.csv"
    if prefer != "sklearn" and path.is_file():
        return _read_reference(path)
    if prefer == "paper":
        raise FileNotFoundError(f"the paper's half-moons split is not at {path}")
    return make_matched_moons(seed)
