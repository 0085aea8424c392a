"""Weights -> conductance targets -> tiles on arrays -> cells of a bank of arrays.

**Layer matrix.** A dense layer y = W x + b becomes a matrix of n_in + 1 rows (the inputs, then
the bias as an extra input row driven at a constant) and, per output j, a differential pair of
columns (2j: positive device, 2j + 1: negative device). Each tensor (W, and b) is mapped on its
own scale: the largest |value| of the tensor spans the conductance window [g_min, g_max], a
weight w is the pair (g_min + s^-1 max(w, 0), g_min + s^-1 max(-w, 0)) with s = max|w| /
(g_max - g_min) weight units per siemens.

**Single-column option** (`single_column=True`, the authors' scheme): a tensor of more than one
element whose values all share one sign gets ONE device per value, [min w, max w] mapped
linearly onto [g_min, g_max]; w = s (G - g_min) + min w. Its offset (min w - s g_min per unit
input) is added back digitally after the MVM (the periphery knows the inputs). In a layer where
the other tensor still needs pairs, the negative device of a single-column row is present (the
column exists) and programmed to g_min, so that w = s (G+ - G-) + min w holds for every row; a
layer whose tensors are all single-column has no negative columns at all (the nominal g_min is
subtracted digitally).

**Tiles.** A layer matrix larger than one array is cut into tiles of at most the array's rows
and columns (a differential pair is never split). Tiles go onto arrays in order, layer after
layer, packed in shelves (`pack=True`: a tile goes to the right of the previous one if it fits
in the rows of the current shelf, else below it, else onto the next array; several small layers
share one array) or one tile per array (`pack=False`). The arrays form a bank: array a holds
rows [a M, (a + 1) M) of the bank's coordinates (`xbarlab.network.bank.ArrayBank`).

**Programming order** (documented, deterministic): tile after tile in placement order (layer 0
first), inside a tile column by column (``order="column-major"``, the default: the devices of one
output are finished together) or row by row (``"row-major"``). Cells of the bank that hold no
device of the network are never programmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from xbarlab.crossbar import Cell, FloatArray
from xbarlab.network.model import Network

Order = Literal["row-major", "column-major"]


class LayoutError(ValueError):
    """The network does not fit on the arrays available."""


@dataclass(frozen=True)
class TensorMap:
    """How one tensor's values become conductances: w = scale (G+ - G-) + offset."""

    scale: float  # weight units per siemens
    offset: float  # weight units (single-column: min w; pairs: 0)
    single: bool


def map_tensor(v: FloatArray, g_min: float, g_max: float, single_column: bool
               ) -> tuple[FloatArray, FloatArray, TensorMap]:
    """(G+, G-) targets of the values `v` and their map."""
    v = np.asarray(v, dtype=np.float64)
    span = g_max - g_min
    if single_column and v.size > 1 and (np.all(v >= 0) or np.all(v <= 0)):
        lo, hi = float(v.min()), float(v.max())
        rng = hi - lo if hi > lo else 1.0
        s = rng / span
        return g_min + (v - lo) / s, np.full(v.shape, g_min), TensorMap(s, lo, True)
    top = float(np.max(np.abs(v))) if v.size else 0.0
    top = top if top > 0 else 1.0
    s = top / span
    return (g_min + np.maximum(v, 0.0) / s, g_min + np.maximum(-v, 0.0) / s,
            TensorMap(s, 0.0, False))


@dataclass(frozen=True)
class LayerMap:
    """The conductance matrix of one layer and how to read weights back from it."""

    n_in: int
    n_out: int
    targets: FloatArray  # (n_in + 1, n_cols) S
    weight: TensorMap
    bias: TensorMap
    paired: bool  # negative columns exist
    g_min: float
    in_scale: float = 1.0  # input u -> u * in_scale before it becomes a voltage

    @property
    def n_cols(self) -> int:
        return self.targets.shape[1]

    def row_scales(self) -> FloatArray:
        """(n_in + 1,) weight units per siemens of each row."""
        return np.array([self.weight.scale] * self.n_in + [self.bias.scale])

    def row_offsets(self) -> FloatArray:
        return np.array([self.weight.offset] * self.n_in + [self.bias.offset])

    def diff(self, g: FloatArray) -> FloatArray:
        """(..., n_in + 1, n_out) G+ - G- (or G+ - g_min without negative columns)."""
        g = np.asarray(g)
        if self.paired:
            return g[..., 0::2] - g[..., 1::2]
        return g - self.g_min

    def params(self, g: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(weight (n_out, n_in), bias (n_out,)) that conductance matrix `g` represents."""
        w = self.row_scales()[:, None] * self.diff(g) + self.row_offsets()[:, None]
        return w[:-1].T.copy(), w[-1].copy()


def map_layer(w: FloatArray, b: FloatArray, g_min: float, g_max: float,
              single_column: bool = False, in_scale: float = 1.0) -> LayerMap:
    """The `LayerMap` of layer (w (n_out, n_in), b (n_out,))."""
    if not 0 < g_min < g_max:
        raise ValueError(f"the conductance window needs 0 < g_min < g_max, got {g_min}, {g_max}")
    n_out, n_in = w.shape
    wp, wn, tw = map_tensor(w, g_min, g_max, single_column)
    bp, bn, tb = map_tensor(b, g_min, g_max, single_column)
    paired = not (tw.single and tb.single)
    pos = np.vstack([wp.T, bp[None, :]])  # (n_in + 1, n_out)
    if not paired:
        return LayerMap(n_in, n_out, pos, tw, tb, False, g_min, in_scale)
    neg = np.vstack([wn.T, bn[None, :]])
    g = np.empty((n_in + 1, 2 * n_out))
    g[:, 0::2], g[:, 1::2] = pos, neg
    return LayerMap(n_in, n_out, g, tw, tb, True, g_min, in_scale)


@dataclass(frozen=True)
class Tile:
    """Rows [r0, r0 + rows) x columns [c0, c0 + cols) of layer `layer`'s matrix, placed on
    array `array` with its top-left corner at (ar, ac)."""

    layer: int
    r0: int
    c0: int
    rows: int
    cols: int
    array: int = 0
    ar: int = 0
    ac: int = 0

    def cells(self, order: Order, array_rows: int) -> list[Cell]:
        """Bank cells of the tile in programming order."""
        top = self.array * array_rows + self.ar
        rr, cc = range(self.rows), range(self.cols)
        if order == "column-major":
            return [(top + r, self.ac + c) for c in cc for r in rr]
        return [(top + r, self.ac + c) for r in rr for c in cc]


def cut_layer(index: int, lm: LayerMap, array_shape: tuple[int, int]) -> list[Tile]:
    """Tiles of a layer matrix on arrays of `array_shape` (a pair is never split)."""
    ar, ac = array_shape
    col_step = ac - ac % 2 if lm.paired else ac
    if col_step < 1 or ar < 1:
        raise LayoutError(f"arrays of {ar} x {ac} cannot hold a differential pair")
    rows, cols = lm.targets.shape
    return [Tile(index, r0, c0, min(ar, rows - r0), min(col_step, cols - c0))
            for c0 in range(0, cols, col_step) for r0 in range(0, rows, ar)]


def pack_tiles(tiles: list[Tile], array_shape: tuple[int, int], pack: bool,
               max_arrays: int | None) -> tuple[list[Tile], int]:
    """Place `tiles` on arrays (shelf packing, or one per array); returns them placed and the
    number of arrays used. `LayoutError` when more than `max_arrays` would be needed."""
    ar, ac = array_shape
    placed: list[Tile] = []
    array, shelf_top, shelf_h, x = 0, 0, 0, 0
    for i, t in enumerate(tiles):
        if i and not pack:
            array, shelf_top, shelf_h, x = array + 1, 0, 0, 0
        elif i and (x + t.cols > ac or t.rows > ar - shelf_top):  # not in this shelf
            shelf_top, x, shelf_h = shelf_top + shelf_h, 0, 0
            if t.rows > ar - shelf_top:
                array, shelf_top = array + 1, 0
        placed.append(Tile(t.layer, t.r0, t.c0, t.rows, t.cols, array, shelf_top, x))
        x += t.cols
        shelf_h = max(shelf_h, t.rows)
    n = array + 1
    if max_arrays is not None and n > max_arrays:
        need = sum(t.rows * t.cols for t in tiles)
        raise LayoutError(f"the network needs {n} arrays of {ar} x {ac} ({need} devices in "
                          f"{len(tiles)} tiles); the backend has {max_arrays}")
    return placed, n


@dataclass
class NetworkMap:
    """Every layer's matrix, its tiles on the bank of arrays, and the programming order."""

    network: Network
    layers: list[LayerMap]
    tiles: list[Tile]
    array_shape: tuple[int, int]
    n_arrays: int
    order: Order
    cells: list[Cell] = field(default_factory=list)  # programming order, bank coordinates
    where: dict[Cell, tuple[int, int, int]] = field(default_factory=dict)  # cell -> (l, i, j)

    def __post_init__(self) -> None:
        if not self.cells:
            for t in self.tiles:
                for cell in t.cells(self.order, self.array_shape[0]):
                    r = cell[0] - (t.array * self.array_shape[0] + t.ar)
                    c = cell[1] - t.ac
                    self.cells.append(cell)
                    self.where[cell] = (t.layer, t.r0 + r, t.c0 + c)

    @property
    def bank_shape(self) -> tuple[int, int]:
        return (self.n_arrays * self.array_shape[0], self.array_shape[1])

    @property
    def n_devices(self) -> int:
        return len(self.cells)

    def to_bank(self, layer_values: list[FloatArray]) -> FloatArray:
        """Bank map (NaN where no device) of per-layer matrices."""
        out = np.full(self.bank_shape, np.nan)
        for cell, (ly, i, j) in self.where.items():
            out[cell] = layer_values[ly][i, j]
        return out

    def from_bank(self, bank: FloatArray) -> list[FloatArray]:
        """Per-layer matrices of a bank map."""
        out = [np.full(lm.targets.shape, np.nan) for lm in self.layers]
        for cell, (ly, i, j) in self.where.items():
            out[ly][i, j] = bank[cell]
        return out

    def targets(self) -> FloatArray:
        return self.to_bank([lm.targets for lm in self.layers])

    def network_from(self, bank_g: FloatArray) -> Network:
        """The network that bank conductances `bank_g` represent (digital read-back)."""
        params = [lm.params(g) for lm, g in zip(self.layers, self.from_bank(bank_g),
                                                 strict=True)]
        return Network.of(params, self.network.activation, self.network.dataset)

    def describe(self) -> dict[str, object]:
        return {
            "sizes": list(self.network.sizes), "activation": self.network.activation,
            "array_shape": list(self.array_shape), "n_arrays": self.n_arrays,
            "order": self.order, "devices": self.n_devices,
            "layers": [{"matrix": list(lm.targets.shape), "paired": lm.paired,
                        "weight": vars_of(lm.weight), "bias": vars_of(lm.bias),
                        "in_scale": lm.in_scale} for lm in self.layers],
            "tiles": [vars_of(t) for t in self.tiles],
        }


def vars_of(obj: object) -> dict[str, object]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def input_scales(net: Network, x: FloatArray) -> list[float]:
    """Per layer, 1 / the largest |input| on `x` (at least 1 in the denominator): inputs are
    multiplied by it so that the largest drive stays within the read voltage."""
    out = []
    h = np.asarray(x, dtype=np.float64)
    from xbarlab.network.model import activate

    for i, (w, b) in enumerate(net.layers):
        top = float(np.max(np.abs(h))) if h.size else 1.0
        out.append(1.0 / max(1.0, top))
        h = h @ w.T + b
        if i < len(net.layers) - 1:
            h = activate(h, net.activation)
    return out


def map_network(net: Network, array_shape: tuple[int, int], g_min: float, g_max: float, *,
                single_column: bool = False, order: Order = "column-major", pack: bool = True,
                max_arrays: int | None = None, x_ref: FloatArray | None = None) -> NetworkMap:
    """Map `net` onto a bank of arrays of `array_shape` (see the module doc).

    `x_ref`: inputs whose range sets each layer's input scaling (calibration data; None: 1)."""
    if order not in ("row-major", "column-major"):
        raise ValueError(f"unknown programming order {order!r}: use 'row-major' or "
                         "'column-major'")
    scales = input_scales(net, x_ref) if x_ref is not None else [1.0] * len(net.layers)
    layers = [map_layer(w, b, g_min, g_max, single_column, s)
              for (w, b), s in zip(net.layers, scales, strict=True)]
    tiles = [t for i, lm in enumerate(layers) for t in cut_layer(i, lm, array_shape)]
    placed, n = pack_tiles(tiles, array_shape, pack, max_arrays)
    return NetworkMap(net, layers, placed, array_shape, n, order)
