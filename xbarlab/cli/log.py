"""`xbarlab log summary|export|plot|follow|verify|recover`: look into HDF5 measurement logs.

Every damaged, cut-short or foreign file ends a command with one line and exit code 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from xbarlab.cli.console import Console

if TYPE_CHECKING:
    from xbarlab.log.reader import LogReader

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

_STATUS_COLOUR = {"success": "green", "programmed": "green", "partial": "yellow", "failed": "red",
                  "aborted": "yellow", "unfinished": "yellow"}


class ExportTable(StrEnum):
    measurements = "measurements"
    events = "events"


def _fail(message: str, code: int = 2) -> typer.Exit:
    from xbarlab.cli.common import fail

    return fail(message, code)


def _open(path: Path) -> LogReader:
    from xbarlab.log.reader import LogReader

    with _log_errors():
        reader = LogReader(path)
        if not reader.started:
            reader.close()
            raise _fail(f"{path} holds no run yet (its writer never got a RunStart)")
    return reader


@contextmanager
def _log_errors() -> Iterator[None]:
    """A missing, foreign or damaged log ends the command with its one line (exit 2)."""
    from xbarlab.log.reader import LogError

    try:
        yield
    except (FileNotFoundError, LogError) as exc:
        raise _fail(str(exc)) from None


def _read(path: Path, body: Callable[[LogReader], T]) -> T:
    """Run `body` on the opened log; damaged-file errors become one line (exit 2)."""
    with _log_errors(), _open(path) as reader:
        return body(reader)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _span(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def summarise(reader: LogReader, path: Path) -> list[Table]:
    """The summary tables of a log: run, operations, final conductances."""
    import numpy as np

    from xbarlab.log import schema as sc

    info, end = reader.info, reader.end
    events = reader.events_array()
    meas = reader.measurements_array()
    mvm_rows = reader.counts()["mvm"]

    run = Table(title=f"{path.name}: run {info.run_id[:12]}", show_header=False)
    status = reader.status
    reason = f" ({end.reason})" if end is not None and end.reason else ""
    run.add_row("status", f"[{_STATUS_COLOUR.get(status, 'white')}]{status}[/]{reason}")
    run.add_row("protocol", info.protocol)
    run.add_row("array", f"{info.shape[0]} x {info.shape[1]}")
    backend = info.backend.get("backend", info.backend.get("name", "?"))
    run.add_row("backend", str(backend))
    run.add_row("seed", "-" if info.seed is None else str(info.seed))
    for key in ("sample", "operator", "notes"):
        if info.config.get(key):
            run.add_row(key, str(info.config[key]))
    run.add_row("xbarlab", f"{info.version} (git {info.git_revision or 'unknown'})")
    run.add_row("started", _when(info.start_time))
    t_last = end.time if end is not None else (
        float(events["time"][-1]) if len(events) else info.start_time)
    run.add_row("duration", _span(t_last - info.start_time)
                + ("" if end is not None else " (so far)"))
    if len(events):
        t0, t1 = float(events["time"][0]), float(events["time"][-1])
        run.add_row("events span", f"{_when(t0)} -> {_when(t1)} ({_span(t1 - t0)})")
    run.add_row("schema", f"{sc.SCHEMA_NAME} v{info.schema_version}")

    ops = Table(title="operations")
    for name in ("kind", "events", "cell measurements", "compliance hits"):
        ops.add_column(name, justify="left" if name == "kind" else "right")
    ev_counts = np.bincount(events["kind"].astype(np.int64), minlength=len(sc.KINDS))
    m_kind = meas["kind"].astype(np.int64)
    m_counts = np.bincount(m_kind, minlength=len(sc.KINDS))
    hits = np.bincount(m_kind[meas["compliance"]], minlength=len(sc.KINDS))
    for code, kind in enumerate(sc.KINDS):
        if ev_counts[code] or m_counts[code]:
            cells = str(m_counts[code]) if kind != "mvm" else f"{mvm_rows} batch rows"
            ops.add_row(kind, str(ev_counts[code]), cells, str(hits[code]))
    ops.add_row("total", str(len(events)), str(len(meas)), str(int(meas["compliance"].sum())))

    final = Table(title="final conductance per cell (last read)")
    for name in ("cells read", "min", "median", "mean", "max"):
        final.add_column(name, justify="right")
    g = reader.final_conductances()
    seen = g[np.isfinite(g)]
    m, n = info.shape
    if seen.size:
        final.add_row(f"{seen.size} / {m * n}", *(f"{x * 1e6:.2f} µS" for x in (
            seen.min(), np.median(seen), seen.mean(), seen.max())))
    else:
        final.add_row(f"0 / {m * n}", "-", "-", "-", "-")
    return [run, ops, final]


def register(app: typer.Typer) -> None:
    """Add the `log` command group to `app`."""
    log_app = typer.Typer(help="Inspect HDF5 measurement logs.", no_args_is_help=True)
    app.add_typer(log_app, name="log")

    @log_app.command()
    def summary(
        file: Annotated[Path, typer.Argument(help="HDF5 log written by xbarlab")],
    ) -> None:
        """Run metadata, status, operation counts, time span and final conductances."""
        tables = _read(file, lambda reader: summarise(reader, file))
        for table in tables:
            console.print(table)
        from xbarlab.bench.watchdog import safety_log_path

        note = safety_log_path(file)
        if note.exists():  # the safety supervisor acted after this session ended
            for line in note.read_text(encoding="utf-8").splitlines():
                console.print(line, highlight=False, soft_wrap=True)

    @log_app.command()
    def export(
        file: Annotated[Path, typer.Argument(help="HDF5 log written by xbarlab")],
        csv: Annotated[Path, typer.Option("--csv", help="CSV file to write")],
        table: Annotated[ExportTable, typer.Option(help="which table")] = ExportTable.measurements,
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace an existing CSV file")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    ) -> None:
        """Write the measurements (one row per cell measurement) or the events as CSV: units
        in the header, base SI values, times as ISO 8601 UTC."""
        from xbarlab.cli.common import output_path
        from xbarlab.cli.tables import csv_ready
        from xbarlab.log import schema as sc

        output_path(csv, "csv", overwrite=overwrite or force, option="--csv")
        frame = _read(file, lambda reader: reader.measurements()
                      if table is ExportTable.measurements else reader.events())
        units = sc.MEASUREMENT_UNITS if table is ExportTable.measurements else sc.EVENT_UNITS
        try:
            csv_ready(frame, units).to_csv(csv, index=False)
        except OSError as exc:
            raise _fail(f"cannot write {csv}: {exc}") from None
        console.print(f"wrote {len(frame)} {table.value} rows to {csv}")

    @log_app.command()
    def plot(
        file: Annotated[Path, typer.Argument(help="HDF5 log written by xbarlab")],
        out: Annotated[Path, typer.Option(help="plot file to write (.png, .svg or .pdf)")],
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace an existing plot file")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    ) -> None:
        """Save an overview: target, final and error maps, pulses per cell, traces (or the
        natural figure of a characterisation protocol)."""
        from xbarlab.analysis.protocol_plots import plot_protocol
        from xbarlab.analysis.session_plots import plot_session
        from xbarlab.cli.common import output_path

        output_path(out, "plot", overwrite=overwrite or force)
        _open(file).close()  # one clear error for a missing or foreign file
        with _log_errors():
            console.print(f"wrote {plot_protocol(file, out) or plot_session(file, out)}")

    @log_app.command()
    def follow(
        file: Annotated[Path, typer.Argument(help="HDF5 log being written")],
        timeout: Annotated[float | None, typer.Option(help="stop after this many seconds")]
        = None,
        poll: Annotated[float, typer.Option(min=0.001, help="polling interval (s)")] = 0.2,
    ) -> None:
        """Print measurements as a running session flushes them, until the run stops."""
        from xbarlab.log import schema as sc
        from xbarlab.log.reader import LogError
        from xbarlab.log.reader import follow as follow_rows

        total = 0
        try:
            for rows in follow_rows(file, poll_interval=poll, timeout=timeout):
                total += len(rows)
                last = rows[-1]
                console.print(
                    f"{total:>10} rows  last: {sc.KINDS[int(last['kind'])]:<5} "
                    f"({int(last['row'])}, {int(last['col'])}) {last['voltage']:+.3f} V  "
                    f"G = {last['conductance'] * 1e6:.2f} µS", highlight=False)
                if console.quiet:  # the reader went away (`| head`): nobody to follow for
                    return
        except (FileNotFoundError, LogError) as exc:
            raise _fail(str(exc)) from None
        status, writer = _read(file, lambda reader: (reader.status, reader.writer))
        console.print(f"{file}: {status}, {total} rows")
        if status == "unfinished" and writer == "gone":
            raise _fail(f"{file}: its writer is gone without a run stop (killed or crashed); "
                        f"`xbarlab log recover {file}` makes a finished copy", 1)

    @log_app.command()
    def verify(
        file: Annotated[Path, typer.Argument(help="HDF5 log written by xbarlab")],
    ) -> None:
        """Check structure, checksums, row counts and run start/stop consistency.

        Exit 0: sound (a complete run, or a salvaged copy); 1: sound but unfinished (its
        writer is running or was killed); 2: damaged (one line per problem).
        """
        from xbarlab.log.verify import verify as check

        report = check(file)
        if report.no_run or report.not_a_log:  # nothing in it to recover
            raise _fail(f"{file}: {report.problems[0]}")
        if report.problems:
            err_console.print(f"[bold red]error:[/] {file}: damaged: {report.problems[0]}"
                              + (f" (and {len(report.problems) - 1} more problems, listed "
                                 "below)" if len(report.problems) > 1 else "")
                              + f"; `xbarlab log recover {file}` salvages every intact block",
                              highlight=False, soft_wrap=True)
            for line in report.problems[1:]:
                err_console.print(f"  - {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        what = "sound" if report.finished else (
            "sound (salvaged copy)" if report.recovered else "sound so far, unfinished")
        console.print(f"{file}: {what}: run {report.status}; " + "; ".join(report.notes),
                      highlight=False, soft_wrap=True)
        raise typer.Exit(report.exit_code)

    @log_app.command()
    def recover(
        file: Annotated[Path, typer.Argument(help="damaged or cut-short log, or one whose "
                                                  "writer was killed")],
        out: Annotated[Path | None, typer.Option(
            help="new log to write (default: FILE with .recovered.h5)")] = None,
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace an existing --out log")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    ) -> None:
        """Copy every intact block of FILE into a new, sound log; say exactly what was lost.

        FILE itself is never modified.
        """
        from xbarlab.cli.common import output_path
        from xbarlab.log.errors import LogError
        from xbarlab.log.salvage import salvage

        if file.is_dir():
            raise _fail(f"{file} is a directory; give the damaged log file (.h5)")
        target = out or file.with_name(file.name.removesuffix(".h5") + ".recovered.h5")
        if target.resolve() == file.resolve():
            raise _fail("--out must differ from FILE: recover never modifies the damaged file")
        output_path(target, "log", overwrite=overwrite or force)
        try:
            report = salvage(file, target, overwrite=overwrite or force)
        except (FileNotFoundError, FileExistsError, LogError) as exc:
            raise _fail(str(exc)) from None
        for line in report.lines():
            console.print(line, highlight=False, soft_wrap=True)
