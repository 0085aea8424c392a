"""Numbers with SI prefixes and proper unit symbols, for what a person reads (µS, µs, mA)."""

from __future__ import annotations

import math

_PREFIXES = [(1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
             (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]


def prefix_for(value: float) -> tuple[float, str]:
    """(scale, prefix) that puts |value| in [1, 1000) (the unscaled pair for 0 / NaN / inf)."""
    a = abs(value)
    if a == 0 or not math.isfinite(a):
        return 1.0, ""
    for scale, prefix in _PREFIXES:
        if a >= scale * (1 - 1e-12):
            return scale, prefix
    return _PREFIXES[-1]


def si(value: float | None, unit: str, digits: int = 4) -> str:
    """`value` in `unit` with an SI prefix, `digits` significant digits: si(1.5e-4, "S") ->
    "150 µS"; "-" for None, "nan" for NaN."""
    if value is None:
        return "-"
    v = float(value)
    if math.isnan(v):
        return "nan"
    scale, prefix = prefix_for(v)
    return f"{v / scale:.{digits}g} {prefix}{unit}"


def axis_unit(values: object, unit: str) -> tuple[float, str]:
    """(scale, label unit) for a plot axis of `values` in `unit`: divide by scale, label
    with e.g. "µS"."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    finite = np.abs(arr[np.isfinite(arr)])
    top = float(finite.max()) if finite.size else 0.0
    scale, prefix = prefix_for(top)
    return scale, f"{prefix}{unit}"
