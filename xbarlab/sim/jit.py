"""numba, when installed: whether it is there, and how xbarlab's scalar kernels are compiled."""

from __future__ import annotations

from typing import Any

try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    AVAILABLE = False
else:
    AVAILABLE = True


def compile_kernel(func: Any) -> Any:
    """`func` compiled by numba (cached on disk, GIL released), or as it is without numba."""
    return njit(cache=True, nogil=True)(func) if AVAILABLE else func
