"""`xbarlab demo` and `xbarlab run`: a protocol on a backend, logged to HDF5, summarised."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from xbarlab.config import (
    ConfigError,
    LogSettings,
    PatternTarget,
    SessionConfig,
    SimConfig,
    WriteVerifyArrayProtocol,
)
from xbarlab.documents import RunStatus
from xbarlab.engine import RunEngine, RunResult
from xbarlab.protocols.registry import PROTOCOLS
from xbarlab.protocols.write_verify import ArrayOutcome
from xbarlab.sessions import build_backend, build_plan

console = Console()
err_console = Console(stderr=True)


class ProtocolName(StrEnum):
    write_verify_array = "write_verify_array"
    read_map = "read_map"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def default_out(stem: str) -> Path:
    """A fresh, timestamped output file name in the current directory."""
    return Path(f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.h5")


def execute(
    cfg: SessionConfig, out: Path, *, overwrite: bool = False, plot: Path | None = None
) -> RunResult:
    """Run the session: backend, engine, HDF5 log and progress bar; print the summary.

    With `plot`, also save a PNG overview of the logged session there.
    """
    from xbarlab.cli.progress import ProgressSubscriber
    from xbarlab.log.writer import HDF5Writer

    for path in (out, plot):
        if path is not None and path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; choose another --out or pass --overwrite")
    backend = build_backend(cfg)
    try:
        plan = build_plan(cfg, backend.shape)
        t0 = time.perf_counter()
        log = cfg.log
        with HDF5Writer(out, overwrite=overwrite, flush_interval=log.flush_interval,
                        durable=log.durable_for(cfg.backend)) as writer, \
                ProgressSubscriber(console) as bar:
            engine = RunEngine(backend, cfg.limits, [writer, bar])
            result = engine.run(
                plan, protocol=cfg.protocol.kind, config=cfg.model_dump(mode="json"),
                seed=cfg.seed,
            )
        elapsed = time.perf_counter() - t0
    finally:
        close = getattr(backend, "close", None)  # bench: safe state, then every link closed
        close() if callable(close) else backend.safe_state()
    print_summary(result, elapsed, out)
    if plot is not None:
        from xbarlab.analysis.session_plots import plot_session

        console.print(f"plot: {plot_session(out, plot)}")
    return result


def render_map(g: np.ndarray, width: int = 80) -> str:
    """A conductance map as shaded blocks (dark = low G), for a glance in the terminal: two
    characters per cell, one if that does not fit in `width`, block means of f x f cells if
    even that does not (f the smallest factor that fits)."""
    shades = " ░▒▓█"
    g = np.asarray(g, dtype=np.float64)
    per_cell = 2 if 2 * g.shape[1] <= width else 1
    f = max(1, -(-g.shape[1] // max(width, 1)))
    if f > 1:
        m, n = -(-g.shape[0] // f) * f, -(-g.shape[1] // f) * f
        padded = np.full((m, n), np.nan)
        padded[: g.shape[0], : g.shape[1]] = g
        blocks = padded.reshape(m // f, f, n // f, f)
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(blocks), axis=(1, 3))
            g = np.where(counts > 0, np.nansum(blocks, axis=(1, 3)) / np.maximum(counts, 1), np.nan)
    lo, hi = float(np.nanmin(g)), float(np.nanmax(g))
    idx = np.zeros(g.shape, dtype=int) if hi <= lo else np.clip(
        ((np.nan_to_num(g, nan=lo) - lo) / (hi - lo) * (len(shades) - 1)).round().astype(int),
        0, len(shades) - 1,
    )
    return "\n".join("".join(shades[i] * per_cell for i in row) for row in idx)


def print_summary(result: RunResult, elapsed: float, out: Path) -> None:
    """The session's outcome as a table, and the final map when there is one."""
    table = Table(title=f"run {result.run_id[:8]}", show_header=False)
    colour = "green" if result.ok else "red"
    table.add_row("status", f"[{colour}]{result.status.value}[/] {result.reason}")
    value: Any = result.value
    if isinstance(value, ArrayOutcome):
        n = len(value.cells)
        pulses = [o.n_pulses for o in (value.attempts or value.cells)]
        table.add_row("cells converged (write-verify)", f"{value.converged} / {n}")
        table.add_row("passes", f"{value.passes} ({len(value.attempts)} cell programmings)")
        table.add_row(
            f"cells in tolerance at the final read (±{value.tolerance:.1%}), after the "
            "disturb of later programming",
            f"{value.in_tolerance_final} / {n}",
        )
        table.add_row(
            "pulses", f"{sum(pulses)} (per programming: mean {np.mean(pulses):.1f}, "
            f"max {max(pulses)})"
        )
        err = np.abs(value.final - value.targets) / value.targets
        table.add_row("final |error|", f"median {np.median(err):.2%}, max {err.max():.2%}")
        failed = [o for o in value.cells if not o.converged]
        if failed:
            by_reason: dict[str, list[str]] = {}
            for o in failed:
                by_reason.setdefault(o.reason.split(":")[0], []).append(str(o.cell))
            table.add_row("not converged", "\n".join(
                f"{why}: {', '.join(cells[:8])}{' ...' if len(cells) > 8 else ''}"
                for why, cells in by_reason.items()
            ))
    elif isinstance(value, np.ndarray):
        table.add_row("conductance (uS)", f"min {value.min()*1e6:.1f}, "
                      f"median {np.median(value)*1e6:.1f}, max {value.max()*1e6:.1f}")
    table.add_row("operations logged", str(result.n_events))
    table.add_row("time", f"{elapsed:.2f} s")
    table.add_row("log", str(out))
    console.print(table)
    final = value.final if isinstance(value, ArrayOutcome) else value
    if isinstance(final, np.ndarray) and final.ndim == 2:
        console.print("final conductance map (dark = low):")
        console.print(render_map(final, console.width), highlight=False)


def _exit_code(result: RunResult) -> int:
    return {RunStatus.SUCCESS: 0, RunStatus.FAILED: 1, RunStatus.ABORTED: 130}[result.status]


def register(app: typer.Typer) -> None:
    """Add `demo` and `run` to `app`."""

    @app.command()
    def demo(
        out: Annotated[Path | None, typer.Option(help="HDF5 log (default: timestamped)")] = None,
        size: Annotated[int, typer.Option(min=2, max=256, help="array rows and columns")] = 16,
        pattern: Annotated[
            str, typer.Option(help="letter_x, checkerboard, gradient, ring")
        ] = "letter_x",
        device: Annotated[str, typer.Option(help="device preset")] = "tio2-o921c",
        passes: Annotated[
            int, typer.Option(min=1, max=20, help="re-program cells disturbed out of tolerance")
        ] = 3,
        seed: Annotated[int, typer.Option(min=0)] = 0,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
        plot: Annotated[bool, typer.Option(help="save a PNG overview next to the log")] = True,
        durable: Annotated[bool, typer.Option(
            help="fsync the log at every flush: survives a power cut (default off for sim)")
        ] = False,
    ) -> None:
        """Program a pattern into a simulated crossbar with write-verify, logged to HDF5."""
        try:
            cfg = SessionConfig(
                seed=seed,
                sim=SimConfig(rows=size, cols=size, device=device, seed=seed),
                protocol=WriteVerifyArrayProtocol(
                    target=PatternTarget(pattern=pattern), passes=passes
                ),
                log=LogSettings(durable=durable),
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
        console.print(f"xbarlab demo: write-verify of a {pattern} pattern into a simulated "
                      f"{size}x{size} crossbar ('{device}' devices)")
        out = out or default_out("xbarlab-demo")
        _run(cfg, out, overwrite, out.with_suffix(".png") if plot else None)

    @app.command()
    def run(
        protocol: Annotated[str, typer.Argument(help="the protocol to run: " + ", ".join(
            PROTOCOLS))],
        config: Annotated[Path | None, typer.Option("--config", "-c",
                                                    help="session config (YAML)")] = None,
        out: Annotated[Path | None, typer.Option(help="HDF5 log file")] = None,
        backend: Annotated[str | None, typer.Option(help="sim or bench (overrides config)")] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
        estimate: Annotated[bool, typer.Option(
            help="simulate first; print operations, time, voltages, energy; run nothing")] = False,
        resume: Annotated[Path | None, typer.Option(
            help="continue the run of this log: cells done are not programmed again")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="--estimate as JSON")] = False,
        duration: Annotated[float | None, typer.Option(
            help="retention / volatility: total time (s); the simulator advances its clock, "
            "a bench waits")] = None,
        durable: Annotated[bool | None, typer.Option(
            "--durable/--no-durable", help="fsync the log at every flush, so that it survives "
            "a power cut (default: the config's log.durable; unset: on for bench, off for sim)")
        ] = None,
    ) -> None:
        """Run PROTOCOL with the parameters of a session config file."""
        from xbarlab.cli.protocols import run_protocol  # every protocol, --estimate, --resume

        run_protocol(protocol, config, out, backend, overwrite, estimate, resume, json_out,
                     duration, durable)


def _run(cfg: SessionConfig, out: Path, overwrite: bool, plot: Path | None) -> None:
    try:
        result = execute(cfg, out, overwrite=overwrite, plot=plot)
    except (ConfigError, FileExistsError, KeyError, ValueError) as exc:
        raise fail(str(exc).strip("'\"")) from None
    if not result.ok:
        raise typer.Exit(_exit_code(result))
