"""`xbarlab device list` and `xbarlab device plot PRESET --out FILE.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xbarlab.cli.console import Console

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    from xbarlab.cli.common import fail

    return fail(message, code)


def register(app: typer.Typer) -> None:
    """Add the `device` command group to `app`."""
    device_app = typer.Typer(help="Device parameter presets.", no_args_is_help=True)
    app.add_typer(device_app, name="device")

    @device_app.command("list")
    def list_() -> None:
        """The known device presets: name, kind and description."""
        from xbarlab.sim.presets import PresetError, list_presets, load_preset

        table = Table("preset", "kind", "description")
        for name in list_presets():
            if name == "simple":
                table.add_row(name, "built-in", "generic bipolar ReRAM, linear I-V")
                continue
            try:
                p = load_preset(name)
            except PresetError as exc:
                table.add_row(name, "[red]invalid[/]", str(exc))
                continue
            table.add_row(name, p.kind, p.description)
        console.print(table)

    @device_app.command()
    def plot(
        preset: Annotated[str, typer.Argument(help="preset name (see `xbarlab device list`)")],
        out: Annotated[Path, typer.Option("--out", help="plot file (.png, .svg or .pdf)")],
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace an existing plot file")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    ) -> None:
        """Pulse response (SET then RESET trains) and I-V of a compact preset, or the
        tuning and disturb statistics of a statistical one, saved as PNG, SVG or PDF."""
        from xbarlab.analysis.device_plots import plot_preset
        from xbarlab.cli.common import output_path
        from xbarlab.sim.presets import PresetError

        output_path(out, "plot", overwrite=overwrite or force)
        try:
            path = plot_preset(preset, out)
        except PresetError as exc:
            raise _fail(str(exc)) from None
        console.print(f"wrote {path}")
