"""xbarlab: program passive TiO2 ReRAM crossbars on the bench and in simulation, one code path."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["__version__"]


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xbarlab")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    """`__version__` is looked up on first use: importing xbarlab stays instant (a Ctrl-C
    while the command line starts then lands in code that handles it)."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'xbarlab' has no attribute {name!r}")
