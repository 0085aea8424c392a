"""Target conductance patterns for demos and tests."""

from __future__ import annotations

import numpy as np

from xbarlab.config import PatternTarget
from xbarlab.crossbar import FloatArray


def pattern_mask(name: str, shape: tuple[int, int]) -> FloatArray:
    """A recognisable pattern as values in [0, 1] on an array of `shape`."""
    rows, cols = shape
    r, c = np.indices(shape, dtype=np.float64)
    if name == "letter_x":
        # Two diagonals, 1-2 cells thick: an X you can read off a printed map.
        u, v = r / max(rows - 1, 1), c / max(cols - 1, 1)
        width = 1.0 / max(min(rows, cols) - 1, 1)
        return ((np.abs(u - v) <= width * 0.6) | (np.abs(u + v - 1) <= width * 0.6)).astype(float)
    if name == "checkerboard":
        return ((r + c) % 2).astype(float)
    if name == "gradient":
        return (r + c) / max(rows + cols - 2, 1)
    if name == "ring":
        rr, cc = (rows - 1) / 2, (cols - 1) / 2
        d = np.hypot((r - rr) / max(rr, 0.5), (c - cc) / max(cc, 0.5))
        return ((d > 0.45) & (d < 0.85)).astype(float)
    raise ValueError(f"unknown pattern {name!r}: letter_x, checkerboard, gradient, ring")


def target_map(target: PatternTarget, shape: tuple[int, int]) -> FloatArray:
    """Target conductances (S) for `target` on an array of `shape`."""
    if target.pattern == "matrix":
        m = np.asarray(target.matrix, dtype=np.float64)
        if m.shape != shape:
            raise ValueError(f"target matrix is {m.shape[0]} x {m.shape[1]}, "
                             f"the array is {shape[0]} x {shape[1]}")
        return m
    mask = pattern_mask(target.pattern, shape)
    return target.g_low + (target.g_high - target.g_low) * mask
