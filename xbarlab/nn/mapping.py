"""Weights to conductances: differential pairs in the physical window, placed on arrays.

**Pair mapping** (`map_tensor`). Each tensor (a layer's weight matrix, or its bias vector) is
scaled by its own max|w|: a weight w becomes a pair (G+, G-) with

    G+ = g_min + (g_max - g_min) * max(w, 0) / max|w|
    G- = g_min + (g_max - g_min) * max(-w, 0) / max|w|

so both devices stay inside the programmable window [g_min, g_max] (100-500 uS for the
Sherbrooke TiO2 arrays), the idle device of the pair sits at g_min, and
w = scale * (G+ - G-) with scale = max|w| / (g_max - g_min).

**Mapping modes** (`Mapping`, chosen by ``TrainConfig.mapping`` and `evaluate_transfers`):
"physical" is the mapping above (xbarlab's default for everything that programs arrays);
"authors" follows the authors' code: the same per-tensor max|w| scaling but targets in
[g_min - g_max, g_max - g_min] = +-400 uS (`mapping_window`), with the variabilities applied to
those targets, plus the per-tensor disturb index, the 60 uS disturb outliers and the ideal
single-element tensors of `xbarlab.nn.authors`. Only "physical" describes real devices.

Difference to the authors' code (Hardware-Aware-Article, ``weight_sampler_dc``): there a
MinMaxScaler maps [0, max|w|] onto [g_min - g_max, g_max - g_min] = [-400, +400] uS for each
device of the pair, so a zero weight puts both "devices" at -400 uS (below zero, unphysical),
the pair difference spans +-800 uS, and the tuning law std% = a G + b is evaluated at negative
conductances. Consequences: an additive disturb of d uS moves a weight by d / 800 of max|w|
there but d / 400 here (the physical model is twice as sensitive to disturb), and a device
stuck at HRS (10-100 uS) on an idle device moves a weight by about 0.56 max|w| there but at
most 0.22 max|w| here (idle devices sit at g_min = 100 uS); stuck at LRS (about 573 uS) moves
it by about 1.2 max|w| in both.

**Placement** (`LayerPlacement`). A linear layer y = W x + b (W: out x in) becomes a
conductance matrix with in + 1 rows (the inputs, then a bias row driven by a constant voltage)
and 2 * out columns (G+ of output j in column 2j, G- in column 2j + 1): inputs drive rows,
column currents are summed, y_j ~ I_2j - I_2j+1. A matrix larger than the arrays is cut into
tiles of at most ``array_shape``; partial currents of tiles stacked along the rows are summed
digitally. Each tile is one physical array, programmed cell by cell in ``order``
("row-major": along each row of the tile, row after row; "column-major": down each column,
column after column). The disturb statistics are indexed by k = number of devices of the
same array programmed after a device, which the placement provides per device (`device_k`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xbarlab.crossbar import FloatArray, IntArray

Order = Literal["row-major", "column-major"]
ORDERS: tuple[str, ...] = ("row-major", "column-major")


Mapping = Literal["physical", "authors"]
MAPPINGS: tuple[str, ...] = ("physical", "authors")


def mapping_window(mapping: Mapping, g_min: float, g_max: float) -> tuple[float, float]:
    """Target window of a mapping mode: the physical window, or the authors' +-(g_max - g_min)
    (idle device at g_min - g_max, below zero)."""
    if mapping == "physical":
        return g_min, g_max
    if mapping == "authors":
        return g_min - g_max, g_max - g_min
    raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")


class LayoutError(ValueError):
    """A network that does not fit the configured arrays; the message gives the sizes."""


# --------------------------------------------------------------------------- pair mapping


@dataclass(frozen=True)
class PairMap:
    """Differential pair targets of one tensor; ``w = scale * (g_pos - g_neg)``."""

    g_pos: FloatArray  # S, shape of the tensor
    g_neg: FloatArray  # S
    scale: float  # weight units per siemens


def _check_window(g_min: float, g_max: float) -> None:
    if not (np.isfinite(g_min) and np.isfinite(g_max) and 0 < g_min < g_max):
        raise ValueError(f"conductance window must satisfy 0 < g_min < g_max, got {g_min}, {g_max}")


def map_tensor(w: FloatArray, g_min: float, g_max: float) -> PairMap:
    """Pair targets for tensor `w`, scaled by its max|w| (an all-zero tensor maps to g_min)."""
    _check_window(g_min, g_max)
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite to be mapped onto conductances")
    span = g_max - g_min
    w_max = float(np.max(np.abs(w))) if w.size else 0.0
    if w_max == 0.0:
        return PairMap(np.full(w.shape, g_min), np.full(w.shape, g_min), 1.0 / span)
    g_pos = g_min + span * (np.maximum(w, 0.0) / w_max)
    g_neg = g_min + span * (np.maximum(-w, 0.0) / w_max)
    return PairMap(g_pos, g_neg, w_max / span)


def unmap_pairs(g_pos: FloatArray, g_neg: FloatArray, scale: float) -> FloatArray:
    """Weights represented by pairs of conductances (any leading batch shape)."""
    return scale * (np.asarray(g_pos) - np.asarray(g_neg))


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class Tile:
    """One physical array holding rows [row0, row0+rows) x cols [col0, col0+cols) of a layer
    matrix, at its top-left corner."""

    row0: int
    col0: int
    rows: int
    cols: int

    def cells(self, order: Order) -> IntArray:
        """Local (row, col) cells of the tile in programming order."""
        r, c = np.indices((self.rows, self.cols))
        if order == "column-major":
            r, c = r.T, c.T
        return np.stack([r.ravel(), c.ravel()], axis=1).astype(np.int64)


@dataclass(frozen=True)
class LayerPlacement:
    """Placement of one linear layer (n_in inputs + bias row, 2 * n_out columns) on arrays."""

    n_in: int
    n_out: int
    array_shape: tuple[int, int]
    order: Order
    tiles: tuple[Tile, ...]

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return (self.n_in + 1, 2 * self.n_out)

    @property
    def n_devices(self) -> int:
        return (self.n_in + 1) * 2 * self.n_out

    def device_k(self) -> IntArray:
        """k per cell of the layer matrix: devices of the same array programmed after it."""
        k = np.zeros(self.matrix_shape, dtype=np.int64)
        for t in self.tiles:
            seq = t.cells(self.order)
            n = len(seq)
            k[t.row0 + seq[:, 0], t.col0 + seq[:, 1]] = n - 1 - np.arange(n)
        return k

    def matrix(self, weight: FloatArray, bias: FloatArray, g_min: float, g_max: float) -> tuple[
        FloatArray, float, float
    ]:
        """Target conductance matrix (n_in + 1, 2 n_out) and the weight and bias scales."""
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64)
        if weight.shape != (self.n_out, self.n_in) or bias.shape != (self.n_out,):
            raise ValueError(
                f"layer placed for weight ({self.n_out}, {self.n_in}) and bias ({self.n_out},), "
                f"got {weight.shape} and {bias.shape}"
            )
        pw = map_tensor(weight, g_min, g_max)
        pb = map_tensor(bias, g_min, g_max)
        g = np.empty(self.matrix_shape)
        g[:-1, 0::2] = pw.g_pos.T
        g[:-1, 1::2] = pw.g_neg.T
        g[-1, 0::2] = pb.g_pos
        g[-1, 1::2] = pb.g_neg
        return g, pw.scale, pb.scale

    def params(self, g: FloatArray, scale_w: float, scale_b: float) -> tuple[
        FloatArray, FloatArray
    ]:
        """(weight (..., out, in), bias (..., out)) from conductance matrices (..., in+1, 2 out)."""
        g = np.asarray(g)
        diff = g[..., 0::2] - g[..., 1::2]  # (..., in + 1, out)
        weight = scale_w * np.swapaxes(diff[..., :-1, :], -1, -2)
        bias = scale_b * diff[..., -1, :]
        return weight, bias

    def tile_targets(self, g: FloatArray, tile: Tile) -> FloatArray:
        """The part of a layer matrix `g` that `tile` holds, (tile.rows, tile.cols)."""
        return np.asarray(g)[tile.row0 : tile.row0 + tile.rows, tile.col0 : tile.col0 + tile.cols]


def place_layer(
    n_in: int,
    n_out: int,
    array_shape: tuple[int, int],
    order: Order = "column-major",
    *,
    tile: bool = True,
    name: str = "layer",
) -> LayerPlacement:
    """Place a layer of `n_in` inputs and `n_out` outputs on arrays of `array_shape`.

    Without `tile`, a layer matrix larger than one array raises `LayoutError` with the sizes."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"{name}: needs at least one input and one output, got {n_in}, {n_out}")
    ar, ac = int(array_shape[0]), int(array_shape[1])
    if ar < 2 or ac < 2:
        raise LayoutError(f"arrays of {ar} x {ac} cannot hold a row and a differential pair")
    if order not in ORDERS:
        raise ValueError(f"unknown programming order {order!r}: use one of {ORDERS}")
    rows, cols = n_in + 1, 2 * n_out
    if not tile and (rows > ar or cols > ac):
        raise LayoutError(
            f"{name} ({n_in} inputs + bias row, {n_out} outputs x 2 devices) needs a "
            f"{rows} x {cols} array; the configured arrays are {ar} x {ac} "
            "(allow tiling or use larger arrays)"
        )
    col_step = ac - ac % 2  # never split a differential pair across arrays
    tiles = tuple(
        Tile(r0, c0, min(ar, rows - r0), min(col_step, cols - c0))
        for c0 in range(0, cols, col_step)
        for r0 in range(0, rows, ar)
    )
    return LayerPlacement(n_in, n_out, (ar, ac), order, tiles)


@dataclass(frozen=True)
class NetworkLayout:
    """Placement of every layer of an MLP; devices are numbered layer by layer, each layer's
    matrix in row-major order (the flat device vector of the transfer model)."""

    layers: tuple[LayerPlacement, ...]

    @property
    def n_devices(self) -> int:
        return sum(p.n_devices for p in self.layers)

    @property
    def n_arrays(self) -> int:
        return sum(len(p.tiles) for p in self.layers)

    def device_k(self) -> IntArray:
        """k of every device, flat (n_devices,)."""
        return np.concatenate([p.device_k().ravel() for p in self.layers])

    def targets(
        self, params: list[tuple[FloatArray, FloatArray]], g_min: float, g_max: float
    ) -> tuple[FloatArray, list[tuple[float, float]]]:
        """Flat target conductances (n_devices,) and per-layer (scale_w, scale_b)."""
        if len(params) != len(self.layers):
            raise ValueError(f"{len(params)} layers given, the layout has {len(self.layers)}")
        flat, scales = [], []
        for p, (w, b) in zip(self.layers, params, strict=True):
            g, sw, sb = p.matrix(w, b, g_min, g_max)
            flat.append(g.ravel())
            scales.append((sw, sb))
        return np.concatenate(flat), scales

    def params(
        self, g: FloatArray, scales: list[tuple[float, float]]
    ) -> list[tuple[FloatArray, FloatArray]]:
        """Per-layer (weight, bias) from flat conductances (..., n_devices)."""
        g = np.asarray(g)
        if g.shape[-1] != self.n_devices:
            raise ValueError(f"expected {self.n_devices} conductances, got {g.shape[-1]}")
        out, start = [], 0
        for p, (sw, sb) in zip(self.layers, scales, strict=True):
            block = g[..., start : start + p.n_devices].reshape(*g.shape[:-1], *p.matrix_shape)
            out.append(p.params(block, sw, sb))
            start += p.n_devices
        return out


def layout_network(
    sizes: tuple[int, ...] | list[int],
    array_shape: tuple[int, int] = (8, 8),
    order: Order = "column-major",
    *,
    tile: bool = True,
    max_arrays: int | None = None,
) -> NetworkLayout:
    """Place an MLP with layer widths `sizes` (e.g. (2, 8, 1)) on arrays of `array_shape`.

    `max_arrays` bounds the number of arrays (tiles) in total; exceeding it raises
    `LayoutError` naming the arrays needed per layer."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
    layers = tuple(
        place_layer(a, b, array_shape, order, tile=tile, name=f"layer {i + 1}")
        for i, (a, b) in enumerate(itertools.pairwise(sizes))
    )
    layout = NetworkLayout(layers)
    if max_arrays is not None and layout.n_arrays > max_arrays:
        per = ", ".join(
            f"layer {i + 1}: {len(p.tiles)} ({p.matrix_shape[0]} x {p.matrix_shape[1]})"
            for i, p in enumerate(layers)
        )
        raise LayoutError(
            f"the network needs {layout.n_arrays} arrays of {array_shape[0]} x {array_shape[1]} "
            f"({per}); only {max_arrays} are configured"
        )
    return layout


def pair_masks(
    layout: NetworkLayout, device_mask: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-layer (weight mask (..., out, in), bias mask (..., out)): True where either device
    of the weight's pair is flagged in `device_mask` (..., n_devices)."""
    m = np.asarray(device_mask, dtype=bool)
    out, start = [], 0
    for p in layout.layers:
        block = m[..., start : start + p.n_devices].reshape(*m.shape[:-1], *p.matrix_shape)
        pair = block[..., 0::2] | block[..., 1::2]  # (..., in + 1, out)
        out.append((np.swapaxes(pair[..., :-1, :], -1, -2), pair[..., -1, :]))
        start += p.n_devices
    return out


@dataclass(frozen=True)
class FlatMap:
    """Index form of a `NetworkLayout` for a flat parameter vector theta.

    theta holds, layer after layer, the weight matrix (out x in, row-major) then the bias.
    Device d is the positive or negative device of parameter ``param[d]``; ``pos[p]`` and
    ``neg[p]`` are the devices of parameter p; ``tensor[p]`` numbers the tensor p belongs to
    (each tensor has its own max|w| scale)."""

    n_params: int
    param: IntArray  # (D,)
    sign: FloatArray  # (D,) +1 or -1
    pos: IntArray  # (P,)
    neg: IntArray  # (P,)
    tensor: IntArray  # (P,)
    n_tensors: int

    def tensor_max(self, theta: FloatArray) -> FloatArray:
        """Per-parameter max|w| of its tensor (1 for an all-zero tensor), shape of theta."""
        a = np.abs(np.asarray(theta, dtype=np.float64))
        w_max = np.zeros((*a.shape[:-1], self.n_tensors))
        for t in range(self.n_tensors):
            w_max[..., t] = a[..., self.tensor == t].max(axis=-1)
        return np.where(w_max > 0, w_max, 1.0)[..., self.tensor]

    def targets(self, theta: FloatArray, g_min: float, g_max: float,
                mapping: Mapping = "physical") -> tuple[FloatArray, FloatArray]:
        """Device targets (..., D) and per-parameter scales (..., P) of theta (..., P); the
        same mapping as `map_tensor` applied tensor by tensor ("physical"), or the authors'
        window [g_min - g_max, g_max - g_min] ("authors", see the module docstring)."""
        _check_window(g_min, g_max)
        g_min, g_max = mapping_window(mapping, g_min, g_max)
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape[-1] != self.n_params:
            raise ValueError(f"expected {self.n_params} parameters, got {theta.shape[-1]}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("weights must be finite to be mapped onto conductances")
        w_max = self.tensor_max(theta)
        mag = np.maximum(self.sign * theta[..., self.param], 0.0)
        span = g_max - g_min
        return g_min + span * (mag / w_max[..., self.param]), w_max / span

    def weights(self, g: FloatArray, scale: FloatArray) -> FloatArray:
        """Parameters (..., P) represented by device conductances (..., D)."""
        g = np.asarray(g)
        return scale * (g[..., self.pos] - g[..., self.neg])

    def pair_any(self, device_mask: np.ndarray) -> np.ndarray:
        """(..., P) True where either device of the parameter is flagged."""
        m = np.asarray(device_mask, dtype=bool)
        return m[..., self.pos] | m[..., self.neg]


def flat_map(layout: NetworkLayout) -> FlatMap:
    """The `FlatMap` of `layout` (device order as `NetworkLayout.targets`)."""
    params, signs, tensors = [], [], []
    offset, tensor = 0, 0
    for p in layout.layers:
        n_in, n_out = p.n_in, p.n_out
        # layer matrix cell (i, 2j + s): weight W[j, i] for i < n_in, bias b[j] for i = n_in
        i, c = np.indices(p.matrix_shape)
        j, s = c // 2, c % 2
        idx = np.where(i < n_in, offset + j * n_in + i, offset + n_out * n_in + j)
        params.append(idx.ravel())
        signs.append(np.where(s == 0, 1.0, -1.0).ravel())
        tensors.append(np.full(n_out * n_in, tensor))
        tensors.append(np.full(n_out, tensor + 1))
        offset += n_out * (n_in + 1)
        tensor += 2
    param = np.concatenate(params).astype(np.int64)
    sign = np.concatenate(signs)
    pos = np.empty(offset, dtype=np.int64)
    neg = np.empty(offset, dtype=np.int64)
    pos[param[sign > 0]] = np.flatnonzero(sign > 0)
    neg[param[sign < 0]] = np.flatnonzero(sign < 0)
    return FlatMap(offset, param, sign, pos, neg, np.concatenate(tensors).astype(np.int64), tensor)


def flatten_params(params: list[tuple[FloatArray, FloatArray]]) -> FloatArray:
    """theta (..., P) from per-layer (weight (..., out, in), bias (..., out))."""
    parts = []
    for w, b in params:
        w = np.asarray(w, dtype=np.float64)
        parts += [w.reshape(*w.shape[:-2], -1), np.asarray(b, dtype=np.float64)]
    return np.concatenate(parts, axis=-1)


def unflatten_params(
    theta: FloatArray, sizes: tuple[int, ...] | list[int]
) -> list[tuple[FloatArray, FloatArray]]:
    """Per-layer (weight (..., out, in), bias (..., out)) from theta (..., P)."""
    theta = np.asarray(theta)
    out, start = [], 0
    for n_in, n_out in itertools.pairwise(sizes):
        w = theta[..., start : start + n_out * n_in].reshape(*theta.shape[:-1], n_out, n_in)
        start += n_out * n_in
        out.append((w, theta[..., start : start + n_out]))
        start += n_out
    if start != theta.shape[-1]:
        raise ValueError(f"theta has {theta.shape[-1]} entries, sizes {tuple(sizes)} need {start}")
    return out
