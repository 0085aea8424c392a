"""A numpy `Generator` that compiled kernels draw standard normals from, in its own stream.

numba compiles `Generator.standard_normal` with numpy's algorithm on the generator's own bit
generator, so a kernel's draws are the numbers numpy would have drawn, in the same stream as
the draws made from Python on the same generator. Handing a `Generator` to a kernel costs a
few microseconds per call (numba reads its bit generator's interface each time), so it is
wrapped once in a `NormalSource` (a numba structref holding it; the generator stays alive
with it) that kernels take at the cost of a pointer. Used by the devices' pulse update
(`tio2_kernels.pulse`): its normals are drawn inside the kernel, between the candidate scan
and the update, instead of by two numpy calls in between three kernels.

A kernel draws without the generator's lock (and with the GIL released): like the device
state it updates, a generator must not be drawn from by two threads at once.

Without numba `AVAILABLE` is False and `source_of` gives None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.sim.jit import AVAILABLE

__all__ = ["AVAILABLE", "source_of"]

if AVAILABLE:
    import numba
    from numba import njit
    from numba.core import types
    from numba.experimental import structref

    @structref.register
    class _SourceType(types.StructRef):
        def preprocess_fields(self, fields: Any) -> Any:
            return tuple((name, types.unliteral(typ)) for name, typ in fields)

    class NormalSource(structref.StructRefProxy):
        """A `Generator` wrapped for kernels (`source_of`)."""

    structref.define_boxing(_SourceType, NormalSource)
    _SOURCE = _SourceType([("rng", numba.typeof(np.random.default_rng(0)))])

    @njit(cache=True)
    def _new_source(rng):  # type: ignore[no-untyped-def]
        source = structref.new(_SOURCE)  # type: ignore[call-arg,var-annotated]
        source.rng = rng
        return source

    @njit(cache=True)
    def _fill(source, out):  # type: ignore[no-untyped-def]
        for k in range(out.shape[0]):
            out[k] = source.rng.standard_normal()


def source_of(rng: object) -> Any:
    """`rng` wrapped for kernels, None where that cannot be (no numba, or not a numpy
    `Generator`)."""
    if not AVAILABLE or type(rng) is not np.random.Generator:
        return None
    return _new_source(rng)


def standard_normals(source: Any, n: int) -> np.ndarray:
    """n standard normals drawn from `source` in a kernel (what `rng.standard_normal(n)`
    would give, from the same stream)."""
    out = np.empty(n)
    _fill(source, out)
    return out
