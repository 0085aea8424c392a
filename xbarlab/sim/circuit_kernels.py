"""Compiled single case of the ideal circuit (`IdealCircuit`): device voltages, currents and
line currents of one bias case with every line driven, in one pass over the array.

As numpy calls this case costs a dozen whole-array operations (an outer difference, the I-V
law on every device, two sums: ~35 us at 64 x 64 on a loaded machine), most of it on
devices at 0 V that carry no current. One compiled pass evaluates the law only where a
device sees a voltage. No fastmath; the sums run in plain order, so line currents agree with
numpy's pairwise sums to rounding (tests/sim/test_ideal_fast.py). numba: see `solver_kernels`.
"""

from __future__ import annotations

import math

from xbarlab.sim.jit import AVAILABLE
from xbarlab.sim.jit import compile_kernel as _compile

__all__ = ["AVAILABLE"]


def _ideal_case(row_v, col_v, g, a, b, sinh, v_dev, i_dev, i_rows, i_cols):  # type: ignore[no-untyped-def]
    """Fill v_dev, i_dev (M, N), i_rows (M), i_cols (N) for line potentials row_v (M),
    col_v (N); the law is I = (a g) sinh(b v) if `sinh`, else I = g v. False (nothing
    usable) if a line floats (NaN)."""
    m, n = g.shape
    for i in range(m):
        if row_v[i] != row_v[i]:
            return False
    for j in range(n):
        if col_v[j] != col_v[j]:
            return False
    for j in range(n):
        i_cols[j] = 0.0
    for i in range(m):
        vr = row_v[i]
        acc = 0.0
        for j in range(n):
            v = vr - col_v[j]
            v_dev[i, j] = v
            cur = 0.0
            if v != 0.0:
                cur = (a * g[i, j]) * math.sinh(b * v) if sinh else g[i, j] * v
            i_dev[i, j] = cur
            acc += cur
            i_cols[j] += cur
        i_rows[i] = acc
    return True


def _ideal_sense(row_v, col_v, g, a, b, sinh, i_rows, i_cols):  # type: ignore[no-untyped-def]
    """Only the line currents i_rows (B, M), i_cols (B, N) of B cases row_v (B, M),
    col_v (B, N), as in `_ideal_case` (no per-device arrays are formed, rows with no device
    under voltage are skipped: the same sums); False if a line floats (NaN)."""
    m, n = g.shape
    for c in range(row_v.shape[0]):
        for i in range(m):
            if row_v[c, i] != row_v[c, i]:
                return False
        for j in range(n):
            if col_v[c, j] != col_v[c, j]:
                return False
    for c in range(row_v.shape[0]):
        for j in range(n):
            i_cols[c, j] = 0.0
        # every column at one potential: a row at that potential puts 0 V on all its devices
        # and adds nothing (a grounded read skips all rows but the selected one)
        c0 = col_v[c, 0] if n else 0.0
        level = n > 0 and abs(c0) < math.inf
        for j in range(1, n):
            level = level and col_v[c, j] == c0
        for i in range(m):
            vr = row_v[c, i]
            acc = 0.0
            if level and vr == c0:
                i_rows[c, i] = 0.0
                continue
            for j in range(n):
                v = vr - col_v[c, j]
                if v != 0.0:
                    cur = (a * g[i, j]) * math.sinh(b * v) if sinh else g[i, j] * v
                    acc += cur
                    i_cols[c, j] += cur
            i_rows[c, i] = acc
    return True


def _valid_conductances(g):  # type: ignore[no-untyped-def]
    """Every conductance of g (M, N) finite and >= 0 (NaN fails ``x >= 0``): what
    `check_conductances` asks, in one pass instead of its two whole-array reductions (the
    check runs after every pulse). No early exit: the loop vectorizes (~4x faster)."""
    m, n = g.shape
    bad = False
    for i in range(m):
        for j in range(n):
            x = g[i, j]
            bad |= (not x >= 0.0) | (x == math.inf)
    return not bad


def _conductance_state(g):  # type: ignore[no-untyped-def]
    """One pass over g (M, N): 0 if a conductance is NaN, infinite or negative (the caller
    then raises with `check_conductances`), 1 if all are valid and some are 0 (lines may
    float), 2 if all are finite and > 0."""
    m, n = g.shape
    bad = False
    zero = False
    for i in range(m):
        for j in range(n):
            x = g[i, j]
            bad |= (not x >= 0.0) | (x == math.inf)
            zero |= x == 0.0
    return 0 if bad else 1 if zero else 2


ideal_case = _compile(_ideal_case)
ideal_sense = _compile(_ideal_sense)
valid_conductances = _compile(_valid_conductances)
conductance_state = _compile(_conductance_state)


def _column_case(row_v, col_v, g, a, b, sinh, col, v_dev):  # type: ignore[no-untyped-def]
    """The single case of `_ideal_case` when only the device voltages and the current of
    column `col` are wanted (a single-cell pulse): fills v_dev (M, N) (or nothing if it has
    no rows) and returns the current column `col` sinks, summed over the rows in the same
    order as `_ideal_case` (the same float); NaN (nothing usable) if a line floats."""
    m, n = g.shape
    for i in range(m):
        if row_v[i] != row_v[i]:
            return math.nan
    for j in range(n):
        if col_v[j] != col_v[j]:
            return math.nan
    if v_dev.shape[0] == m:
        for i in range(m):
            vr = row_v[i]
            for j in range(n):
                v_dev[i, j] = vr - col_v[j]
    acc = 0.0
    vc = col_v[col]
    for i in range(m):
        v = row_v[i] - vc
        if v != 0.0:
            acc += (a * g[i, col]) * math.sinh(b * v) if sinh else g[i, col] * v
    return acc


column_case = _compile(_column_case)
