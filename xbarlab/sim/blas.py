"""One BLAS thread for the simulator's dense kernels.

The solver's dense work is many small or thin blocks (frontal matrices, Gram matrices,
batched port systems). Threaded OpenBLAS gains nothing there and, as soon as another process
shares the cores, its spinning threads make calls several times slower (measured: a
16384 x 256 QR 0.29 s on one thread, 3.6-4.5 s threaded on two shared cores).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed BLAS/LAPACK calls on one thread (restored afterwards)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
