"""`xbarlab demo` and `xbarlab run`: a protocol on a backend, logged to HDF5, summarised."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from xbarlab import sessions
from xbarlab.bench.lock import BenchInUse
from xbarlab.cli.common import STATUS_EXIT, ExitCode, fail, output_path
from xbarlab.cli.console import Console
from xbarlab.cli.validate import device_names, device_range
from xbarlab.config import (
    ConfigError,
    LogSettings,
    PatternTarget,
    ReadMapProtocol,
    SessionConfig,
    SimConfig,
    WriteVerifyArrayProtocol,
    load_yaml,
    validate_config,
)
from xbarlab.crossbar import Crossbar
from xbarlab.documents import RunStatus
from xbarlab.engine import RunAborted, RunEngine, RunResult
from xbarlab.interrupts import begin_cleanup, interruptible
from xbarlab.log.errors import LogCreateFailed
from xbarlab.protocols.registry import PROTOCOLS
from xbarlab.protocols.write_verify import ArrayOutcome
from xbarlab.sessions import build_plan
from xbarlab.units import duration, percent, si

console = Console()
err_console = Console(stderr=True)

_STATUS_COLOUR = {RunStatus.SUCCESS: "green", RunStatus.PROGRAMMED: "green",
                  RunStatus.PARTIAL: "yellow", RunStatus.FAILED: "red",
                  RunStatus.ABORTED: "yellow"}


class ProtocolName(StrEnum):
    write_verify_array = "write_verify_array"
    read_map = "read_map"


class Pattern(StrEnum):
    letter_x = "letter_x"
    checkerboard = "checkerboard"
    gradient = "gradient"
    ring = "ring"


class Backend(StrEnum):
    sim = "sim"
    bench = "bench"


class BackendUnavailable(RuntimeError):
    """The backend could not be opened (an instrument unreachable, a link refused)."""


def brief(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters for a summary (the log keeps the whole reason)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "… (whole text: xbarlab log summary)"


def default_out(stem: str) -> Path:
    """A fresh, timestamped output file name in the current directory."""
    return Path(f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.h5")


# Listing the device models needs every preset parsed (about a second): --help names the
# usual ones, and a wrong name gets the full list.
DEVICE_HELP = "tio2-o921c (default), simple or another compact preset (xbarlab device list)"


def build_backend(cfg: SessionConfig) -> Crossbar:
    """The `Crossbar` backend a session config asks for; a bench that cannot be opened is
    `BackendUnavailable` with one line naming the bench config."""
    if cfg.backend == "sim" or cfg.bench is None:
        return sessions.build_backend(cfg)
    try:
        return sessions.build_backend(cfg)
    except ConfigError:
        raise
    except BenchInUse as exc:
        raise BackendUnavailable(f"cannot open the bench of {cfg.bench}: {exc}") from None
    except Exception as exc:  # any driver / transport / VISA failure while connecting
        raise BackendUnavailable(
            f"cannot open the bench of {cfg.bench}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'} "
            "(instruments on and reachable? `xbarlab bench check` tells which one)"
        ) from None


def check_session_fits(cfg: SessionConfig, backend: Crossbar) -> None:
    """Refuse, before the first operation, a session whose pulses or biasing the backend
    cannot produce (`ConfigError`, one line per problem naming what to change)."""
    from xbarlab.bench.preflight import capability_of, session_problems

    proto = cfg.protocol
    if not isinstance(proto, WriteVerifyArrayProtocol):
        return
    p = proto.params
    limits = [("session", cfg.limits)]
    bench_limits = getattr(backend, "limits", None)
    if cfg.backend == "bench" and bench_limits is not None:
        limits.append(("bench", bench_limits))
    problems = session_problems([p.width], p.pulse_scheme, p.read_scheme,
                                capability_of(backend), limits)
    if cfg.backend == "sim" and cfg.sim.device == "tio2-o921c":
        from xbarlab.bench.preflight import seconds
        from xbarlab.sim.tio2 import width_regime

        regime = width_regime(p.width)
        if regime != "calibrated":
            console.print(f"note: {seconds(p.width)} pulses on tio2-o921c are {regime}: its "
                          "rates are calibrated at ~1 µs (data/devices/README.md, Pulse width)",
                          highlight=False)
    if problems:
        where = f"bench {cfg.bench}" if cfg.backend == "bench" else "the simulator"
        raise ConfigError(f"this session cannot run on {where}:\n  " + "\n  ".join(problems))


def _close(backend: Crossbar) -> str:
    """Put the backend in its safe state and close it; the failure, if any, as one line (the
    caller prints it unless the run's own safe state already reported it)."""
    close = getattr(backend, "close", None)  # bench: safe state, then every link closed
    try:
        close() if callable(close) else backend.safe_state()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def execute(
    cfg: SessionConfig, out: Path, *, overwrite: bool = False, plot: Path | None = None
) -> RunResult:
    """Run the session: backend, engine, HDF5 log and progress; print the summary.

    With `plot`, also save an overview of the logged session there (PNG, SVG or PDF).
    Output paths must have passed `output_path` (the CLI does it).
    """
    from xbarlab.cli.progress import ProgressSubscriber
    from xbarlab.log.writer import HDF5Writer

    # Ctrl-C / SIGTERM raise until the run's cleanup begins, then wait for the safe state, the
    # log, the closed links and the summary (said so on stderr)
    with interruptible(RunAborted):
        backend = build_backend(cfg)
        supervisor = getattr(backend, "supervisor", None)
        if supervisor is not None:
            supervisor.log_to(out)  # its note goes next to the HDF5 log
        closing = ""
        try:
            check_session_fits(cfg, backend)
            plan = build_plan(cfg, backend.shape)
            t0 = time.perf_counter()
            what = ("programming" if isinstance(cfg.protocol, WriteVerifyArrayProtocol)
                    else "reading")
            options = cfg.log.writer_options(cfg.backend)
            with HDF5Writer(out, overwrite=overwrite, **options) as writer, \
                    ProgressSubscriber(console, what) as bar:
                engine = RunEngine(backend, cfg.limits, [writer, bar])
                result = engine.run(
                    plan, protocol=cfg.protocol.kind, config=cfg.model_dump(mode="json"),
                    seed=cfg.seed,
                )
            elapsed = time.perf_counter() - t0
        finally:
            begin_cleanup()
            closing = _close(backend)
        # still shielded: a late signal does not cut the summary off
        if closing and "safe state" not in result.reason:
            err_console.print(f"[bold yellow]warning:[/] closing the backend: "
                              f"{escape(brief(closing))}", highlight=False, soft_wrap=True)
        if supervisor is not None and "safe state" in result.reason:
            err_console.print(
                "[bold red]error:[/] the safe state was not confirmed by every instrument: "
                "check the bench before touching it. The safety supervisor keeps trying (up to 10 "
                "min) on "
                f"fresh links and notes the outcome in {out.name}.safety.txt", highlight=False,
                soft_wrap=True)
        reach = device_range(cfg.sim.device) if cfg.backend == "sim" else None
        hits = [f"{bar.compliance[k]} of {bar.operations[k]} {k}s" for k in ("pulse", "read")
                if bar.compliance[k]]
        print_summary(
            result, elapsed, out, g_device_max=None if reach is None else 1.25 * reach[1],
            compliance=(f"{', '.join(hits)} hit the current compliance"
                        + (f" ({si(cfg.limits.compliance, 'A')})" if cfg.backend == "sim"
                           else "")
                        + ": the device saw less than the set voltage; a read there gives no "
                        "conductance") if hits else "")
        sys.stdout.flush()
    say_if_deleted(writer, out)
    if plot is not None and writer.failed is None:  # a log the disk refused: only `recover`
        from xbarlab.analysis.session_plots import plot_session

        try:
            console.print(f"plot: {plot_session(out, plot)}")
        except Exception as exc:  # the run and its log stand; its exit code says how it went
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            err_console.print(f"[bold yellow]warning:[/] the plot {plot} was not saved: "
                              f"{escape(str(reason))}; `xbarlab log plot {out} --out F.png` "
                              "draws it from the log", highlight=False, soft_wrap=True)
    return result


def say_if_deleted(writer: Any, out: Path) -> None:
    """A log deleted while the run wrote it: where it was copied back (or why not)."""
    if writer.restored is not None:
        err_console.print(f"[bold yellow]warning:[/] {out} was deleted while the run wrote it; "
                          f"the complete log was copied back to {writer.restored}",
                          highlight=False, soft_wrap=True)
    elif writer.lost_on_delete:
        err_console.print(f"[bold red]error:[/] {out} was deleted while the run wrote it, and "
                          f"could not be copied back: {escape(writer.lost_on_delete)}",
                          highlight=False, soft_wrap=True)


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


def programming_rows(value: ArrayOutcome) -> list[tuple[str, str]]:
    """How well a write-verify programmed the array, in plain words (label, text) per row."""
    n = len(value.cells)
    tol = value.tolerance
    idx = tuple(np.array([o.cell for o in value.cells]).T)
    targets, final = value.targets[idx], value.final[idx]
    err = (final - targets) / targets
    inside = int(np.sum(np.abs(err) <= tol))
    abs_err = np.abs(err)
    worst = int(np.argmax(abs_err))
    worst_cell = value.cells[worst].cell
    stuck = sum(o.reason.startswith("stuck") for o in value.cells)
    rows = [
        ("error at the end",
         f"median {percent(float(np.median(abs_err)))}, 90 % of cells within "
         f"{percent(float(np.percentile(abs_err, 90)))}, worst {percent(float(abs_err[worst]))} "
         f"(cell {worst_cell[0]}, {worst_cell[1]}); tolerance ±{tol * 100:.3g} %"),
        ("above / below target",
         f"{int(np.sum(err > 0))} above, {int(np.sum(err < 0))} below (median "
         f"{si(float(np.median(final - targets)), 'S', signed=True)})"),
        ("converged during programming",
         f"{value.converged} / {n} cells reached the tolerance band in their own write-verify; "
         "programming the cells after them disturbs them (half-selected pulses), so the final "
         "read is the figure that counts"),
    ]
    plain = (f"{inside} of {n} cells ({percent(inside / n, 0)}) ended within "
             f"±{tol * 100:.3g} % of their target; the median cell is off by "
             f"{percent(float(np.median(abs_err)))}, the worst by "
             f"{percent(float(abs_err[worst]))}")
    healthy = np.array([not o.reason.startswith("stuck") for o in value.cells])
    if value.cells[worst].reason.startswith("stuck") and healthy.any():
        plain += (f" (a stuck device; worst of the others "
                  f"{percent(float(abs_err[healthy].max()))})")
    rows.insert(0, ("in plain words", plain))
    if stuck:
        rows.append(("given up as stuck", f"{stuck} cells (their write-verify could not move "
                                          "them: stuck devices)"))
    return rows


def print_summary(result: RunResult, elapsed: float, out: Path,
                  g_device_max: float | None = None, compliance: str = "") -> None:
    """The session's outcome as a table, and the final map when there is one.

    `g_device_max` (S): the most one device can conduct; reads above it are flagged as
    dominated by sneak currents."""
    table = Table(title=f"run {result.run_id[:8]}", show_header=False)
    colour = _STATUS_COLOUR.get(result.status, "white")
    table.add_row("status", f"[{colour}]{result.status.value}[/] {escape(brief(result.reason))}")
    value: Any = result.value
    if isinstance(value, ArrayOutcome) and value.cells:
        for label, text in programming_rows(value):
            table.add_row(label, text)
        pulses = [o.n_pulses for o in (value.attempts or value.cells)]
        table.add_row("passes", f"{value.passes} ({len(value.attempts)} cell programmings)")
        table.add_row(
            "pulses", f"{sum(pulses)} (per programming: mean {np.mean(pulses):.1f}, "
            f"max {max(pulses)})"
        )
        if value.n_compliance:
            table.add_row("stopped by compliance",
                          f"{value.n_compliance} / {len(value.cells)} cells")
        failed = [o for o in value.cells if not o.converged]
        if failed:
            by_reason: dict[str, list[str]] = {}
            for o in failed:
                by_reason.setdefault(o.reason.split(":")[0], []).append(str(o.cell))
            table.add_row("not converged", "\n".join(
                f"{why}: {', '.join(cells[:8])}{' ...' if len(cells) > 8 else ''}"
                for why, cells in by_reason.items()
            ))
    elif isinstance(value, np.ndarray) and value.size:
        clamped = int(np.isnan(value).sum())  # reads in compliance have no conductance
        if clamped < value.size:
            table.add_row("conductance", f"min {si(float(np.nanmin(value)), 'S')}, median "
                          f"{si(float(np.nanmedian(value)), 'S')}, "
                          f"max {si(float(np.nanmax(value)), 'S')}")
        if clamped:
            table.add_row("reads in compliance", f"{clamped} / {value.size} cells (no "
                          "conductance: the current was clamped)")
        above = np.nan_to_num(value, nan=0.0) > (g_device_max or np.inf)
        if g_device_max is not None and above.any():
            table.add_row("[yellow]sneak paths[/]",
                          f"{int(above.sum())} of {value.size} reads above what "
                          f"one device can conduct ({si(g_device_max, 'S')}): sneak currents "
                          "dominate them, they are not device conductances")
    if compliance:
        table.add_row("[yellow]compliance[/]", compliance)
    table.add_row("events", str(result.n_events))
    table.add_row("time", duration(elapsed))
    table.add_row("log", str(out))
    console.print(table)
    final = value.final if isinstance(value, ArrayOutcome) else value
    if isinstance(final, np.ndarray) and final.ndim == 2 and np.isfinite(final).any():
        console.print("final conductance map (dark = low):")
        console.print(render_map(final, console.width), highlight=False)


def exit_code(result: RunResult) -> int:
    """The process exit code of a run (see `xbarlab.cli.common`); SIGTERM 143 and SIGHUP 129
    (128 + the signal's number), as a shell reports a process the signal ended."""
    if result.status is RunStatus.ABORTED:
        for name, code in (("SIGTERM", 143), ("SIGHUP", 129)):
            if result.reason.startswith(name):
                return code
    return int(STATUS_EXIT[result.status])


def _metadata(sample: str | None, operator: str | None, note: str | None) -> dict[str, str]:
    return {k: v for k, v in (("sample", sample), ("operator", operator), ("notes", note))
            if v is not None}


SampleOpt = Annotated[str | None, typer.Option(help="sample / die measured (run metadata)")]
OperatorOpt = Annotated[str | None, typer.Option(help="who runs the session (run metadata)")]
NoteOpt = Annotated[str | None, typer.Option(help="free-text note stored with the run")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="replace existing output files (of the same kind only)")]
ForceOpt = Annotated[bool, typer.Option("--force", hidden=True, help="old name of --overwrite")]


def register(app: typer.Typer) -> None:
    """Add `demo` and `run` to `app`."""

    @app.command()
    def demo(
        out: Annotated[Path | None, typer.Option(
            help="HDF5 log, .h5 (default: timestamped in this folder); the plot goes next to "
                 "it as .png")] = None,
        size: Annotated[int, typer.Option(min=2, max=256, help="array rows and columns")] = 16,
        pattern: Annotated[Pattern, typer.Option(help="target pattern")] = Pattern.letter_x,
        device: Annotated[str, typer.Option(
            help=f"device model preset: {DEVICE_HELP}")] = "tio2-o921c",
        passes: Annotated[
            int, typer.Option(min=1, max=20, help="re-program cells disturbed out of tolerance")
        ] = 3,
        seed: Annotated[int, typer.Option(min=0)] = 0,
        overwrite: OverwriteOpt = False,
        force: ForceOpt = False,
        plot: Annotated[bool, typer.Option(help="save a PNG overview next to the log")] = True,
        durable: Annotated[bool, typer.Option(
            help="fsync the log at every flush: survives a power cut (default off for sim)")
        ] = False,
        sample: SampleOpt = None,
        operator: OperatorOpt = None,
        note: NoteOpt = None,
    ) -> None:
        """Program a pattern into a simulated crossbar with write-verify, logged to HDF5.

        Exit code 0 when every cell ends within tolerance, 3 when some do not (partial),
        1 when none does."""
        devices = device_names()
        preset_file = device.endswith((".yaml", ".yml")) and Path(device).is_file()
        if device not in devices and not preset_file:
            raise fail(f"--device {device!r} is not a device model; choose one of: "
                       f"{', '.join(devices)}")
        try:
            cfg = SessionConfig(
                seed=seed,
                sim=SimConfig(rows=size, cols=size, device=device, seed=seed),
                protocol=WriteVerifyArrayProtocol(
                    target=PatternTarget(pattern=pattern.value), passes=passes
                ),
                log=LogSettings(durable=durable),
                **_metadata(sample, operator, note),
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
        out = output_path(out or default_out("xbarlab-demo"), "log",
                          overwrite=overwrite or force)
        png = output_path(out.with_suffix(".png"), "plot", overwrite=overwrite or force,
                          option="plot") if plot else None
        console.print(f"xbarlab demo: write-verify of a {pattern.value} pattern into a simulated "
                      f"{size}x{size} crossbar ('{device}' devices), {passes} pass(es)")
        _run(cfg, out, overwrite or force, png)

    @app.command()
    def run(
        protocol: Annotated[str, typer.Argument(help="the protocol to run: " + ", ".join(
            PROTOCOLS))],
        config: Annotated[Path | None, typer.Option("--config", "-c",
                                                    help="session config (YAML)")] = None,
        out: Annotated[Path | None, typer.Option(help="HDF5 log file (.h5)")] = None,
        backend: Annotated[Backend | None, typer.Option(
            help="override the config's backend")] = None,
        bench: Annotated[Path | None, typer.Option(
            help="bench config file (overrides the config's `bench:`; any kind: smu, pulse, "
                 "arc2)")] = None,
        overwrite: OverwriteOpt = False,
        force: ForceOpt = False,
        sample: SampleOpt = None,
        operator: OperatorOpt = None,
        note: NoteOpt = None,
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
        """Run PROTOCOL with the parameters of a session config file.

        Exit codes: 0 done, 1 failed, 2 bad input (nothing run), 3 partial, 130 aborted."""
        from xbarlab.cli.protocols import refuse_unphysical, run_protocol

        def other_protocols() -> None:  # every other protocol, --estimate, --resume
            run_protocol(protocol, config, out, None if backend is None else backend.value,
                         overwrite or force, estimate, resume, json_out, duration, durable)

        if (protocol not in ProtocolName.__members__ or estimate or resume is not None
                or duration is not None or config is None or out is None):
            other_protocols()
            return
        try:
            cfg = load_session(config, ProtocolName(protocol), backend, bench)
            meta = _metadata(sample, operator, note)
            if meta:
                cfg = cfg.model_copy(update=meta)
            if durable is not None:
                cfg = cfg.model_copy(update={"log": cfg.log.model_copy(
                    update={"durable": durable})})
        except ConfigError as exc:
            raise fail(str(exc)) from None
        problems = _problems(cfg, str(config))
        if problems:
            raise fail("\n".join(problems))
        if isinstance(cfg.protocol, WriteVerifyArrayProtocol) and cfg.protocol.compensate:
            other_protocols()  # needs the circuit model's gains
            return
        try:
            refuse_unphysical(cfg)
        except ConfigError as exc:
            raise fail(str(exc)) from None
        out = output_path(out, "log", overwrite=overwrite or force)
        _run(cfg, out, overwrite or force, None)


def load_session(config: Path, protocol: ProtocolName, backend: Backend | None,
                 bench: Path | None = None) -> SessionConfig:
    """The session config of `config` for `protocol`; `ConfigError` names file and field.

    An empty file is refused: it would silently run every default."""
    data = load_yaml(config)
    if data is None or data == {}:
        raise ConfigError(f"{config}: the file is empty; an empty session would run every "
                          "default silently. Write the settings (see examples/session-*.yaml)")
    cfg = validate_config(data, SessionConfig, str(config))
    if cfg.protocol.kind != protocol.value:
        if "protocol" in (cfg.model_fields_set or set()):
            raise ConfigError(f"{config}: protocol.kind is '{cfg.protocol.kind}' but the "
                              f"command asks for '{protocol.value}'")
        proto: Any = (ReadMapProtocol() if protocol is ProtocolName.read_map
                      else WriteVerifyArrayProtocol())
        cfg = cfg.model_copy(update={"protocol": proto})
    if cfg.bench is not None and not cfg.bench.is_absolute():
        cfg = cfg.model_copy(update={"bench": config.parent / cfg.bench})
    if bench is not None:  # --bench: relative to the working folder
        cfg = cfg.model_copy(update={"bench": bench})
    if backend is not None:
        cfg = cfg.model_copy(update={"backend": backend.value})
    if cfg.backend == "bench" and cfg.bench is None:
        raise ConfigError(f"{config}: backend 'bench' needs `bench:` (the bench config file)")
    return cfg


def _problems(cfg: SessionConfig, source: str) -> list[str]:
    from xbarlab.cli.validate import session_problems

    return session_problems(cfg, source)


def _run(cfg: SessionConfig, out: Path, overwrite: bool, plot: Path | None) -> None:
    try:
        result = execute(cfg, out, overwrite=overwrite, plot=plot)
    except BackendUnavailable as exc:
        raise fail(str(exc), ExitCode.FAILED) from None
    except (ConfigError, FileExistsError, KeyError, ValueError, LogCreateFailed) as exc:
        raise fail(str(exc).strip("'\"")) from None
    except (KeyboardInterrupt, RunAborted) as exc:
        what = str(exc).split(" ")[0] if isinstance(exc, RunAborted) else "Ctrl-C"
        raise fail(f"{what} before the run started; nothing was switched on and every link "
                   "that was open is closed", {"SIGTERM": 143, "SIGHUP": 129}.get(what, 130)
                   ) from None
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}", ExitCode.FAILED) from None
    code = exit_code(result)
    if code:
        raise typer.Exit(code)
