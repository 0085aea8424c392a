"""The paper's robustness metric: per test point, the fraction of transfers classifying it right.

Inference of N transferred copies of an MLP is batched in numpy (`mlp_logits`), so 2000
transfers x 200 points is a few small matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.nn.authors import mode_draw, mode_fixed, mode_k
from xbarlab.nn.mapping import (
    Mapping,
    NetworkLayout,
    flat_map,
    flatten_params,
    unflatten_params,
)
from xbarlab.nn.single_column import column_targets, column_transfer
from xbarlab.nn.transfer import TransferModel

# The paper's table (main_CDF.py of the authors): lower edges of the bins, highest first.
PAPER_BINS: tuple[tuple[float, float], ...] = (
    (0.95, 1.01), (0.90, 0.95), (0.80, 0.90), (0.70, 0.80), (0.60, 0.70), (0.50, 0.60),
    (0.0, 0.50),
)
PAPER_SHARE_95 = {"hardware-aware": 0.795, "regular": 0.185}
THRESHOLD = 0.95
NEAR_THRESHOLD = 0.02  # half-width of the band around the threshold (`near_threshold`)


def _sigmoid(z: FloatArray) -> FloatArray:
    """In place on `z` (a fresh temporary)."""
    z *= 0.5
    np.tanh(z, out=z)
    z += 1.0
    z *= 0.5
    return z


def mlp_logits(
    x: FloatArray,
    params: Sequence[tuple[FloatArray, FloatArray]],
    dtype: type[np.floating[Any]] = np.float32,
) -> FloatArray:
    """Output logits (N, P) of N MLPs with sigmoid hidden layers on inputs `x` (P, in).

    `params`: per layer (weight (N, out, in) or (out, in), bias (N, out) or (out,)); the last
    layer must have one output. Each layer is one matrix product over all N networks, in
    `dtype` (float32 by default: a classification needs no more, and it is several times
    faster on the (N, hidden, P) activations)."""
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"inputs must be (points, features), got shape {x.shape}")
    n = max((np.ndim(w) == 3 and np.shape(w)[0]) or 1 for w, _ in params)
    h: FloatArray | None = None  # (N, width, P)
    for i, (w, b) in enumerate(params):
        w = np.asarray(w, dtype=dtype)
        b = np.asarray(b, dtype=dtype)
        w = np.broadcast_to(w, (n, *w.shape[-2:]))
        b = np.broadcast_to(b, (n, b.shape[-1]))
        if h is None:  # shared inputs: one GEMM (N * out, in) @ (in, P)
            out, nin = w.shape[1:]
            if nin != x.shape[1]:
                raise ValueError(f"layer 1 takes {nin} inputs, x has {x.shape[1]} features")
            z = (w.reshape(n * out, nin) @ x.T).reshape(n, out, -1)
        else:
            z = np.matmul(w, h)
        z += b[:, :, None]
        h = _sigmoid(z) if i < len(params) - 1 else z
    assert h is not None
    if h.shape[1] != 1:
        raise ValueError(f"the last layer must have one output, got {h.shape[1]}")
    return h[:, 0, :]


def correct_matrix(logits: FloatArray, labels: FloatArray) -> np.ndarray:
    """(N, P) bool: transfer n classifies point p correctly (logit > 0 means class 1)."""
    return (np.asarray(logits) > 0) == (np.asarray(labels)[None, :] > 0.5)


@dataclass(frozen=True)
class TransferMetrics:
    """Robustness of one network over N transfers."""

    n_transfers: int
    n_points: int
    share_95: float  # share of points correct in >= 95 % of transfers
    bins: list[float]  # share of points per PAPER_BINS bin, highest first
    acc_mean: float  # transfer accuracy (share of points right in one transfer)
    acc_std: float
    acc_min: float
    acc_nominal: float  # accuracy of the untransferred network, NaN when not given
    point_fraction: FloatArray = field(repr=False)  # (P,)
    correct: np.ndarray | None = field(default=None, repr=False)  # (N, P) when kept

    @property
    def near_threshold(self) -> float:
        """Share of points correct in 93-97 % of the transfers: the points whose side of the
        95 % threshold a different draw of transfers can flip."""
        f = np.asarray(self.point_fraction)
        return float(np.mean((f >= THRESHOLD - NEAR_THRESHOLD) & (f < THRESHOLD + NEAR_THRESHOLD)))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["point_fraction"] = np.asarray(self.point_fraction).tolist()
        d.pop("correct")
        return d


def summarize(correct: np.ndarray, nominal_correct: np.ndarray | None = None) -> TransferMetrics:
    """Metrics from the (N, P) correctness matrix (and the nominal network's (P,) one)."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2 or correct.size == 0:
        raise ValueError(
            f"correct must be a non-empty (transfers, points) matrix, got {correct.shape}"
        )
    frac = correct.mean(axis=0)
    acc = correct.mean(axis=1)
    bins = [float(np.mean((frac >= lo) & (frac < hi))) for lo, hi in PAPER_BINS]
    nominal = float(np.mean(nominal_correct)) if nominal_correct is not None else float("nan")
    return TransferMetrics(
        n_transfers=correct.shape[0], n_points=correct.shape[1],
        share_95=float(np.mean(frac >= THRESHOLD)), bins=bins,
        acc_mean=float(acc.mean()), acc_std=float(acc.std()), acc_min=float(acc.min()),
        acc_nominal=nominal, point_fraction=frac, correct=correct,
    )


def cdf_curve(point_fraction: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(threshold t, share of points correct in >= t of the transfers), t from 0 to 1."""
    t = np.linspace(0.0, 1.0, 101)
    frac = np.asarray(point_fraction)
    return t, np.array([np.mean(frac >= x) for x in t])


def evaluate_transfers(
    params: Sequence[tuple[FloatArray, FloatArray]],
    layout: NetworkLayout,
    model: TransferModel,
    x: FloatArray,
    y: FloatArray,
    n: int,
    rng: np.random.Generator,
    mapping: Mapping = "physical",
    single_column: bool = False,
) -> TransferMetrics:
    """The paper's metric for a network over `n` statistical transfers (one vectorised pass);
    `single_column`: the authors' single-column scheme for single-sign tensors."""
    fmap = flat_map(layout)
    theta = flatten_params(list(params))
    cm = column_targets(fmap, theta, model.g_min, model.g_max, mapping, single_column)
    t_theta = column_transfer(model, fmap, cm, mode_draw(mapping, model,
                                                         mode_k(layout, fmap, mapping), n, rng))
    sizes = (layout.layers[0].n_in, *(p.n_out for p in layout.layers))
    fixed = mode_fixed(layout, mapping)
    if fixed is not None:
        t_theta[:, fixed] = theta[fixed]
    transferred = unflatten_params(t_theta, sizes)
    nominal = correct_matrix(mlp_logits(x, params), y)[0]
    return summarize(correct_matrix(mlp_logits(x, transferred), y), nominal)
