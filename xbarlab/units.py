"""Quantities for people: SI prefixes with proper symbols (µS, µs, mA, kΩ).

Everything inside xbarlab is in base SI units (S, s, V, A, ohm); this module turns a value
into the text a person reads in a table, a message or a plot label.
"""

from __future__ import annotations

import math

MICRO = "µ"  # U+00B5, the micro sign
OHM = "Ω"

# exponent (multiple of 3) -> prefix
_PREFIXES = {-15: "f", -12: "p", -9: "n", -6: MICRO, -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}
# the scale a unit is usually read at (plots and tables of one kind of quantity)
_PREFERRED = {"S": -6, "s": -6}


def prefix_exponent(value: float) -> int:
    """The multiple of 3 that puts |value| in [1, 1000) (0 for 0 and non-finite values)."""
    if value == 0 or not math.isfinite(value):
        return 0
    exp = 3 * math.floor(math.log10(abs(value)) / 3)
    return max(min(exp, 9), -15)


def si(value: float, unit: str, digits: int = 3, *, signed: bool = False) -> str:
    """`value` (base unit) with the SI prefix that fits: si(3.4e-6, "S") == "3.4 µS".

    `digits` significant digits, trailing zeros dropped; `signed` adds a + to positive values.
    """
    if not math.isfinite(value):
        return f"{value} {unit}"
    exp = prefix_exponent(value)
    sign = "+" if signed else ""
    text = f"{value / 10.0**exp:{sign}.{digits}g}"
    if abs(float(text)) >= 1000 and exp < 9:  # 999.95 rounds up to the next prefix
        exp += 3
        text = f"{value / 10.0**exp:{sign}.{digits}g}"
    return f"{text} {_PREFIXES[exp]}{unit}"


def scale(unit: str, exponent: int | None = None) -> tuple[float, str]:
    """(factor, label) to show values of `unit` at a fixed prefix: values * factor are in
    label, e.g. scale("S") == (1e6, "µS"). Without `exponent`, the unit's usual scale."""
    exp = _PREFERRED.get(unit, 0) if exponent is None else exponent
    return 10.0 ** (-exp), f"{_PREFIXES[exp]}{unit}"


def micro(value: float, unit: str = "S", decimals: int = 2) -> str:
    """`value` (base unit) in micro units with fixed decimals: micro(1.5e-4) == "150.00 µS"."""
    return f"{value * 1e6:.{decimals}f} {MICRO}{unit}"


def percent(fraction: float, decimals: int = 1, *, signed: bool = False) -> str:
    """A fraction as percent with a space before the sign: percent(0.025) == "2.5 %"."""
    return f"{fraction * 100:{'+' if signed else ''}.{decimals}f} %"


def duration(seconds: float) -> str:
    """A time span the way a person reads it: 850 µs, 12.3 ms, 4.20 s, 3.5 min, 1.2 h."""
    if seconds < 1:
        return si(seconds, "s")
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def axis_unit(values: object, unit: str) -> tuple[float, str]:
    """(divisor, label unit) for a plot axis of `values` in `unit`, from the largest finite
    magnitude: axis_unit([2e-4, 5e-4], "S") == (1e-6, "µS")."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    finite = np.abs(arr[np.isfinite(arr)])
    exp = prefix_exponent(float(finite.max())) if finite.size else 0
    return 10.0**exp, f"{_PREFIXES[exp]}{unit}"
