"""The authors' transfer details (Hardware-Aware-Article, ``hardaware_linear.Linear``).

Used by the ``mapping="authors"`` mode of training and evaluation, on top of the +-400 uS pair
window of `xbarlab.nn.mapping.mapping_window`. What their code does, and what this reproduces:

- **disturb index k per tensor**, not per array: the devices of weight [y][x] of an (out, in)
  tensor with out > 1 get k = numel - (x * out + y) (filled column by column), those of a row
  vector or a bias vector element x get k = numel - x; the last element gets k = 0. Both
  devices of a pair share the k (independent draws).
- **disturb outliers**: a sampled disturb whose magnitude exceeds 4 sigma_k is replaced by
  +60 uS (sigma_k: the preset's per-k std, derived from the clipped data; their code uses its
  own per-k std table, computed before clipping, so slightly fewer values are replaced there).
- **single-element tensors are ideal**: a tensor of shape [1] (the output bias of an n-1
  network) bypasses every variability (no devices).

Offsets (fresh per transfer, % of the target), tuning imprecision (std % = a G + b at the
target, also for negative targets) and stuck devices (each device 1 %, half at LRS
N(573, 99) uS, half at HRS U(10, 100) uS; a pair with a stuck device is substituted) are the
same draw as `xbarlab.nn.transfer` makes. Their single-column scheme for a tensor whose
weights all share one sign is `xbarlab.nn.single_column` (``single_column`` option).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from xbarlab.crossbar import IntArray
from xbarlab.nn.mapping import FlatMap, Mapping, NetworkLayout
from xbarlab.nn.transfer import TransferDraw, TransferModel, draw

OUTLIER_SIGMAS = 4.0
OUTLIER_VALUE = 60e-6  # S


def param_k(sizes: Sequence[int]) -> IntArray:
    """k per parameter (P,) of the flat theta (weights out x in row-major, then bias)."""
    out: list[np.ndarray] = []
    for n_in, n_out in pairwise(sizes):
        numel = n_in * n_out
        y, x = np.indices((n_out, n_in))
        pos = x * n_out + y if n_out > 1 else x
        kw = numel - pos
        kw[-1, -1] = 0
        kb = n_out - np.arange(n_out)
        kb[-1] = 0
        out += [kw.ravel(), kb]
    return np.concatenate(out).astype(np.int64)


def fixed_params(sizes: Sequence[int]) -> np.ndarray:
    """(P,) True for parameters of single-element tensors (left ideal by their code)."""
    out: list[np.ndarray] = []
    for n_in, n_out in pairwise(sizes):
        out += [np.full(n_in * n_out, n_in * n_out == 1), np.full(n_out, n_out == 1)]
    return np.concatenate(out)


def device_k(fmap: FlatMap, sizes: Sequence[int]) -> IntArray:
    """k per device (D,) in the order of `fmap`."""
    k = param_k(sizes)
    if k.size != fmap.n_params:
        raise ValueError(f"sizes {tuple(sizes)} give {k.size} parameters, map has {fmap.n_params}")
    return k[fmap.param]


def authors_draw(model: TransferModel, k: IntArray, n: int, rng: np.random.Generator
                 ) -> TransferDraw:
    """`xbarlab.nn.transfer.draw` with their disturb outlier rule (|delta| > 4 sigma_k: +60 uS)."""
    d = draw(model, k, n, rng)
    if not model.disturb:
        return d
    st = model.stats.disturb
    row = np.clip(np.searchsorted(st.k, k, side="right") - 1, 0, len(st.k) - 1)
    sigma = np.where(k > 0, np.asarray(st.std)[row], np.inf)
    delta = np.where(np.abs(d.delta) > OUTLIER_SIGMAS * sigma, OUTLIER_VALUE, d.delta)
    return TransferDraw(d.offset, d.eps, delta, d.stuck_g)


def layout_sizes(layout: NetworkLayout) -> tuple[int, ...]:
    return (layout.layers[0].n_in, *(p.n_out for p in layout.layers))


def mode_k(layout: NetworkLayout, fmap: FlatMap, mapping: Mapping) -> IntArray:
    """Disturb k per device for a mapping mode: the placement's (physical) or the authors'."""
    return layout.device_k() if mapping == "physical" else device_k(fmap, layout_sizes(layout))


def mode_draw(mapping: Mapping, model: TransferModel, k: IntArray, n: int,
              rng: np.random.Generator) -> TransferDraw:
    return draw(model, k, n, rng) if mapping == "physical" else authors_draw(model, k, n, rng)


def mode_fixed(layout: NetworkLayout, mapping: Mapping) -> np.ndarray | None:
    """(P,) parameters kept ideal in this mode, or None."""
    if mapping == "physical":
        return None
    f = fixed_params(layout_sizes(layout))
    return f if f.any() else None
