"""Device current-voltage laws: pure, elementwise, broadcasting.

An I-V law maps a device's conductance state `g` (S) and its voltage `v` (V, row minus
column) to the current (A, row to column) and its derivative dI/dV (S). Device models build
on these laws; the circuit solver uses `current`/`didv` for Newton iterations and the netlist
exporter uses `spice_current` to write the same law as a SPICE behavioural expression.

Parameters may be scalars or arrays that broadcast against the (M, N) state (per-device
variation); `spice_current` then picks the entry of the given cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from xbarlab.crossbar import Cell, FloatArray


@runtime_checkable
class IVLaw(Protocol):
    """A device I-V law I = f(g, v)."""

    @property
    def linear(self) -> bool:
        """True when I = g v exactly."""
        ...

    def current(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        """Current (A) for conductance state `g` (S) at voltage `v` (V), broadcasting."""
        ...

    def didv(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        """dI/dV (S) at `v`, broadcasting like `current`."""
        ...

    def spice_current(self, v_expr: str, g: float, cell: Cell = (0, 0)) -> str:
        """SPICE expression of the current for a device voltage given by `v_expr`."""
        ...

    def describe(self) -> dict[str, Any]: ...


def _param_at(p: float | FloatArray, cell: Cell) -> float:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    return float(arr[cell])


def _check_param(name: str, p: float | FloatArray) -> None:
    arr = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"I-V parameter {name} must be finite and > 0, got {p!r}")


@dataclass(frozen=True, eq=False)
class LinearIV:
    """Ohmic device: I = g v."""

    @property
    def linear(self) -> bool:
        return True

    def current(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        return np.asarray(np.multiply(g, v), dtype=np.float64)

    def didv(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        g_arr = np.asarray(g, dtype=np.float64)
        shape = np.broadcast_shapes(g_arr.shape, np.shape(v))
        return np.array(np.broadcast_to(g_arr, shape), dtype=np.float64)

    def spice_current(self, v_expr: str, g: float, cell: Cell = (0, 0)) -> str:
        return f"{float(g)!r}*({v_expr})"

    def describe(self) -> dict[str, Any]:
        return {"law": "linear"}


@dataclass(frozen=True, eq=False)
class SinhIV:
    """TiO2 read law I = a g sinh(b v) (PHYSICS.md; small-signal conductance a b g)."""

    a: float | FloatArray = 0.73956
    b: float | FloatArray = 1.23844

    def __post_init__(self) -> None:
        _check_param("a", self.a)
        _check_param("b", self.b)

    @property
    def linear(self) -> bool:
        return False

    @cached_property
    def scalar_slope(self) -> Any:
        """a * b (`np.multiply`) when a and b are single numbers: the small-signal conductance
        per unit g, the same number `didv` multiplies by at 0 V; None when either is per
        device. Found once per law (the law is frozen)."""
        if np.ndim(self.a) == 0 and np.ndim(self.b) == 0:
            return np.multiply(self.a, self.b)
        return None

    def current(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        return np.asarray(
            np.multiply(np.multiply(self.a, g), np.sinh(np.multiply(self.b, v))), dtype=np.float64
        )

    def didv(self, g: ArrayLike, v: ArrayLike) -> FloatArray:
        ab = np.multiply(self.a, self.b)
        return np.asarray(
            np.multiply(np.multiply(ab, g), np.cosh(np.multiply(self.b, v))), dtype=np.float64
        )

    def spice_current(self, v_expr: str, g: float, cell: Cell = (0, 0)) -> str:
        a, b = _param_at(self.a, cell), _param_at(self.b, cell)
        return f"{a * float(g)!r}*sinh({b!r}*({v_expr}))"

    def describe(self) -> dict[str, Any]:
        def _d(p: float | FloatArray) -> float | list[Any]:
            arr = np.asarray(p, dtype=np.float64)
            return float(arr) if arr.ndim == 0 else arr.tolist()

        return {"law": "sinh", "a": _d(self.a), "b": _d(self.b)}


def iv_law_of(devices: object) -> IVLaw | None:
    """The I-V law of a device array: its `iv` attribute, `LinearIV` for linear arrays
    without one, else ``None`` (the solver then uses the array's `current`/`conductance`)."""
    law = getattr(devices, "iv", None)
    if law is not None:
        if not isinstance(law, IVLaw):
            raise TypeError(f"devices.iv must implement IVLaw, got {type(law).__name__}")
        return law
    if getattr(devices, "linear", False):
        return LinearIV()
    return None
