"""`xbarlab digits`: the 8 x 8 digits MLP on simulated 64 x 64 wired passive arrays."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from xbarlab.cli.common import ExitCode, fail, output_folder
from xbarlab.cli.console import Console

if TYPE_CHECKING:
    from xbarlab.network.datasets import EvalSet

console = Console()


class Scheme(StrEnum):
    half = "v/2"
    third = "v/3"


def _need_nn() -> None:
    try:
        import sklearn  # noqa: F401

        import xbarlab.nn.digits  # noqa: F401
    except ImportError as exc:
        raise fail(f"this command needs the nn extra (torch, scikit-learn): {exc}. Install "
                   "it with: pip install 'xbarlab[nn]'") from None


EVAL_SET = "xbarlab.cli.digits:eval_set"
"""The data set name `program-network` resolves to the digits split (the .npz nets carry it)."""


def eval_set() -> EvalSet:
    """The digits split as a `program-network` evaluation set: calibration = training and
    calibration images (never test), test = the test split; inputs as the nets were trained
    (pixel / 16, constant pixel 0 dropped)."""
    import numpy as np

    from xbarlab.network.datasets import EvalSet
    from xbarlab.nn.digits import load_digits_split

    d = load_digits_split()
    return EvalSet(np.concatenate([d.x_train, d.x_cal]), np.concatenate([d.y_train, d.y_cal]),
                   d.x_test, d.y_test, "digits", "scikit-learn load_digits, xbarlab split "
                   "(xbarlab.nn.digits)")


def register(app: typer.Typer) -> None:
    """Add `digits` to `app`."""

    @app.command()
    def digits(
        out: Annotated[Path, typer.Option(help="folder for the results (JSON, PNG, .npz nets)")
                       ] = Path("digits-results"),
        full: Annotated[bool, typer.Option(
            "--full", help="both networks (regular and hardware-aware), 3 chips each; the "
                           "default programs the hardware-aware network on one chip")] = False,
        chips: Annotated[int | None, typer.Option(min=1, max=100, help="chips per network")
                         ] = None,
        r_wire: Annotated[float, typer.Option(min=0.0, max=100.0,
                                              help="wire resistance per segment (Ω)")] = 1.0,
        scheme: Annotated[Scheme, typer.Option(help="programming pulse scheme")] = Scheme.half,
        tolerance: Annotated[float, typer.Option(min=0.001, max=0.5,
                                                 help="write-verify tolerance (relative)")
                             ] = 0.02,
        epochs: Annotated[int, typer.Option(min=1, max=100_000, help="training epochs")] = 150,
        seed: Annotated[int, typer.Option(min=0, help="chip seed")] = 0,
    ) -> None:
        """Train a 63-32-10 MLP on scikit-learn's digits (regular and hardware-aware), program
        it on simulated 64 x 64 TiO2 arrays with wire resistance (write-verify, V/2 or V/3
        pulses, MVM with the wired circuit), compensate on the chip, and report accuracies,
        tuning and weight import errors and the time per chip."""
        _need_nn()
        from xbarlab.crossbar import BiasScheme
        from xbarlab.nn.digits_chip import ChipConfig
        from xbarlab.nn.digits_report import (
            BAR_IMPORT,
            BAR_TUNING,
            HEADER,
            run_study,
            table_rows,
            write_outputs,
        )

        folder = output_folder(out)
        cfg = ChipConfig(r_wire=r_wire, pulse_scheme=BiasScheme(scheme.value),
                         tolerance=tolerance, seed=seed)
        networks = ("regular", "hardware-aware") if full else ("hardware-aware",)
        n_chips = chips if chips is not None else (3 if full else 1)
        t0 = time.monotonic()

        def say(msg: str) -> None:
            console.print(f"[{time.monotonic() - t0:5.0f} s] {msg}", highlight=False)

        study = run_study(cfg, networks=networks, chips=n_chips, epochs=epochs,
                          progress=say, out=folder)
        table = Table(title="digits MLP on simulated 64 x 64 wired passive arrays")
        for h in HEADER:
            table.add_column(h)
        for row in table_rows(study):
            table.add_row(*row)
        console.print(table)
        console.print(f"bar (Kim et al. 2021, 64 x 64 passive metal-oxide): mean tuning error "
                      f"< {BAR_TUNING:.0%}, weight import error about {BAR_IMPORT:.0%}",
                      highlight=False)
        js, png = write_outputs(study, folder)
        console.print(f"results: {js}, {png}", highlight=False)
        worst = min(r.after for reps in study.chips.values() for r in reps)
        gap = max(study.software[n] - r.after for n, reps in study.chips.items() for r in reps)
        if gap > 0.02:
            console.print(f"[yellow]not within 2 points of software on every chip[/] "
                          f"(worst {worst:.1%}, largest gap {gap * 100:.1f} points)")
            raise typer.Exit(int(ExitCode.PARTIAL))
