"""Line biases of the biasing schemes: which potential every row and column line gets.

Pure functions shared by the simulator (to compute what each device sees) and the bench
backend (to decide what to route to each line). ``NaN`` marks a floating line.
"""

from __future__ import annotations

import numpy as np

from xbarlab.crossbar import BiasScheme, Cell, FloatArray


def line_biases(
    shape: tuple[int, int], cell: Cell, voltage: float, scheme: BiasScheme, *,
    unselected_only: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Row and column line potentials (V) selecting `cell` at `voltage` under `scheme`.

    The selected row is driven at `voltage` and the selected column held at 0 V
    (`unselected_only`: every line at its unselected potential, `cell` ignored; a caller
    that sets the selected lines itself keeps these per scheme and voltage).
    """
    rows, cols = shape
    r, c = cell
    if scheme is BiasScheme.HALF:
        row_v = np.full(rows, voltage / 2.0)
        col_v = np.full(cols, voltage / 2.0)
    elif scheme is BiasScheme.THIRD:
        row_v = np.full(rows, voltage / 3.0)
        col_v = np.full(cols, 2.0 * voltage / 3.0)
    elif scheme is BiasScheme.GROUNDED:
        row_v = np.zeros(rows)
        col_v = np.zeros(cols)
    elif scheme is BiasScheme.FLOATING:
        row_v = np.full(rows, np.nan)
        col_v = np.full(cols, np.nan)
    else:  # pragma: no cover - exhaustive over the enum
        raise ValueError(f"unknown biasing scheme {scheme!r}")
    if not unselected_only:
        row_v[r] = voltage
        col_v[c] = 0.0
    return row_v, col_v

