"""Near-linear solutions: networks whose hidden layer acts linearly on the data range.

A 2-8-1 sigmoid MLP can fit the half moons with a curved boundary (about 97 % nominal test
accuracy on the paper's split) or settle on an almost straight one (86-88 %, what a line does
best). The paper's hardware-aware recipe (weight decay 1e-4, one transfer per step) lands on the
straight one on many seeds, and a straight boundary is the most robust one, so the share of
such solutions explains much of the headline figure. Measured here, per network:

- ``logit_r2``: the coefficient of determination of the best affine fit
  ``a . x + c`` (least squares) of the network's output logit over the data points (every
  train, validation and test point): 1 when the whole network is affine on the data;
- ``agreement``: the share of data points the affine fit classifies (sign of the logit) as
  the network does;
- ``unit_linearity``: per hidden unit, the R^2 of the best affine fit of its sigmoid output
  against its pre-activation over the data points, averaged with weights |w_out| (the units
  the output listens to count more): 1 when every unit stays on the linear part of its
  sigmoid over the data range.

**Near-linear** := ``logit_r2 >= R2_THRESHOLD`` (0.98) and ``agreement >= AGREEMENT_THRESHOLD``
(0.99): the network computes, on the data it sees, an affine function up to 2 % of the
logit's variance, and its decisions are those of that affine function on 99 % of the points.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import FloatArray

R2_THRESHOLD = 0.98
AGREEMENT_THRESHOLD = 0.99


@dataclass(frozen=True)
class Linearity:
    """How linearly one network acts on a set of points."""

    logit_r2: float
    agreement: float
    unit_linearity: float

    @property
    def near_linear(self) -> bool:
        return self.logit_r2 >= R2_THRESHOLD and self.agreement >= AGREEMENT_THRESHOLD


def _r2(y: FloatArray, design: FloatArray) -> tuple[float, FloatArray]:
    """R^2 and fitted values of the least-squares fit of `y` (n,) on `design` (n, k)."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit = design @ coef
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - fit) ** 2))
    return (1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot), fit


def linearity(params: Sequence[tuple[FloatArray, FloatArray]], x: FloatArray) -> Linearity:
    """`Linearity` of a 1-hidden-layer sigmoid MLP ``[(W1, b1), (W2, b2)]`` on points `x`."""
    if len(params) != 2:
        raise ValueError(f"expected one hidden layer (2 weight tensors), got {len(params)}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need at least 3 points (n, features), got shape {x.shape}")
    (w1, b1), (w2, b2) = ((np.asarray(w, np.float64), np.asarray(b, np.float64))
                          for w, b in params)
    z = x @ w1.T + b1  # (n, hidden)
    h = 1.0 / (1.0 + np.exp(-z))
    logit = (h @ w2.T + b2)[:, 0]
    design = np.column_stack([x, np.ones(len(x))])
    r2, fit = _r2(logit, design)
    agreement = float(np.mean((fit > 0) == (logit > 0)))
    weights = np.abs(w2[0])
    unit_r2 = np.array([_r2(h[:, j], np.column_stack([z[:, j], np.ones(len(x))]))[0]
                        for j in range(h.shape[1])])
    unit = float(np.sum(weights * unit_r2) / weights.sum()) if weights.sum() > 0 else 1.0
    return Linearity(r2, agreement, unit)
