"""The first 48 bytes of an HDF5 file, read without the HDF5 library.

xbarlab logs use the version 2/3 superblock (HDF5 1.10 format): signature, version, offset and
length sizes, the file consistency flags (bit 0: open for write, bit 2: SWMR writer), the base,
extension, end-of-file and root object header addresses, and a Jenkins lookup3 checksum of the
preceding bytes (HDF5 File Format Specification 3.0, section II.A "Disk Format: Level 0A -
Format Signature and Superblock"; the checksum is section III.F "Jenkins' lookup3").

Reading it ourselves answers, in microseconds and with no risk of a hang inside HDF5: is this
an HDF5 file at all, is it intact, was its writer still running (or killed), and is it shorter
than the end of file it recorded (a truncated copy)?
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
SIZE: Final = 48
ROOT_HEADER: Final = b"OHDR"
"""A version 2 object header's signature: xbarlab's root group starts right after the
superblock, so a file whose first bytes were overwritten still shows it at byte 48."""
"""Bytes of a version 2/3 superblock with 8-byte addresses."""
FLAG_WRITE: Final = 0x01
FLAG_SWMR_WRITE: Final = 0x04
_MASK: Final = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` of `data`, the checksum of HDF5 metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _MASK
    if n == 0:
        return c
    padded = data + b"\0" * (-n % 12)
    blocks = len(padded) // 12
    for i in range(blocks):
        x, y, z = struct.unpack_from("<3I", padded, 12 * i)
        a, b, c = (a + x) & _MASK, (b + y) & _MASK, (c + z) & _MASK
        if i == blocks - 1:  # the last (possibly partial) block gets the final mix
            c ^= b; c = (c - _rot(b, 14)) & _MASK  # noqa: E702
            a ^= c; a = (a - _rot(c, 11)) & _MASK  # noqa: E702
            b ^= a; b = (b - _rot(a, 25)) & _MASK  # noqa: E702
            c ^= b; c = (c - _rot(b, 16)) & _MASK  # noqa: E702
            a ^= c; a = (a - _rot(c, 4)) & _MASK  # noqa: E702
            b ^= a; b = (b - _rot(a, 14)) & _MASK  # noqa: E702
            c ^= b; c = (c - _rot(b, 24)) & _MASK  # noqa: E702
            return c
        a = (a - c) & _MASK; a ^= _rot(c, 4); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 6); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 8); b = (b + a) & _MASK  # noqa: E702
        a = (a - c) & _MASK; a ^= _rot(c, 16); c = (c + b) & _MASK  # noqa: E702
        b = (b - a) & _MASK; b ^= _rot(a, 19); a = (a + c) & _MASK  # noqa: E702
        c = (c - b) & _MASK; c ^= _rot(b, 4); b = (b + a) & _MASK  # noqa: E702
    return c  # pragma: no cover - the loop always returns


class NotHdf5Error(ValueError):
    """The file does not start with an intact HDF5 superblock xbarlab can read."""


class NoHdf5Signature(NotHdf5Error):
    """Not an HDF5 file at all: no signature, and no HDF5 structure where xbarlab puts it."""


@dataclass(frozen=True, slots=True)
class Superblock:
    """What the superblock says, next to the file's real size."""

    version: int
    flags: int
    eof: int  # end-of-file address the library recorded at its last flush
    root: int  # address of the root group's object header
    size: int  # bytes on disk now

    @property
    def writer_open(self) -> bool:
        """A writer had the file open for writing (still running, or killed)."""
        return bool(self.flags & (FLAG_WRITE | FLAG_SWMR_WRITE))

    @property
    def truncated(self) -> bool:
        """The file is shorter than the end of file recorded at the last flush."""
        return self.size < self.eof


def read_superblock(path: str | os.PathLike[str]) -> Superblock:
    """Parse and check the superblock of `path`; `NotHdf5Error` with the reason otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(SIZE + 4)  # and the 4 bytes after it: the root's header signature
        size = os.fstat(fh.fileno()).st_size
    if len(head) < 9 or head[:8] != SIGNATURE:
        if head[SIZE:SIZE + 4] == ROOT_HEADER:
            raise NotHdf5Error("superblock damaged (its HDF5 signature is overwritten; the "
                               "root object header follows at byte 48, as in every xbarlab log)")
        what = "empty" if size == 0 else f"{size} bytes"
        raise NoHdf5Signature(f"not an HDF5 file ({what}, no HDF5 signature at its start)")
    version = head[8]
    if version in (0, 1):  # older layout, never written by xbarlab: HDF5 checks it on open
        return Superblock(version, 0, size, 0, size)
    if version not in (2, 3):
        raise NotHdf5Error(f"HDF5 superblock version {version} is unknown (damaged?)")
    if len(head) < SIZE:
        raise NotHdf5Error(f"only {size} bytes: the superblock itself is cut short")
    if head[9] != 8 or head[10] != 8:
        raise NotHdf5Error(f"superblock damaged (address size {head[9]}, length size "
                           f"{head[10]}; expected 8 and 8)")
    base, _ext, eof, root, stored = struct.unpack_from("<4QI", head, 12)
    if lookup3(head[:44]) != stored:
        raise NotHdf5Error("superblock damaged (checksum mismatch in the first 48 bytes)")
    if base != 0:
        raise NotHdf5Error(f"superblock base address {base} (xbarlab writes 0)")
    return Superblock(version, head[11], eof, root, size)

