"""`xbarlab sweep run|check|report`: parameter sweeps of sessions on Dask."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from xbarlab.cli.console import Console
from xbarlab.config import ConfigError

console = Console()
err_console = Console(stderr=True)

sweep_app = typer.Typer(
    help="Parameter sweeps: every point an independent session, run on Dask (local or a "
         "cluster), resumable, merged into one table.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    from xbarlab.cli.common import fail

    return fail(message)


def _load(sweep_file: Path) -> tuple[Any, list[Any]]:
    from xbarlab.sweep.commands import command
    from xbarlab.sweep.spec import expand, load_sweep

    sweep, base = load_sweep(sweep_file)
    cmd = command(sweep.command)
    return cmd, expand(sweep, base, cmd.validate)


def _describe(points: list[Any]) -> str:
    from xbarlab.sweep.spec import describe_axes

    axes = describe_axes(points)
    return ", ".join(f"{k} ({len(v)})" for k, v in axes.items()) or "no axes"


@sweep_app.command("check")
def check(sweep_file: Annotated[Path, typer.Argument(help="sweep file (YAML)")]) -> None:
    """Validate every point of a sweep file and list them; runs nothing."""
    try:
        cmd, points = _load(sweep_file)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{len(points)} points of '{cmd.name}' over {_describe(points)}")
    for p in points:
        label = ", ".join(f"{k}={v}" for k, v in p.overrides.items()) or "(base)"
        console.print(f"  {p.point_id}  {label}", highlight=False)


@sweep_app.command("run")
def run(
    sweep_file: Annotated[Path, typer.Argument(help="sweep file (YAML)")],
    out: Annotated[Path, typer.Option(help="sweep folder: a log per point, results.parquet")],
    scheduler: Annotated[str | None, typer.Option(
        help="address of a running Dask scheduler (default: a local cluster)")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=1024, help="local cluster size (default: one worker per core)")] = None,
    retry_failed: Annotated[bool, typer.Option(
        help="rerun points that failed before (finished points are always skipped)")] = False,
) -> None:
    """Run every point of SWEEP_FILE (skipping points finished in an earlier run)."""
    from xbarlab.sweep.execute import SweepError, run_sweep

    try:
        cmd, points = _load(sweep_file)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    from xbarlab.cli.common import output_folder

    output_folder(out)
    try:
        shutil.copyfile(sweep_file, out / "sweep.yaml")
    except OSError as exc:
        raise _fail(f"cannot write to {out}: {exc.strerror or exc}") from None
    console.print(f"sweep: {len(points)} points of '{cmd.name}' over {_describe(points)}")
    bar = _Progress(len(points))

    def on_start(n_run: int, n_skip: int, dashboard: str | None) -> None:
        if dashboard:
            console.print(f"Dask dashboard: {dashboard}")
        if n_skip:
            console.print(f"{n_skip} points finished in an earlier run: skipped")
        bar.start(n_run)

    try:
        report = run_sweep(points, cmd.task, out, scheduler=scheduler, workers=workers,
                           retry_failed=retry_failed, on_start=on_start, on_row=bar.advance)
    except SweepError as exc:
        raise _fail(str(exc)) from None
    finally:
        bar.stop()
    n_ok = len(points) - len(report.failed)
    console.print(f"{len(report.ran)} points run, {len(report.skipped)} skipped, "
                  f"{n_ok}/{len(points)} finished, {len(report.failed)} failed "
                  f"in {report.wall_time:.1f} s; table: {report.table}")
    if report.failed:
        console.print("failed points (rerun with --retry-failed): " + ", ".join(report.failed))
        raise typer.Exit(1)


class _Progress:
    """A rich bar in a terminal; a plain line per finished point otherwise (logs, CI)."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress(BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=console)
        self._task: Any = None
        self._done = 0
        self._total = total

    def start(self, n_run: int) -> None:
        self._total = n_run
        if console.is_terminal and n_run:
            self._task = self._bar.add_task("points", total=n_run)
            self._bar.start()

    def advance(self, row: dict[str, Any]) -> None:
        self._done += 1
        if self._task is not None:
            self._bar.advance(self._task)
        else:
            console.print(f"[{self._done}/{self._total}] point {row.get('point')} "
                          f"{row.get('status')} ({row.get('wall_time_s', 0):.1f} s)",
                          highlight=False)
            console.file.flush()  # one line per point, as it happens, in logs and CI too

    def stop(self) -> None:
        if self._task is not None:
            self._bar.stop()


@sweep_app.command("report")
def report(
    folder: Annotated[Path, typer.Argument(help="sweep folder (from `sweep run`)")],
    metric: Annotated[str | None, typer.Option(
        help="result column to plot (default: in_tolerance_share, share_95..., first numeric)"
    )] = None,
    x: Annotated[str | None, typer.Option(help="axis on the x axis (a swept config path)")] = None,
    hue: Annotated[str | None, typer.Option(help="axis drawn as separate curves")] = None,
    out: Annotated[Path | None, typer.Option(help="plot file (.png, .svg, .pdf)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out plot")] = False,
) -> None:
    """Print the merged table of a sweep; plot a result against one or two axes."""
    from xbarlab.analysis.sweep_plots import choose_columns, plot_sweep, summary_table
    from xbarlab.sweep.execute import read_table

    try:
        frame = read_table(folder)
        cols = choose_columns(frame, metric, x, hue)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"sweep {folder}: {len(frame)} points; {cols.metric} per combination "
                        "(mean and std over seeds)")
    shown = summary_table(frame, cols)
    for name in shown.columns:
        table.add_column(str(name))
    for row in shown.itertuples(index=False):
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if out is not None:
        from xbarlab.cli.common import output_path

        output_path(out, "plot", overwrite=overwrite)
        console.print(f"plot: {plot_sweep(frame, cols, out)}")


def register(app: typer.Typer) -> None:
    """Add the `sweep` group to `app`."""
    app.add_typer(sweep_app, name="sweep")
