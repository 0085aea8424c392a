"""`xbarlab reproduce drolet2023-compensation`: regular and hardware-aware networks on many
simulated chips, as programmed and with chip-in-the-loop compensation (torch loaded lazily)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table

from xbarlab.cli.common import fail, output_folder
from xbarlab.cli.console import Console

console = Console()


def run(chips: int, seeds: int, epochs: int, out: Path, overwrite: bool, threads: int,
        fidelity: str, r_wire: float, passes: int, device: str, workers: int,
        say_plain: Any) -> None:
    """Train, program every network on `chips` chips, compensate, report (table, HDF5, PNG)."""
    from xbarlab.log.results import write_results
    from xbarlab.network import chips_report as cr
    from xbarlab.network.chips_study import study_config
    from xbarlab.studies.compensation import run_study

    results = out / "compensation_results.h5"
    png = out / "compensation.png"
    if results.exists() and not overwrite:
        raise fail(f"{results} exists; use --overwrite or another --out")
    try:
        cfg = study_config(fidelity=fidelity, r_wire=r_wire, passes=passes, device=device)
    except ValueError as exc:
        raise fail(str(exc)) from None
    where = (f"{chips} simulated chips per network ({device}, {fidelity}, {r_wire:g} Ω per "
             f"wire segment, {cfg.sim.rows} x {cfg.sim.cols} arrays, 100-500 µS pairs, "
             f"write-verify ±{100 * cfg.network.write_verify.tolerance:g} % "
             f"{cfg.network.write_verify.pulse_scheme.value}, {passes} passes, up to "
             f"{cfg.network.compensation.rounds} compensation rounds)")
    console.print(where, highlight=False, soft_wrap=True)
    config = {"study": cfg.model_dump(mode="json"), "chips": chips, "seeds": seeds,
              "epochs": epochs}
    t0 = time.perf_counter()
    finished: list[cr.NetworkChips] = []
    output_folder(out)

    def save(net: cr.NetworkChips) -> None:  # after every network: a cut run keeps them
        finished.append(net)
        write_results(results, cr.results_tree(finished, config), overwrite=True)

    with console.status("starting") as status:
        def say(msg: str) -> None:
            status.update(msg)
            say_plain(msg)

        try:
            study = run_study(cfg, chips, seeds, epochs, workers, threads, say, save)
        except (ValueError, RuntimeError) as exc:
            raise fail(str(exc)) from None
    table = Table(title=f"Networks on {where}: share of the test points correct on >= 95 % "
                        "of the chips [95 % bootstrap interval over chips]; chip accuracy "
                        "[95 % t-interval over chips]")
    for col in ("network", "variant", ">= 95 % correct", "chip accuracy", "nominal"):
        table.add_column(col)
    rows = cr.table_rows(study.nets)
    for row in rows:
        table.add_row(*row[:5])
    console.print(table)
    console.print("Cost per chip (mean; bench time by the default operation timings: 30 ms "
                  "per pulse or read, 50 ms per calibration MVM row):", highlight=False)
    for row in rows:
        console.print(f"  {row[0]}, {row[1]}: {row[6]}", highlight=False, soft_wrap=True)
    cr.plot(study.nets, png, where)
    console.print(f"results: {results}   plot: {png}   total {time.perf_counter() - t0:.0f} s",
                  highlight=False)
