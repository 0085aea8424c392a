"""`xbarlab bench check CONFIG [--dry-run]`: validate a bench config, check the instruments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xbarlab.bench.config import BenchConfig
from xbarlab.cli.common import ExitCode, fail
from xbarlab.cli.console import Console
from xbarlab.config import ConfigError
from xbarlab.units import si

console = Console()
err_console = Console(stderr=True)


def _tables(cfg: BenchConfig) -> list[Table]:
    inst = Table(title=f"bench '{cfg.name}': {cfg.rows} x {cfg.cols} array")
    for col in ("instrument", "driver", "address", "VISA library", "identity must contain"):
        inst.add_column(col, overflow="fold")
    for name, ic in cfg.instruments.items():
        lib = "(serial)" if ic.driver == "serial_board" else ic.visa_library
        inst.add_row(name, ic.driver, ic.address, lib, ic.identity)

    roles = Table(title="roles")
    roles.add_column("role")
    roles.add_column("instrument")
    roles.add_column("matrix row")
    for role in ("drive", "sense", "bias_row", "bias_col", "pulse", "matrix", "board"):
        ref = getattr(cfg.roles, role)
        bus = getattr(cfg.pins, role, None) if cfg.pins is not None else None
        roles.add_row(role, ref or "-", bus or "-")

    limits = Table(title="limits (refused beyond, never clamped)")
    limits.add_column("limit")
    limits.add_column("value", justify="right")
    units = {"compliance": "A", "pulse_width_min": "s", "pulse_width_max": "s"}
    for key, value in cfg.limits.model_dump().items():
        limits.add_row(key, si(value, units.get(key, "V"), signed=key.startswith("pulse_v")))
    tables = [inst, roles, limits]

    if cfg.pins is not None:
        p = cfg.pins
        pins = Table(title="pin map (crossbar line -> matrix slot/column)")
        pins.add_column("line")
        pins.add_column("slot", justify="right")
        pins.add_column("matrix column", justify="right")
        for i, (slot, pin) in enumerate(zip(p.line_slots("row"), p.rows, strict=True)):
            pins.add_row(f"row {i}", str(slot), f"{pin:02d}")
        for j, (slot, pin) in enumerate(zip(p.line_slots("col"), p.cols, strict=True)):
            pins.add_row(f"col {j}", str(slot), f"{pin:02d}")
        tables.append(pins)
    return tables


def register(app: typer.Typer) -> None:
    """Add the `bench` command group to `app`."""
    bench_app = typer.Typer(help="Bench instruments: check a bench configuration, find "
                                 "instruments.",
                            no_args_is_help=True)

    @bench_app.command("check")
    def check(
        config: Annotated[Path, typer.Argument(help="bench config (YAML)")],
        dry_run: Annotated[bool, typer.Option("--dry-run",
                                              help="validate only; connect to nothing")] = False,
    ) -> None:
        """Validate CONFIG; unless --dry-run, connect to every instrument and check its
        identity (only *IDN? is sent: no output is switched on, no relay is touched)."""
        from xbarlab.bench.arctwo_config import ArcTwoBenchConfig
        from xbarlab.drivers.registry import load_bench_config

        try:
            any_cfg = load_bench_config(config)
            if isinstance(any_cfg, ArcTwoBenchConfig):
                from xbarlab.cli.bench_arc2 import check_arc2

                check_arc2(any_cfg, dry_run)
                return
            cfg = any_cfg
        except ConfigError as exc:
            raise fail(str(exc)) from None
        for table in _tables(cfg):
            console.print(table)
        for names in cfg.look_alikes():
            identity = cfg.instruments[names[0]].identity
            every = "both" if len(names) == 2 else "all"
            err_console.print(
                f"[bold yellow]warning:[/] {' and '.join(names)} {every} expect the identity "
                f"{identity!r}: the check cannot tell them apart, so swapped addresses would go "
                f"unnoticed; add each one's serial number (e.g. '{identity},<serial>', from "
                "`xbarlab bench discover`)", highlight=False, soft_wrap=True)
        if dry_run:
            console.print("[green]config valid[/] (dry run: nothing was connected)")
            return
        from xbarlab.drivers.registry import check_identities

        reports = check_identities(cfg)
        ids = Table(title="identities")
        for col in ("instrument", "address", "identity", "result"):
            ids.add_column(col, overflow="fold")
        for r in reports:
            result = "[green]ok[/]" if r.ok else f"[red]{r.problem}[/]"
            ids.add_row(r.name, r.address, r.identity or "-", result)
        console.print(ids)
        bad = [r.name for r in reports if not r.ok]
        if bad:
            raise fail(f"instruments failed the check: {', '.join(bad)}", ExitCode.FAILED)
        console.print("[green]every instrument answered with the expected identity[/]")

    @bench_app.command("discover")
    def discover(
        visa_library: Annotated[str, typer.Option(
            "--visa-library", help="pyvisa library: '@py' (pyvisa-py), '@ivi' (vendor VISA), "
                                   "'@sim' or 'file.yaml@sim' (pyvisa-sim)")] = "@py",
        address: Annotated[list[str] | None, typer.Option(
            "--address", help="also ask this resource (e.g. a TCPIP socket, which is never "
                              "listed); repeatable")] = None,
        timeout: Annotated[float, typer.Option(min=0.05, max=30.0,
                                               help="seconds per resource")] = 1.0,
        no_list: Annotated[bool, typer.Option("--no-list",
                                              help="ask only the --address resources")] = False,
    ) -> None:
        """List the VISA resources the library sees and each one's identity (only *IDN? is
        sent); one line per resource, a silent one ends after the timeout."""
        from xbarlab.drivers.discover import DiscoveryError
        from xbarlab.drivers.discover import discover as find

        if no_list and not address:
            err_console.print("[bold red]error:[/] --no-list needs at least one --address",
                              highlight=False)
            raise typer.Exit(2)
        answered = total = 0
        try:
            for found in find(visa_library, timeout, address or [], list_all=not no_list):
                total += 1
                if found.identity is not None:
                    answered += 1
                    typer.echo(f"{found.resource}  {found.identity}")
                else:
                    typer.echo(f"{found.resource}  (no identity: {found.problem})")
        except DiscoveryError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        if total == 0:
            typer.echo(f"no VISA resources found (library {visa_library}); TCPIP sockets are "
                       "never listed: name them with --address")
            return
        typer.echo(f"{answered} of {total} resources answered *IDN?")

    app.add_typer(bench_app, name="bench")
