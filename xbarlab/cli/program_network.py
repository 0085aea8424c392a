"""`xbarlab program-network NET`: program a trained network onto the arrays of a bench or the
simulator, read them back, evaluate it through the MVM, optionally compensate chip-in-the-loop
(`xbarlab.network`). One run of the engine, logged to HDF5, resumable with --resume."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from xbarlab.cli.common import ExitCode, fail, output_path
from xbarlab.cli.console import Console
from xbarlab.config import ConfigError, load_yaml, validate_config
from xbarlab.log.errors import LogCreateFailed

console = Console()


class Backend(StrEnum):
    sim = "sim"
    bench = "bench"


def load_network(path: Path, sizes: str | None, n_in: int | None, n_out: int,
                 activation: str) -> object:
    """The network of an .npz (no torch needed) or a torch state dict (.pt / .pth)."""
    from xbarlab.network.model import Network, load_npz

    if not path.is_file():
        raise ConfigError(f"{path}: no such network file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path)
    if suffix in (".pt", ".pth"):
        try:
            from xbarlab.nn.network_io import load_state_dict
        except ImportError:
            raise ConfigError(f"{path}: reading a torch state dict needs torch (pip install "
                              "'xbarlab[nn]'), or save the network as .npz") from None
        size_list = None
        if sizes:
            try:
                size_list = [int(v) for v in sizes.replace("-", ",").split(",")]
            except ValueError:
                raise ConfigError(f"--sizes {sizes}: give layer widths like 2,8,1") from None
        return Network.of(load_state_dict(path, size_list, n_in, n_out), activation)
    raise ConfigError(f"{path}: a network is an .npz (W0, b0, W1, b1, ...) or a torch state "
                      "dict (.pt)")


def register(app: typer.Typer) -> None:
    @app.command("program-network")
    def program_network(
        net: Annotated[Path, typer.Argument(help="trained network: .npz (W0, b0, ...) or a "
                                                 "torch state dict .pt")],
        config: Annotated[Path, typer.Option(help="session config (YAML) with a network: "
                                                  "section")],
        out: Annotated[Path, typer.Option(help="HDF5 log (.h5)")],
        backend: Annotated[Backend | None, typer.Option(help="override the config's backend")
                           ] = None,
        bench: Annotated[Path | None, typer.Option(help="bench config file (overrides the "
                                                       "config's bench:)")] = None,
        resume: Annotated[Path | None, typer.Option(
            help="continue the run of this log: devices done are not programmed again")
        ] = None,
        dataset: Annotated[str | None, typer.Option(
            help="evaluation set: moons, a registered name, or module:function")] = None,
        sizes: Annotated[str | None, typer.Option(
            help="layer widths of a flat-theta .pt, e.g. 2,8,1")] = None,
        activation: Annotated[str, typer.Option(help="hidden activation of a .pt network")
                              ] = "sigmoid",
        plot: Annotated[Path | None, typer.Option(
            help="save target vs programmed conductances and the accuracies (PNG/SVG/PDF)")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out / --plot")
                             ] = False,
    ) -> None:
        """Map NET onto the configured arrays, program every device with write-verify, read
        back, evaluate through the crossbars' MVM, and compensate if configured.

        Exit codes: 0 done, 1 failed, 2 bad input (nothing run), 3 partial (devices out of
        tolerance), 130 / 143 aborted (resume with --resume)."""
        from xbarlab.cli.protocols import refuse_unphysical
        from xbarlab.cli.session import exit_code
        from xbarlab.network.config import NetworkSessionConfig
        from xbarlab.network.datasets import load_dataset
        from xbarlab.network.model import Network

        try:
            data = load_yaml(config)
            if not data:
                raise ConfigError(f"{config}: the file is empty; write the settings (see "
                                  "examples/network/)")
            cfg = validate_config(data, NetworkSessionConfig, str(config))
            if cfg.bench is not None and not cfg.bench.is_absolute():
                cfg = cfg.model_copy(update={"bench": config.parent / cfg.bench})
            if bench is not None:
                cfg = cfg.model_copy(update={"bench": bench})
            if backend is not None:
                cfg = cfg.model_copy(update={"backend": backend.value})
            if cfg.backend == "bench" and cfg.bench is None:
                raise ConfigError(f"{config}: backend 'bench' needs `bench:` (the bench "
                                  "config file)")
            hint = dataset or cfg.network.dataset
            if net.suffix.lower() == ".npz":
                model = load_network(net, sizes, None, 1, activation)
                assert isinstance(model, Network)
                evalset = load_dataset(hint or model.dataset or "moons")
            else:  # a flat theta's sizes may come from the data set's dimensions
                evalset = load_dataset(hint or "moons")
                classes = int(np.max(evalset.y_cal)) + 1
                model = load_network(net, sizes, evalset.n_inputs,
                                     1 if classes <= 2 else classes, activation)
                assert isinstance(model, Network)
            if resume is not None and not resume.is_file():
                raise ConfigError(f"--resume {resume}: no such log file")
            refuse_unphysical(cfg.as_write_verify_session())
        except (ConfigError, ValueError) as exc:
            raise fail(str(exc)) from None
        out = output_path(out, "log", overwrite=overwrite)
        if plot is not None:
            plot = output_path(plot, "plot", overwrite=overwrite, option="--plot")
        from xbarlab.cli.progress import ProgressSubscriber
        from xbarlab.engine import RunAborted
        from xbarlab.network.session import run_session

        try:
            with ProgressSubscriber(console, "programming") as bar:
                session = run_session(cfg, model, evalset, out, [bar], overwrite=overwrite,
                                      resume=resume)
        except (ConfigError, ValueError, FileExistsError, LogCreateFailed) as exc:
            raise fail(str(exc)) from None
        except (KeyboardInterrupt, RunAborted):
            raise fail("interrupted before the run started; nothing was programmed",
                       ExitCode.ABORTED) from None
        except OSError as exc:
            raise fail(f"cannot open the backend or write {out}: {exc}", ExitCode.FAILED
                       ) from None
        if session.resumed:
            console.print(session.resumed, highlight=False)
        print_summary(session, out)
        value = session.result.value
        if plot is not None and value is not None:
            from xbarlab.network.report import plot_outcome

            console.print(f"plot: {plot_outcome(value, plot)}")
        sys.stdout.flush()
        code = exit_code(session.result)
        if code:
            raise typer.Exit(code)


def print_summary(session: object, out: Path) -> None:
    from xbarlab.network.plan import NetworkOutcome
    from xbarlab.network.report import summary_rows
    from xbarlab.network.session import SessionResult
    from xbarlab.units import duration

    assert isinstance(session, SessionResult)
    r = session.result
    colour = "green" if r.done else "yellow" if r.ok else "red"
    nmap = session.nmap
    table = Table(title=f"program-network: run {r.run_id[:8]}", show_header=False)
    table.add_row("status", f"[{colour}]{r.status.value}[/] {escape(r.reason)}")
    table.add_row("network", f"{'-'.join(map(str, nmap.network.sizes))} "
                  f"({nmap.network.activation}); {nmap.n_devices} devices in {len(nmap.tiles)} "
                  f"tiles on {nmap.n_arrays} array(s) of {nmap.array_shape[0]} x "
                  f"{nmap.array_shape[1]}")
    if isinstance(r.value, NetworkOutcome):
        for label, text in summary_rows(r.value):
            table.add_row(label, text)
    table.add_row("events", str(r.n_events))
    table.add_row("time", duration(session.seconds))
    table.add_row("log", str(out))
    console.print(table)
