"""Read map: the apparent conductance of every cell of the array."""

from __future__ import annotations

from xbarlab.crossbar import BiasScheme, ReadResult
from xbarlab.messages import Plan, Read


def read_map(
    shape: tuple[int, int], v_read: float = 0.2, scheme: BiasScheme = BiasScheme.GROUNDED
) -> Plan:
    """Read every cell once at `v_read`; returns the (M, N) map of I / V in siemens."""
    r: ReadResult = yield Read(None, v_read, scheme, tag="read_map")
    if len(r.cells) != shape[0] * shape[1]:
        raise ValueError(f"read map expected {shape[0] * shape[1]} cells, got {len(r.cells)}")
    return r.conductances.reshape(shape)
