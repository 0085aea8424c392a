"""numba, when installed: whether it is there, and how xbarlab's scalar kernels are compiled.

Compiled kernels are cached on disk. numba checks a cached kernel against its own source file
only, while a kernel that calls kernels of another module carries their compiled code too:
after an edit of `solver_case_kernels.py`, the cached `solver_column_kernels` kernels would
still run the old code. So the cache lives in a folder named after a hash of every kernel
module's source (`kernel_cache_dir`), unless NUMBA_CACHE_DIR says where it goes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

try:
    import numba
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    AVAILABLE = False
else:
    AVAILABLE = True

#: the modules whose kernels call each other (their compiled code is cached together)
KERNEL_MODULES = ("circuit_kernels", "normal_source", "solver_case_kernels",
                  "solver_column_kernels", "solver_fronts_kernels", "solver_kernels",
                  "solver_sinh_kernels", "tio2_kernels", "jit")


def kernel_cache_dir(sources: Iterable[Path], parent: Path) -> Path:
    """`parent` / numba-<hash of the sources' contents>: a new folder whenever a kernel
    source changes."""
    digest = hashlib.sha1()
    for path in sorted(sources):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return parent / f"numba-{digest.hexdigest()[:12]}"


def _use_kernel_cache_dir() -> None:
    """Point numba's cache at `kernel_cache_dir` (and drop the folders of older sources
    next to it), where that folder can be written; else leave numba's default."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).parent
    try:
        target = kernel_cache_dir((here / f"{m}.py" for m in KERNEL_MODULES),
                                  here / "__pycache__")
        target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only install: numba's own locations
    for old in target.parent.glob("numba-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    numba.config.CACHE_DIR = str(target)  # type: ignore[attr-defined]


if AVAILABLE:
    _use_kernel_cache_dir()


def compile_kernel(func: Any, *, error_model: Literal["python", "numpy"] = "python") -> Any:
    """`func` compiled by numba (cached on disk, GIL released), or as it is without numba.

    `error_model` "numpy": a float division by zero gives inf or NaN as in numpy instead of
    raising, so a loop of divisions can vectorize (the default checks every divisor)."""
    if not AVAILABLE:
        return func
    return njit(cache=True, nogil=True, error_model=error_model)(func)
