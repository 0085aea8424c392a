"""The authors' single-column scheme for single-sign tensors (``mapping="authors"`` only).

In the authors' code (Hardware-Aware-Article, ``Linear.w_forward``) a tensor of more than one
element whose values all share one sign (all >= 0 or all <= 0) is not mapped on differential
pairs: each weight gets ONE device, [min w, max w] of the tensor is mapped linearly onto the
physical window [g_min, g_max] (100-500 uS), and the weight is read back by the inverse map
(the offset min w is added back, the g_min offset of the conductance subtracted):

    G = g_min + (w - w_lo) / (w_hi - w_lo) * (g_max - g_min)
    w = w_lo + (G - g_min) * (w_hi - w_lo) / (g_max - g_min)

(a constant tensor uses a range of 1, as their scaler does). The programming offset enters
that scheme with the opposite sign to the pair scheme (their code subtracts o * G), the tuning
law, disturb draw and stuck substitution are the same per device. Here the flat device vector
keeps two devices per parameter; for a single-column parameter the negative device is unused:
its conductance and any stuck draw on it are ignored.

The tensors switch scheme whenever their sign pattern changes during training, as in their code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.nn.mapping import FlatMap, Mapping
from xbarlab.nn.transfer import TransferDraw, TransferModel, apply


@dataclass(frozen=True)
class ColumnMap:
    """Targets of a flat parameter vector with single-column tensors.

    ``w = scale * (g[pos] - g[neg]) + offset`` for pairs (offset 0), and
    ``w = scale * g[pos] + offset`` for single-column parameters (``single``)."""

    g: FloatArray  # (..., D) S; the unused device of a single-column parameter sits at g_min
    scale: FloatArray  # (..., P) weight units per siemens
    offset: FloatArray  # (..., P) weight units
    single: np.ndarray  # (..., P) bool

    def devices_used(self) -> np.ndarray:
        """(...,) number of devices actually programmed: 1 per single-column parameter, 2 per
        pair."""
        return np.asarray((2 - self.single.astype(np.int64)).sum(axis=-1))


def single_tensors(fmap: FlatMap, theta: FloatArray) -> np.ndarray:
    """(..., n_tensors) True for tensors of more than one element whose values share a sign."""
    theta = np.asarray(theta, dtype=np.float64)
    out = np.zeros((*theta.shape[:-1], fmap.n_tensors), dtype=bool)
    for t in range(fmap.n_tensors):
        sel = fmap.tensor == t
        if sel.sum() < 2:
            continue
        v = theta[..., sel]
        out[..., t] = np.all(v >= 0, axis=-1) | np.all(v <= 0, axis=-1)
    return out


def column_targets(fmap: FlatMap, theta: FloatArray, g_min: float, g_max: float,
                   mapping: Mapping, single_column: bool) -> ColumnMap:
    """Device targets of theta (..., P): `FlatMap.targets` for pairs, the single-column map in
    the physical window for single-sign tensors when `single_column` is on."""
    theta = np.asarray(theta, dtype=np.float64)
    g, scale = fmap.targets(theta, g_min, g_max, mapping)
    scale = np.array(np.broadcast_to(scale, theta.shape), dtype=np.float64)
    offset = np.zeros_like(scale)
    single = np.zeros(theta.shape, dtype=bool)
    if not single_column:
        return ColumnMap(g, scale, offset, single)
    span = g_max - g_min
    tensors = single_tensors(fmap, theta)
    g = np.array(g, dtype=np.float64)
    for t in range(fmap.n_tensors):
        if not tensors[..., t].any():
            continue
        sel = fmap.tensor == t
        on = tensors[..., t]  # (...,)
        v = theta[..., sel]
        lo, hi = v.min(axis=-1), v.max(axis=-1)
        rng = np.where(hi > lo, hi - lo, 1.0)  # their scaler's range for a constant tensor
        s = rng / span
        g_single = g_min + (v - lo[..., None]) / s[..., None]
        idx = np.flatnonzero(sel)
        pos, neg = fmap.pos[idx], fmap.neg[idx]
        g[..., pos] = np.where(on[..., None], g_single, g[..., pos])
        g[..., neg] = np.where(on[..., None], g_min, g[..., neg])
        scale[..., idx] = np.where(on[..., None], s[..., None], scale[..., idx])
        offset[..., idx] = np.where(on[..., None], (lo - g_min * s)[..., None], 0.0)
        single[..., idx] = on[..., None]
    return ColumnMap(g, scale, offset, single)


def column_weights(fmap: FlatMap, g: FloatArray, cm: ColumnMap) -> FloatArray:
    """Parameters (..., P) represented by programmed conductances (..., D)."""
    g = np.asarray(g)
    neg = np.where(cm.single, 0.0, g[..., fmap.neg])
    return cm.scale * (g[..., fmap.pos] - neg) + cm.offset


def column_stuck(fmap: FlatMap, stuck: np.ndarray, cm: ColumnMap) -> np.ndarray:
    """(..., P) True where a device the parameter uses is stuck (unused devices ignored)."""
    s = np.asarray(stuck, dtype=bool)
    return s[..., fmap.pos] | (s[..., fmap.neg] & ~cm.single)


def column_transfer(model: TransferModel, fmap: FlatMap, cm: ColumnMap, d: TransferDraw
                    ) -> FloatArray:
    """Transferred parameters (N, P) under draw `d`; single-column devices take the programming
    offset with the authors' sign (subtracted)."""
    single_dev = np.asarray(cm.single)[..., fmap.param]
    if single_dev.any():
        d = TransferDraw(np.where(single_dev, -d.offset, d.offset), d.eps, d.delta, d.stuck_g)
    return column_weights(fmap, apply(model, cm.g, d), cm)
