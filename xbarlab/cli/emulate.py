"""`xbarlab emulate CONFIG`: an emulated bench (virtual instruments on a simulated crossbar).

Starts an emulator for every instrument of the bench config (loopback TCP for VISA instruments,
a pseudo-terminal for a serial board), wired to one simulated crossbar by the config's pin map,
writes the same bench config with the addresses pointing at the emulators, prints them, and
serves until Ctrl-C / SIGTERM (or `--duration`). Every xbarlab command takes the written config
(``xbarlab bench check``, a session with ``backend: bench``).
"""

from __future__ import annotations

import signal
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from xbarlab.cli.common import fail, output_path
from xbarlab.cli.console import Console
from xbarlab.cli.session import DEVICE_HELP
from xbarlab.cli.validate import device_names
from xbarlab.config import ConfigError, SimConfig

console = Console()
err_console = Console(stderr=True)


class Fidelity(StrEnum):
    ideal = "ideal"
    wires = "wires"
    nonlinear = "nonlinear"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    @app.command()
    def emulate(
        config: Annotated[Path, typer.Argument(help="bench config (YAML) to emulate")],
        out: Annotated[Path | None, typer.Option(
            help="where to write the bench config pointing at the emulators "
                 "(default: <CONFIG stem>.emulated.yaml here)")] = None,
        port: Annotated[int, typer.Option(
            min=0, max=65535, help="first TCP port (instruments take consecutive ones); "
                                   "0: any free ports")] = 0,
        seed: Annotated[int, typer.Option(min=0, help="seed of the simulated devices")] = 0,
        noise: Annotated[bool, typer.Option(help="device and read noise")] = True,
        device: Annotated[str, typer.Option(
            help=f"device model preset: {DEVICE_HELP}")] = "tio2-o921c",
        fidelity: Annotated[Fidelity, typer.Option(help="circuit fidelity")] = Fidelity.ideal,
        duration: Annotated[float | None, typer.Option(
            min=0, help="stop after this many seconds (default: until Ctrl-C)")] = None,
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace an existing --out")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
    ) -> None:
        """Emulate the bench of CONFIG on a simulated crossbar; print the addresses to use."""
        import yaml

        from xbarlab.bench.arctwo_config import ArcTwoBenchConfig
        from xbarlab.drivers.emulators.bench import EmulatedBench
        from xbarlab.drivers.emulators.server import PortInUse
        from xbarlab.drivers.registry import load_bench_config

        devices = device_names()
        if device not in devices:
            raise fail(f"--device {device!r} is not a device model; choose one of: "
                       f"{', '.join(devices)}")
        try:
            any_cfg = load_bench_config(config)
            sim = SimConfig.model_validate({"rows": any_cfg.rows, "cols": any_cfg.cols,
                                            "seed": seed, "noise": noise, "device": device,
                                            "fidelity": fidelity.value})
            if isinstance(any_cfg, ArcTwoBenchConfig):
                from xbarlab.cli.emulate_arc2 import serve_arc2

                target = output_path(out or Path(f"{config.stem}.emulated.yaml"), "yaml",
                                     overwrite=overwrite or force)
                previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
                try:
                    serve_arc2(any_cfg, sim, target, port, duration)
                finally:
                    signal.signal(signal.SIGTERM, previous)
                return
            cfg = any_cfg
        except ConfigError as exc:
            raise fail(str(exc)) from None
        except ValueError as exc:
            raise fail(f"simulator settings: {exc}") from None
        target = output_path(out or Path(f"{config.stem}.emulated.yaml"), "yaml",
                             overwrite=overwrite or force)
        ports = ({name: port + k for k, name in enumerate(cfg.instruments)} if port else {})
        emu = EmulatedBench(cfg, sim, ports=ports)
        try:
            emu.start()
        except PortInUse as exc:
            raise fail(f"{exc}. Alternative: --port 0 (any free ports) or another --port."
                       ) from None
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            emulated = emu.config()
            target.write_text(
                f"# emulated bench of {config} (xbarlab emulate), valid while it runs\n"
                + yaml.safe_dump(emulated.model_dump(mode="json"), sort_keys=False),
                encoding="utf-8")
            table = Table(title=f"emulated bench '{cfg.name}' ({cfg.rows} x {cfg.cols}, "
                                f"seed {seed}, noise {'on' if noise else 'off'})")
            for col in ("instrument", "driver", "address", "identity"):
                table.add_column(col, overflow="fold")
            for name, inst in emulated.instruments.items():
                table.add_row(name, inst.driver, inst.address, emu.instruments[name].identity)
            console.print(table)
            console.print(f"bench config: {target}  (try: xbarlab bench check {target})")
            console.print("serving; Ctrl-C to stop", highlight=False)
            deadline = None if duration is None else time.monotonic() + duration
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            emu.stop()
        problems = emu.server_errors + emu.violations
        console.print(f"stopped; {len(problems)} problem(s) seen by the emulators")
        for p in problems:
            console.print(f"  {p}", highlight=False)
