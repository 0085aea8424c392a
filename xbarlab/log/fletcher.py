"""HDF5's fletcher32 checksum computed with numpy, for chunks written with `write_direct_chunk`.

A direct chunk write bypasses HDF5's filter pipeline, so a dataset with the fletcher32 filter
must receive each chunk as the filter would have produced it: the bytes followed by their
checksum (4 bytes, little-endian). HDF5 checks it on every read, as for chunks it filtered
itself. The checksum (HDF5 source, H5checksum.c ``H5_checksum_fletcher32``; HDF5 User's Guide,
"Fletcher32 checksum" filter) sums the data as big-endian 16-bit words (an odd last byte is
the high byte of a last word): ``sum1 = sum of words``, ``sum2 = sum of the running sum1``,
both kept modulo 65535 by end-around carry, which gives 0 only for a sum of 0 and 65535 for
other multiples of 65535. The result is ``sum2 << 16 | sum1``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_BE16 = np.dtype(">u2")


def _fold(total: int) -> int:
    return 0 if total == 0 else (total - 1) % 65535 + 1


def fletcher32(data: bytes | memoryview | np.ndarray[Any, Any]) -> int:
    """HDF5's fletcher32 of `data` (any contiguous bytes)."""
    raw = np.ascontiguousarray(data).tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if len(raw) % 2:
        raw += b"\0"
    words = np.frombuffer(raw, dtype=_BE16)
    if not len(words):
        return 0
    running = np.cumsum(words, dtype=np.int64)  # sum1 after each word (exact integers)
    s1, s2 = int(running[-1]), int(running.sum())
    return _fold(s2) << 16 | _fold(s1)


def with_checksum(data: bytes | np.ndarray[Any, Any]) -> bytes:
    """The chunk as HDF5's fletcher32 filter stores it: the bytes, then their checksum."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return raw + struct.pack("<I", fletcher32(raw))
