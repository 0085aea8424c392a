"""`xbarlab run PROTOCOL` for every protocol of `xbarlab.protocols.registry`, with `--estimate`
(simulate first, print what the session will do to the array) and `--resume LOG` (continue an
aborted or killed run: cells done are not programmed again)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from xbarlab.cli.console import Console, emit
from xbarlab.config import ConfigError, SessionConfig, load_yaml
from xbarlab.engine import RunResult
from xbarlab.log.errors import LogCreateFailed
from xbarlab.protocol_configs import ProtocolSession, protocol_kinds, session_from_data

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and return the exit to raise (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_session(name: str, path: Path, backend: str | None) -> ProtocolSession:
    """The session config file for protocol `name`, with `--backend` applied."""
    if name not in protocol_kinds():
        raise ConfigError(f"unknown protocol '{name}'; known: {', '.join(protocol_kinds())}")
    data = load_yaml(path)
    if data is None or data == {}:
        raise ConfigError(f"{path}: the file is empty; an empty session would run every "
                          "default silently. Write the settings (see examples/protocols/)")
    cfg = session_from_data(name, data, str(path))
    if cfg.bench is not None and not cfg.bench.is_absolute():
        cfg = cfg.model_copy(update={"bench": path.parent / cfg.bench})
    return with_backend(cfg, backend)


def with_backend(cfg: ProtocolSession, backend: str | None) -> ProtocolSession:
    if backend is None:
        return cfg
    if backend not in ("sim", "bench"):
        raise ConfigError(f"--backend must be 'sim' or 'bench', got '{backend}'")
    return cfg.model_copy(update={"backend": backend})


def execute(cfg: ProtocolSession, out: Path, *, overwrite: bool = False,
            resume: Path | None = None) -> RunResult:
    """Run the session's protocol with the HDF5 log and a progress bar; print the summary."""
    from xbarlab.cli.progress import ProgressSubscriber
    from xbarlab.cli.session import say_if_deleted
    from xbarlab.engine import RunEngine
    from xbarlab.log.writer import HDF5Writer
    from xbarlab.protocols.registry import plan_for
    from xbarlab.sessions import build_backend

    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    if resume is not None and resume.resolve() == out.resolve():
        raise ValueError("--out must differ from the --resume log (the old log is kept)")
    refuse_unphysical(cfg)
    backend = build_backend(cfg)
    try:
        extra: dict[str, Any] = {}
        cells = None
        if resume is not None:
            from xbarlab.analysis.resume import prepare_resume

            state = prepare_resume(resume, cfg, backend)
            cells, extra = state.cells, {"resumed_from": state.provenance()}
            console.print(state.describe(), highlight=False)
        from xbarlab.analysis.physics_checks import circuit_gains, circuit_tracking

        plan = plan_for(cfg.protocol, backend.shape, cells, circuit_gains(cfg),
                        circuit_tracking(cfg))
        t0 = time.perf_counter()
        options = cfg.log.writer_options(cfg.backend)
        with HDF5Writer(out, overwrite=overwrite, **options) as writer, \
                ProgressSubscriber(console, cfg.protocol.kind) as bar:
            engine = RunEngine(backend, cfg.limits, [writer, bar])
            result = engine.run(plan, protocol=cfg.protocol.kind,
                                config={**cfg.model_dump(mode="json"), **extra}, seed=cfg.seed)
        elapsed = time.perf_counter() - t0
    finally:
        close = getattr(backend, "close", None)
        close() if callable(close) else backend.safe_state()
    say_if_deleted(writer, out)
    print_summary(cfg.protocol.kind, result, elapsed, out)
    return result


def refuse_unphysical(cfg: SessionConfig) -> None:
    """Refuse up front a session the physics checks say cannot work (on the simulated model
    of its array: the `sim:` section), print their warnings."""
    from xbarlab.analysis.physics_checks import check_session, model_sim
    from xbarlab.sim.factory import build_sim_crossbar

    warnings, blocking = check_session(cfg, build_sim_crossbar(model_sim(cfg)))
    if blocking:
        raise ConfigError("refused before any operation: " + "; ".join(blocking))
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def print_summary(kind: str, result: RunResult, elapsed: float, out: Path) -> None:
    """The run's status, the protocol's own rows, counts and the log path."""
    from xbarlab.analysis.protocol_summary import summary_rows
    from xbarlab.cli.session import print_summary as session_summary

    if kind in ("write_verify_array", "read_map"):
        session_summary(result, elapsed, out)
        return
    table = Table(title=f"{kind}: run {result.run_id[:8]}", show_header=False)
    colour = "green" if result.done else "yellow" if result.ok else "red"
    table.add_row("status", f"[{colour}]{result.status.value}[/] {result.reason}")
    for name, text in summary_rows(kind, result.value):
        table.add_row(name, text)
    table.add_row("events", str(result.n_events))
    table.add_row("time", f"{elapsed:.2f} s")
    table.add_row("log", str(out))
    console.print(table)


def with_duration(cfg: ProtocolSession, duration: float | None) -> ProtocolSession:
    """`--duration` applied to a protocol with a total time (validated like the config)."""
    if duration is None:
        return cfg
    if "duration" not in type(cfg.protocol).model_fields:
        raise ConfigError(f"--duration applies to retention and volatility, not "
                          f"{cfg.protocol.kind}")
    data = cfg.model_dump(mode="json")
    data["protocol"]["duration"] = duration
    return session_from_data(cfg.protocol.kind, data, "--duration")


def run_protocol(name: str, config: Path | None, out: Path | None, backend: str | None,
                 overwrite: bool, estimate: bool, resume: Path | None, as_json: bool,
                 duration: float | None = None, durable: bool | None = None) -> None:
    """The body of `xbarlab run` for every protocol; raises `typer.Exit` with the exit code."""
    from xbarlab.cli.session import exit_code

    try:
        if config is None:
            if resume is None:
                raise ConfigError("give --config (or --resume LOG to reuse that run's config)")
            from xbarlab.analysis.resume import logged_session

            cfg = with_backend(logged_session(resume, name), backend)
        else:
            cfg = load_session(name, config, backend)
        cfg = with_duration(cfg, duration)
        if durable is not None:
            cfg = cfg.model_copy(update={"log": cfg.log.model_copy(update={"durable": durable})})
        if estimate:
            from xbarlab.analysis.estimate import estimate_session, render_estimate

            est = estimate_session(cfg)
            if as_json:
                emit(json.dumps(est.to_json(), indent=1))
            else:
                render_estimate(est, console)
            raise typer.Exit(0 if est.ok else 1)
        if out is None:
            raise ConfigError("give --out F.h5 (the HDF5 log to write)")
        result = execute(cfg, out, overwrite=overwrite, resume=resume)
    except (ConfigError, FileExistsError, FileNotFoundError, KeyError, ValueError,
            IndexError, LogCreateFailed) as exc:
        text = str(exc)
        raise fail(text.strip("'\"") if isinstance(exc, KeyError) else text) from None
    if not result.done:
        raise typer.Exit(exit_code(result))
