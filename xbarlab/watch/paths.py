"""Check the LOG argument of `xbarlab watch` before serving (one clear line per problem)."""

from __future__ import annotations

from pathlib import Path

from xbarlab.log.reader import LogError, LogReader

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LOG_SUFFIXES = (".h5", ".hdf5")


def log_path_problem(path: Path) -> str | None:
    """Why `path` cannot be watched, or None. A file that does not exist yet is fine (the page
    waits for it) if its folder exists and its name is a log's; an existing file must be an
    xbarlab log (HDF5 signature, then the schema attribute), or still be created."""
    if path.is_dir():
        return f"{path} is a directory; give the log file (.h5)"
    if not path.exists():
        if path.suffix.lower() not in LOG_SUFFIXES:
            return f"{path}: a log file name ends in .h5 (got {path.suffix or 'no suffix'!r})"
        if not path.parent.is_dir():
            return f"{path}: folder {path.parent} does not exist"
        return None
    try:
        with path.open("rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if head and len(head) == len(HDF5_SIGNATURE) and head != HDF5_SIGNATURE:
        return f"{path} is not an HDF5 file, so not an xbarlab log"
    try:
        LogReader(path).close()
    except LogError as exc:
        text = str(exc)
        if "not an xbarlab log" in text or "schema version" in text:
            return text
    except (FileNotFoundError, OSError):
        return None  # being created or replaced: the page waits
    return None
