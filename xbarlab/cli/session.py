"""`xbarlab demo` and `xbarlab run`: protocols on a backend, logged to HDF5."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
