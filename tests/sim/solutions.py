"""Comparing two solutions of the same circuit (shared by the solver tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_same_solution(a: Any, b: Any, rel: float = 1e-12) -> None:
    """`a` equals `b` (line voltages, pad currents) to `rel` of `b`'s scale, and both satisfy
    KCL to `rel` of the pad currents."""
    scale = np.abs(b.v_row).max()
    assert np.abs(a.v_row - b.v_row).max() <= rel * scale
    assert np.abs(a.v_col - b.v_col).max() <= rel * scale
    i_scale = np.abs(b.i_pad).max()
    assert np.abs(a.i_pad - b.i_pad).max() <= rel * i_scale
    assert a.residual <= rel * i_scale and b.residual <= rel * i_scale
