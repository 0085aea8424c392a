"""Symbolic analysis of a crossbar's nested dissection by templates: fronts of equal shape
are translates of each other.

The geometric nested dissection of `solver_fronts.grid_fronts` cuts boxes of cells in half.
A region is a box of h x w cells whose node set, relative to the box corner, depends only on
(h, w) and two flags: the row-wire nodes of its first column were taken by an earlier cut
(it is the right half of a column cut) and the column-wire nodes of its first row were taken
(lower half of a row cut). Cut positions are relative too (half the width or height), so
regions of one type have identical subtrees up to translation. A front's update set (the later
nodes it touches after elimination) is the set of outside neighbours of the parts of its
region connected to it; it depends on the region type and on which box sides lie on the array
edge. So one template per (type, edge sides) class gives the eliminated nodes, the update
set and the local slot of every node of every front of that class: the node ids of a front
are its template plus one scalar offset (i0 * N + j0 on both wire layers).

Layout: node k < M*N is the row-wire node at cell (k // N, k % N), node M*N + k the
column-wire node at the same cell (as in `solver_network`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import IntArray

#: region type: cells high, cells wide, first column's row nodes gone, first row's column
#: nodes gone
RegionType = tuple[int, int, bool, bool]


@dataclass(frozen=True, slots=True)
class FrontClass:
    """Fronts that are translates of one template (same region type, same edge sides).

    `elim` and `struct` are template node ids relative to a front's base (add `base` to get
    node ids); `lut` (2, h + 2, w + 2) maps a node at (layer, di + 1, dj + 1) relative to the
    box corner to its local slot in the front (eliminated first, then the update set in
    `struct` order), -1 where the node is not in the front.
    """

    height: int
    h: int
    w: int
    elim: IntArray
    struct: IntArray
    lut: np.ndarray
    i0: IntArray  # box corners of the fronts, (k,)
    j0: IntArray

    def base(self, n: int) -> IntArray:
        """Node-id offset of every front of the class."""
        out: IntArray = self.i0 * n + self.j0
        return out


def _is_leaf(t: RegionType, leaf_sites: int) -> bool:
    h, w = t[0], t[1]
    return h * w <= leaf_sites or (h <= 1 and w <= 1)


def _children(t: RegionType) -> tuple[tuple[RegionType, int, int], tuple[RegionType, int, int]]:
    """The two halves of a region that is cut: (type, row shift, column shift) each."""
    h, w, fr, fc = t
    if w >= h:
        k = w // 2
        return ((h, k, fr, fc), 0, 0), ((h, w - k, True, fc), 0, k)
    k = h // 2
    return ((k, w, fr, fc), 0, 0), ((h - k, w, fr, True), k, 0)


def _region_mask(t: RegionType) -> np.ndarray:
    """Nodes of a region on a (2, h + 2, w + 2) canvas (one cell of margin each side)."""
    h, w, fr, fc = t
    mask = np.zeros((2, h + 2, w + 2), dtype=bool)
    mask[:, 1 : h + 1, 1 : w + 1] = True
    if fr:
        mask[0, 1 : h + 1, 1] = False
    if fc:
        mask[1, 1, 1 : w + 1] = False
    return mask


def _front_mask(t: RegionType, leaf: bool) -> np.ndarray:
    """The nodes a region eliminates last (its separator, or all of a leaf), on the canvas."""
    h, w, _, _ = t
    if leaf:
        return _region_mask(t)
    mask = np.zeros((2, h + 2, w + 2), dtype=bool)
    if w >= h:  # the row-wire nodes of the middle column
        mask[0, 1 : h + 1, 1 + w // 2] = True
    else:  # the column-wire nodes of the middle row
        mask[1, 1 + h // 2, 1 : w + 1] = True
    return mask


def _neighbours(part: np.ndarray) -> np.ndarray:
    """Nodes adjacent to `part` on the canvas (row-wire nodes join their row neighbours,
    column-wire nodes their column neighbours, both layers meet at each cell)."""
    r, c = part[0], part[1]
    nb = np.zeros_like(part)
    nb[0, :, 1:] |= r[:, :-1]
    nb[0, :, :-1] |= r[:, 1:]
    nb[1] |= r
    nb[1, 1:, :] |= c[:-1, :]
    nb[1, :-1, :] |= c[1:, :]
    nb[0] |= c
    return nb


class _Pieces:
    """Per region type, the part of the region its front reaches and the parts it does not
    (`orphans`): a front is eliminated as one dense block, so the region's fronts join
    whatever they contain, and graph edges join the rest. A taken first row or column can
    leave a chain of nodes that no front joins to the separator: its update set then does
    not pass through the separator."""

    def __init__(self, leaf_sites: int) -> None:
        self.leaf_sites = leaf_sites
        self.memo: dict[RegionType, tuple[np.ndarray, list[np.ndarray]]] = {}

    def __call__(self, t: RegionType) -> tuple[np.ndarray, list[np.ndarray]]:
        """(reached part, orphan parts) as canvas masks of type `t`."""
        if t in self.memo:
            return self.memo[t]
        h, w = t[0], t[1]
        if _is_leaf(t, self.leaf_sites):
            out: tuple[np.ndarray, list[np.ndarray]] = (_region_mask(t), [])
        else:
            front = _front_mask(t, False)
            reached = front.copy()
            orphans = []
            for child, di, dj in _children(t):
                main, rest = self(child)
                for piece in [main, *rest]:
                    if not piece.any():
                        continue
                    big = np.zeros((2, h + 2, w + 2), dtype=bool)
                    big[:, 1 + di : 1 + di + child[0], 1 + dj : 1 + dj + child[1]] = piece[
                        :, 1:-1, 1:-1
                    ]
                    if (_neighbours(big) & front).any():
                        reached |= big
                    else:
                        orphans.append(big)
            out = (reached, orphans)
        self.memo[t] = out
        return out


def _outside_neighbours(part: np.ndarray, region: np.ndarray, sides: tuple[bool, ...]) -> (
    np.ndarray
):
    """Nodes outside `region` adjacent to `part`, dropping the margin on the array-edge
    `sides` (top, bottom, left, right)."""
    nb = _neighbours(part) & ~region
    top, bottom, left, right = sides
    if top:
        nb[:, 0, :] = False
    if bottom:
        nb[:, -1, :] = False
    if left:
        nb[:, :, 0] = False
    if right:
        nb[:, :, -1] = False
    return nb


def _rel_ids(mask: np.ndarray, m: int, n: int) -> IntArray:
    """Template node ids (relative to the box corner's node id) of a canvas mask, in
    node-id order."""
    layer, a, b = np.nonzero(mask)
    return (layer * (m * n) + (a - 1) * n + (b - 1)).astype(np.int64)


def _heights(root: RegionType, leaf_sites: int) -> dict[RegionType, int]:
    """Height in the dissection tree of every region type under `root` (-1: no nodes)."""
    memo: dict[RegionType, int] = {}

    def height(t: RegionType) -> int:
        if t in memo:
            return memo[t]
        if _is_leaf(t, leaf_sites):
            memo[t] = 0 if _region_mask(t).any() else -1
        else:
            (a, _, _), (b, _, _) = _children(t)
            memo[t] = 1 + max(height(a), height(b))
        return memo[t]

    height(root)
    return memo


def grid_classes(m: int, n: int, leaf_sites: int = 4) -> list[FrontClass]:
    """Every front of the M x N array's nested dissection (the same fronts as
    `solver_fronts.grid_fronts` on all 2MN nodes), as classes of translates.

    Regions are handed down type by type, largest first, with all their box corners at once
    (vectorised), so the work is per region type, not per front.
    """
    if m <= 0 or n <= 0:
        return []
    root: RegionType = (m, n, False, False)
    heights = _heights(root, leaf_sites)
    pieces = _Pieces(leaf_sites)
    pending: dict[RegionType, list[tuple[IntArray, IntArray]]] = {
        root: [(np.zeros(1, np.int64), np.zeros(1, np.int64))]
    }
    out: list[FrontClass] = []
    while pending:
        t = max(pending, key=lambda x: (x[0] * x[1], x))  # parents before their halves
        parts = pending.pop(t)
        i0 = np.concatenate([p[0] for p in parts])
        j0 = np.concatenate([p[1] for p in parts])
        h, w = t[0], t[1]
        leaf = _is_leaf(t, leaf_sites)
        if not leaf:
            for child, di, dj in _children(t):
                pending.setdefault(child, []).append((i0 + di, j0 + dj))
        front = _front_mask(t, leaf)
        if not front.any():
            continue
        region, part = _region_mask(t), pieces(t)[0]
        elim = _rel_ids(front, m, n)
        sides = np.stack([i0 == 0, i0 + h == m, j0 == 0, j0 + w == n], axis=1)
        code = sides @ np.array([1, 2, 4, 8])
        for c in np.flatnonzero(np.bincount(code, minlength=16)):
            pick = code == c
            nb = _outside_neighbours(part, region, tuple(bool(x) for x in sides[pick][0]))
            lut = np.full(front.shape, -1, dtype=np.int32)
            lut[front] = np.arange(elim.size)
            nu = int(nb.sum())
            lut[nb] = elim.size + np.arange(nu)
            out.append(FrontClass(heights[t], h, w, elim, _rel_ids(nb, m, n), lut,
                                  i0[pick], j0[pick]))
    return out
