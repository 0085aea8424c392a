"""What every command shares: one-line errors, exit codes, and the rules for output files.

Exit codes (README, "Exit codes"):

- 0: done (a run that succeeded; write-verify: every cell programmed within tolerance)
- 1: failed (a fault, a refused operation, an instrument that did not answer, or a
  write-verify that left no cell within tolerance)
- 2: bad input (arguments, config files, output paths): nothing was run
- 3: partial (a write-verify that ran to its end with some cells out of tolerance)
- 130: aborted (Ctrl-C; 143 SIGTERM, 129 SIGHUP: a closed terminal)

Output files, every command alike: a file's name says its kind (a log ends in .h5, a plot in
.png, .svg or .pdf, a table in .csv, a config in .yaml); an existing file is replaced only
with ``--overwrite`` and only by a file of the same kind; a folder given as a file is refused;
missing parent folders are created.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import typer
from rich.markup import escape

from xbarlab.cli.console import Console
from xbarlab.documents import RunStatus

err_console = Console(stderr=True)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    PARTIAL = 3
    ABORTED = 130


STATUS_EXIT = {
    RunStatus.SUCCESS: ExitCode.OK, RunStatus.PROGRAMMED: ExitCode.OK,
    RunStatus.PARTIAL: ExitCode.PARTIAL, RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.ABORTED: ExitCode.ABORTED,
}

# kind -> (accepted suffixes, what the kind is called, leading bytes of such a file)
KINDS: dict[str, tuple[tuple[str, ...], str, tuple[bytes, ...]]] = {
    "log": ((".h5", ".hdf5"), "an HDF5 log", (b"\x89HDF\r\n\x1a\n",)),
    "plot": ((".png", ".svg", ".pdf"), "a plot",
             (b"\x89PNG\r\n\x1a\n", b"%PDF", b"<?xml", b"<svg")),
    "csv": ((".csv",), "a CSV table", ()),
    "yaml": ((".yaml", ".yml"), "a YAML config", ()),
}
_OTHER_MAGIC = {b"\x89HDF\r\n\x1a\n": "an HDF5 file", b"\x89PNG\r\n\x1a\n": "a PNG image",
                b"%PDF": "a PDF document", b"<?xml": "an XML/SVG file", b"<svg": "an SVG image"}


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> typer.Exit:
    """Print `message` as a one-line error; returns the exit to raise (no traceback)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


def _magic(path: Path) -> bytes | None:
    """The recognised leading bytes of an existing file (None: nothing recognised)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    return next((magic for magic in _OTHER_MAGIC if head.startswith(magic)), None)


def output_path(path: Path, kind: str, *, overwrite: bool = False, option: str = "--out",
                mkdir: bool = True) -> Path:
    """Check an output file against the rules above; raises `typer.Exit` with one line.

    Creates missing parent folders (unless `mkdir` is False, for dry checks)."""
    suffixes, what, magics = KINDS[kind]
    if path.exists() and path.is_dir():
        raise fail(f"{option} {path} is a folder; give a file name such as "
                   f"{path / ('out' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise fail(f"{option} {path}: {what} must end in {' or '.join(suffixes)}")
    if path.exists():
        if not overwrite:
            raise fail(f"{path} exists; choose another {option} or pass --overwrite")
        held = _magic(path)
        if held is not None and held not in magics:
            raise fail(f"{path} holds {_OTHER_MAGIC[held]}, not {what}: not replaced")
        if magics and held not in magics and path.stat().st_size > 0:
            raise fail(f"{path} does not hold {what}: not replaced")
    if mkdir and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"{option} {path}: cannot create folder {path.parent}: "
                       f"{exc.strerror or exc}") from None
    elif not path.parent.is_dir():
        raise fail(f"{option} {path}: {path.parent} is not a folder")
    return path


def output_folder(path: Path, *, option: str = "--out") -> Path:
    """An output folder: created with its parents if missing; a file there is refused."""
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path} is a file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{option} {path}: cannot create the folder: {exc.strerror or exc}") from None
    return path
