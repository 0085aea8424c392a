"""Evaluation sets a programmed network is scored on: pluggable by name.

An `EvalSet` has a calibration split (never test data: what chip-in-the-loop compensation
fits on) and a test split (only scored). Built in: ``moons`` (the paper's half-moons split via
`xbarlab.nn.data.load_moons`: calibration = training and validation points that are not test
points). Other sets plug in with `register` (name -> loader) or, without code in
xbarlab.network, as ``package.module:function`` naming a function that returns an `EvalSet` or
any object or dict with ``x_cal, y_cal, x_test, y_test`` (see `as_evalset`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xbarlab.crossbar import FloatArray


@dataclass(frozen=True)
class EvalSet:
    """Inputs (P, n_in) scaled as the network was trained, integer labels (P,)."""

    x_cal: FloatArray
    y_cal: np.ndarray
    x_test: FloatArray
    y_test: np.ndarray
    name: str
    source: str = ""

    def __post_init__(self) -> None:
        for x, y, split in ((self.x_cal, self.y_cal, "calibration"),
                            (self.x_test, self.y_test, "test")):
            if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
                raise ValueError(f"{self.name}: the {split} split must be inputs (P, n_in) "
                                 f"and P labels, got {x.shape} and {np.shape(y)}")

    @property
    def n_inputs(self) -> int:
        return int(self.x_test.shape[1])

    def limited(self, max_cal: int | None, max_test: int | None) -> EvalSet:
        """The first `max_cal` / `max_test` points of each split (None: all)."""
        return EvalSet(self.x_cal[:max_cal], self.y_cal[:max_cal], self.x_test[:max_test],
                       self.y_test[:max_test], self.name, self.source)


Loader = Callable[[], object]  # an EvalSet, or anything `as_evalset` takes


def _moons() -> EvalSet:
    from xbarlab.nn.data import load_moons

    d = load_moons()
    x_cal, y_cal = d.selection_points()
    return EvalSet(x_cal, y_cal.astype(np.int64), d.x_test, d.y_test.astype(np.int64),
                   "moons", d.source)


_REGISTRY: dict[str, Loader] = {"moons": _moons}


def register(name: str, loader: Loader) -> None:
    """Make `loader` available as data set `name` (e.g. the digits set)."""
    _REGISTRY[name] = loader


def names() -> list[str]:
    return sorted(_REGISTRY)


def as_evalset(data: object, name: str) -> EvalSet:
    """`data` as an `EvalSet`: an EvalSet, or any object or mapping with ``x_cal, y_cal,
    x_test, y_test`` (and optionally ``name``, ``source``), so that a module below
    xbarlab.network (xbarlab.nn) can provide a set without importing this one."""
    if isinstance(data, EvalSet):
        return data

    def get(key: str, default: object = None) -> object:
        if isinstance(data, dict):
            return data.get(key, default)
        return getattr(data, key, default)

    missing = [k for k in ("x_cal", "y_cal", "x_test", "y_test") if get(k) is None]
    if missing:
        raise ValueError(f"data set {name!r}: the loader returned {type(data).__name__} "
                         f"without {', '.join(missing)}")
    return EvalSet(np.asarray(get("x_cal"), dtype=np.float64),
                   np.asarray(get("y_cal")).astype(np.int64),
                   np.asarray(get("x_test"), dtype=np.float64),
                   np.asarray(get("y_test")).astype(np.int64),
                   str(get("name", name)), str(get("source", "")))


def load_dataset(name: str) -> EvalSet:
    """The evaluation set `name`: a registered name or ``module:function``; `ValueError` with
    one line when it cannot be found."""
    if name in _REGISTRY:
        return as_evalset(_REGISTRY[name](), name)
    if ":" in name:
        module, _, func = name.partition(":")
        try:
            loader = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"data set {name!r}: cannot load {func} from {module} ({exc})"
                             ) from None
        return as_evalset(loader(), name)
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(names())}, or "
                     "package.module:function returning an EvalSet")
