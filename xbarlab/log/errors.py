"""Errors of the log readers: each carries one line a person can act on."""

from __future__ import annotations


class LogError(OSError):
    """A log file that cannot be opened or is not an xbarlab log."""


class LogDamaged(LogError):
    """A damaged log: cut short, a checksum that does not match, inconsistent tables."""


class NotALog(LogError):
    """Not a log at all: a directory, an empty file, a file with no HDF5 structure in it."""


class NoRunLogged(LogError):
    """A log whose writer stopped before the run start: nothing was measured, nothing to salvage."""


class LogWriteFailed(LogError):
    """The file system refused a write of the log (disk or quota full, a file-size limit, an
    I/O error): the run stops; what was flushed before stays in the file."""


class LogSpaceLow(LogError):
    """The log's disk has less free space than the writer keeps in reserve: the run stops
    while the log can still end sound."""


class LogInUse(LogError, FileExistsError):
    """Another writer is filling this log (a running session): it is neither overwritten nor
    replaced, whatever `overwrite` says."""


class LogCreateFailed(LogError):
    """The log file cannot be created (a folder that is not writable, a read-only disk): an
    output path the user must change; nothing was run."""
