"""The `xbarlab` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="xbarlab",
    help="Program passive TiO2 ReRAM crossbars, on the bench or in simulation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Attach the command groups (imported here so `--help` stays fast and torch stays lazy)."""
    from xbarlab.cli import bench, device, emulate, log, reproduce, session, sweep

    session.register(app)
    log.register(app)
    device.register(app)
    bench.register(app)
    reproduce.register(app)
    emulate.register(app)
    sweep.register(app)


_register()


if __name__ == "__main__":  # pragma: no cover
    app()
