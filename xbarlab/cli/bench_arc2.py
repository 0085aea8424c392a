"""`xbarlab bench check` for an ArC TWO bench config: mapping, limits, and the instrument."""

from __future__ import annotations

import typer
from rich.table import Table

from xbarlab.bench.arctwo_config import ArcTwoBenchConfig, load_mapping
from xbarlab.cli.console import Console

console = Console()
err_console = Console(stderr=True)


def check_arc2(cfg: ArcTwoBenchConfig, dry_run: bool) -> None:
    """Print the mapping and limits; unless `dry_run`, find the instrument (nothing is sent
    to a real one but the enumeration; an emulated one is connected to and left idle)."""
    mapping = load_mapping(cfg.mapping)
    mapping.check((cfg.rows, cfg.cols), str(cfg.mapping))
    table = Table(title=f"ArC TWO bench '{cfg.name}': {cfg.rows} x {cfg.cols}, mapping "
                        f"'{mapping.name}', idle {cfg.idle}")
    for col in ("line", "channel"):
        table.add_column(col)
    for i in range(cfg.rows):
        table.add_row(f"row {i} (word)", str(mapping.words[i]))
    for j in range(cfg.cols):
        table.add_row(f"col {j} (bit)", str(mapping.bits[j]))
    console.print(table)
    for key, value in cfg.limits.model_dump().items():
        unit = {"compliance": "A", "pulse_width_min": "s", "pulse_width_max": "s"}.get(key, "V")
        console.print(f"{key}: {value:g} {unit}", highlight=False)
    if dry_run:
        console.print("[green]config valid[/] (dry run: nothing was connected)")
        return
    if cfg.address.startswith("emulated://"):
        from xbarlab.drivers.emulators.arc2_link import RemoteInstrument

        try:
            inst = RemoteInstrument(cfg.address.removeprefix("emulated://"), timeout=5.0)
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] no emulated ArC TWO at {cfg.address}: "
                              f"{exc}", highlight=False)
            raise typer.Exit(1) from None
        inst.close()
        console.print(f"[green]emulated ArC TWO answers at {cfg.address}[/]")
        return
    from xbarlab.bench.arctwo import find_instrument_ids

    ids = find_instrument_ids()
    if int(cfg.address) not in ids:
        err_console.print(f"[bold red]error:[/] no ArC TWO with id {cfg.address} (found "
                          f"{ids or 'none'})", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]ArC TWO {cfg.address} found[/]")
