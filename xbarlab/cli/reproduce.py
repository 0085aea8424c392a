"""`xbarlab reproduce drolet2023`: the seed paper's result in one command (torch loaded lazily)."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from xbarlab.cli.common import fail, output_folder
from xbarlab.cli.console import Console
from xbarlab.config import ConfigError

console = Console()
err_console = Console(stderr=True)
PLAIN_INTERVAL = 10.0  # s between plain progress lines outside a terminal
FULL_SEEDS = 10  # --full: training seeds per network
FULL_TRANSFERS = 10_000  # --full: simulated transfers per network


class Paper(StrEnum):
    drolet2023 = "drolet2023"
    drolet2023_crossbar = "drolet2023-crossbar"
    drolet2023_compensation = "drolet2023-compensation"


class Mapping(StrEnum):
    both = "both"
    authors = "authors"
    physical = "physical"


class Recipe(StrEnum):
    default = "default"
    paper = "paper"
    xbarlab = "xbarlab"


class DataSource(StrEnum):
    auto = "auto"
    paper = "paper"
    sklearn = "sklearn"


class Fidelity(StrEnum):
    ideal = "ideal"
    wires = "wires"
    nonlinear = "nonlinear"


def _fail(message: str) -> typer.Exit:
    return fail(message)


def _need_nn() -> None:
    """One clear line, not a traceback, when the nn extra (torch) is not installed."""
    try:
        import xbarlab.nn.crossbar_transfer
        import xbarlab.nn.reproduce  # noqa: F401
    except ImportError as exc:
        raise fail(f"this command needs the nn extra (torch, scikit-learn): {exc}. Install "
                   "it with: pip install 'xbarlab[nn]'") from None


def _data_line(prefer: str) -> str:
    """Which half-moons data the networks train on, and where the paper's split is looked for."""
    from xbarlab.nn.data import REFERENCE_ENV, load_moons, reference_dir

    try:
        source = load_moons(prefer).source
    except FileNotFoundError as exc:
        raise fail(f"{exc} (set {REFERENCE_ENV} to the folder holding half_moons.csv)"
                   ) from None
    return (f"data: {source}  [paper split looked for in {reference_dir()}; "
            f"set {REFERENCE_ENV} to change]")


class _PlainTicker:
    """Progress lines for logs (nohup, CI): at most one per `PLAIN_INTERVAL` s."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._t0 = self._last = time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last >= PLAIN_INTERVAL):
            self._last = now
            console.print(f"{text} ({now - self._t0:.0f} s elapsed)", highlight=False,
                          soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `reproduce` to `app`."""

    @app.command()
    def reproduce(
        paper: Annotated[Paper, typer.Argument(
            help="drolet2023 (the paper's statistical transfers), drolet2023-crossbar "
                 "(beyond: programmed crossbar transfers, circuit-aware training) or "
                 "drolet2023-compensation (many chips, with and without chip-in-the-loop "
                 "compensation)")],
        seeds: Annotated[int | None, typer.Option(
            min=1, max=100, help="training seeds per net (default 3; --full: 10)")] = None,
        transfers: Annotated[int | None, typer.Option(
            min=1, max=1_000_000,
            help="transfers per net (default 2000 statistical (--full: 10000), 20 crossbar)")
        ] = None,
        full: Annotated[bool, typer.Option(
            "--full", help="the full study: 10 seeds x 10000 transfers (unless --seeds / "
                           "--transfers say more or less); about 10 x the default run time")
        ] = False,
        single_column: Annotated[bool | None, typer.Option(
            "--single-column/--no-single-column",
            help="authors' mapping: map single-sign tensors with the authors' single-column "
                 "scheme (default on); the other scheme is reported too")] = None,
        epochs: Annotated[int | None, typer.Option(
            min=1, help="training epochs (default: the recipe's: paper 10000, xbarlab 6000 "
                        "authors / 2000 physical; crossbar 2000)")] = None,
        mapping: Annotated[Mapping, typer.Option(
            help="both (default), authors (the paper as the authors' code: ±400 µS pairs) "
                 "or physical (xbarlab's 100-500 µS pairs)")] = Mapping.both,
        recipe: Annotated[Recipe, typer.Option(
            help="default (paper recipe on the authors' mapping, xbarlab's on the physical), "
                 "paper or xbarlab (for every mapping run)")] = Recipe.default,
        data: Annotated[DataSource, typer.Option(
            help="auto (the paper's split if found, see XBARLAB_REFERENCE_DIR), paper, sklearn")
        ] = DataSource.auto,
        out: Annotated[Path, typer.Option(help="output folder (HDF5 results, CDF plot)")] = Path(
            "drolet2023"
        ),
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace existing results in --out")] = False,
        force: Annotated[bool, typer.Option("--force", hidden=True)] = False,
        threads: Annotated[int, typer.Option(min=1, max=64, help="torch CPU threads")] = 1,
        fidelity: Annotated[Fidelity, typer.Option(
            help="crossbar: circuit fidelity")] = Fidelity.wires,
        r_wire: Annotated[float, typer.Option(
            min=0, help="crossbar: wire resistance per segment (ohm)")] = 1.0,
        passes: Annotated[int | None, typer.Option(
            min=1, max=20, help="crossbar: write-verify passes (default 1; compensation: 3)")
        ] = None,
        device: Annotated[str, typer.Option(help="crossbar: device preset")] = "tio2-o921c",
        compensate: Annotated[bool, typer.Option(
            help="also evaluate read-back compensation of stuck devices (xbarlab extension: "
                 "re-tune healthy targets, reprogram the moved ones)")] = False,
        compensate_steps: Annotated[int, typer.Option(
            min=0, help="Adam steps of the compensation re-tune")] = 300,
        jobs: Annotated[int, typer.Option(
            min=1, max=64, help="worker processes over the (seed, network) pairs (same "
                                "results for any number)")] = 1,
        ablations: Annotated[bool, typer.Option(
            "--ablations", help="also score every network with each transfer effect alone and "
                                "each removed (tuning, offset, disturb, stuck); about 2.5 x "
                                "the evaluation time")] = False,
        dedup: Annotated[bool, typer.Option(
            "--dedup", help="train and test on a de-duplicated split (the paper's repeats "
                            "every test point in training or validation)")] = False,
        chips: Annotated[int | None, typer.Option(
            min=1, max=100_000, help="crossbar: programmed chips per network (same as "
                                     "--transfers there; default 20, >= 200 for the "
                                     "chip-level statistics)")] = None,
        workers: Annotated[int, typer.Option(
            min=1, max=64, help="crossbar: processes sharing the chips (same result for any "
                                "number)")] = 1,
    ) -> None:
        """Reproduce Drolet et al. 2023: regular vs hardware-aware networks over seeds.

        Trains both 2-8-1 networks over several seeds and prints the share of test points
        classified correctly in >= 95 % of simulated transfers next to the paper's figures.
        The data source is printed first: the paper's split (half_moons.csv in the folder
        $XBARLAB_REFERENCE_DIR, default ../shared/reference/hardware-aware-article next to
        the checkout) or, when it is absent, a matched make_moons draw.
        """
        overwrite = overwrite or force
        _need_nn()
        if out.exists() and not out.is_dir():
            raise _fail(f"--out {out} is a file; give a folder")
        if paper is Paper.drolet2023_compensation:
            if (full or single_column is not None or ablations or dedup or jobs != 1
                    or compensate or transfers is not None or mapping is not Mapping.both
                    or recipe is not Recipe.default or data is not DataSource.auto):
                raise _fail("--full, --single-column, --ablations, --dedup, --jobs, "
                            "--compensate, --transfers, --mapping, --recipe and --data do not "
                            "apply to drolet2023-compensation (physical mapping, xbarlab's "
                            "recipe; give --chips)")
            from xbarlab.cli import chips_study

            console.print(_data_line("auto"), highlight=False, soft_wrap=True)
            chips_study.run(chips or 20, seeds or 1, epochs or 2000, out, overwrite, threads,
                            fidelity.value, r_wire, passes or 3, device, workers,
                            _PlainTicker(not console.is_terminal))
            return
        if paper is Paper.drolet2023_crossbar:
            if full or single_column is not None or ablations or dedup or jobs != 1:
                raise _fail("--full, --single-column, --ablations, --dedup and --jobs apply to "
                            "drolet2023 only")
            if chips is not None and transfers is not None and chips != transfers:
                raise _fail("--chips and --transfers name the same number here; give one")
            _crossbar(seeds or 3, chips or transfers or 20, epochs or 2000, out, overwrite,
                      threads, fidelity.value, r_wire, passes or 1, device, workers)
            return
        if chips is not None or workers != 1:
            raise _fail("--chips and --workers apply to drolet2023-crossbar and "
                        "drolet2023-compensation only (here: --jobs)")
        seeds = seeds or (FULL_SEEDS if full else 3)
        transfers = transfers or (FULL_TRANSFERS if full else 2000)
        if single_column and mapping is Mapping.physical:
            raise _fail("--single-column is the authors' scheme: use it with --mapping authors "
                        "or both")
        modes = ("authors", "physical") if mapping is Mapping.both else (mapping.value,)
        results_path = out / "results.h5"
        if results_path.exists() and not overwrite:
            raise _fail(f"{results_path} exists; use --overwrite or another --out")
        from xbarlab.log.results import write_results
        from xbarlab.nn import reproduce as rp

        console.print(_data_line(data.value), highlight=False, soft_wrap=True)
        _duplicates(data.value, dedup)
        try:
            cfgs = [rp.make_reproduce_config(
                {"seeds": seeds, "transfers": transfers, "epochs": epochs, "data": data.value,
                 "threads": threads, "mapping": mode, "recipe": recipe.value,
                 "compensate": compensate, "compensation": {"steps": compensate_steps},
                 "ablations": ablations, "dedup": dedup, "jobs": jobs,
                 "single_column": single_column if mode == "authors" else None}
            ) for mode in modes]
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        t0 = time.perf_counter()
        total = sum(c.seeds * c.train_epochs(k) * c.train_config(k, 0).restarts
                    for c in cfgs for k in rp.KINDS)
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("epochs"), TimeElapsedColumn(), console=console,
            disable=not console.is_terminal,
        )
        finished: dict[str, int] = {}
        plain = _PlainTicker(not console.is_terminal)

        with progress:
            task = progress.add_task("training", total=total)

            reps = []
            for cfg in cfgs:
                def on_progress(stage: str, done: int, n: int, mode: str = cfg.mapping) -> None:
                    finished[f"{mode} {stage}"] = done
                    progress.update(task, completed=sum(finished.values()),
                                    description=f"training {mode} {stage}")
                    plain(f"training {mode} {stage}: {sum(finished.values())}/{total} epochs")

                try:
                    reps.append(rp.reproduce_drolet2023(cfg, on_progress,
                                                        on_result=partial_saver(out)))
                except (FileNotFoundError, ValueError) as exc:
                    raise _fail(str(exc)) from None
        output_folder(out)
        pngs = [rp.plot_cdf(rep, out / f"cdf_{rep.config.mapping}.png") for rep in reps]
        pngs += [rp.plot_point_histogram(rep, out / f"histogram_{rep.config.mapping}.png")
                 for rep in reps]
        write_results(results_path, {rep.config.mapping: rp.results_tree(rep) for rep in reps},
                      overwrite=overwrite)
        for rep in reps:
            _print(rep, rp)
        console.print(f"data: {reps[0].data_source}")
        console.print(f"results: {results_path}   plots: {', '.join(map(str, pngs))}   "
                      f"total {time.perf_counter() - t0:.1f} s ({threads} torch thread(s))")


def partial_saver(out: Path) -> Any:
    """on_result for long runs: after every complete seed, the results so far go to
    out/partial_<mapping>.h5 (replaced each time; the final results.h5 is written at the end)."""
    def save(rep: Any) -> None:
        from xbarlab.log.results import write_results
        from xbarlab.nn import reproduce as rp

        done = {k: len(rep.of(k)) for k in rp.KINDS}
        if min(done.values()) < 1 or len(set(done.values())) != 1:
            return
        output_folder(out)
        write_results(out / f"partial_{rep.config.mapping}.h5", {rep.config.mapping:
                      rp.results_tree(rep)}, overwrite=True)

    return save


def _duplicates(prefer: str, dedup: bool) -> None:
    """Print how the split repeats its test points (and what --dedup makes of it)."""
    from xbarlab.nn.data import load_moons
    from xbarlab.nn.dedup import dedup_split, duplicate_report

    data = load_moons(prefer)
    for line in duplicate_report(data).lines()[1:]:
        console.print(f"split: {line}", highlight=False, soft_wrap=True)
    if dedup:
        clean = dedup_split(data)
        rep = duplicate_report(clean)
        console.print(f"--dedup: {clean.source}; test points with a copy in training or "
                      f"validation: {rep.test_in_train + rep.test_in_val}",
                      highlight=False, soft_wrap=True)


def _print(rep: Any, rp: Any) -> None:
    mode = rep.config.mapping
    epochs = " / ".join(str(rep.config.train_epochs(k)) for k in rp.KINDS)
    console.print(f"\n[bold]{rep.config.title}[/]: {rep.config.seeds} seeds x {epochs} epochs "
                  f"(regular / HA) x {rep.config.transfers} transfers "
                  "; mean over seeds [95 % Student t confidence interval] (per seed)"
                  + (f"; {rp.SCHEME_NAMES[rep.config.uses_single_column]}"
                     if mode == "authors" else ""), soft_wrap=True, highlight=False)
    table = Table()
    table.add_column("metric")
    table.add_column("regular")
    table.add_column("hardware-aware")
    table.add_column("paper (reg / HA)")
    for row in rp.table_rows(rep):
        table.add_row(*row)
    console.print(table)
    abl = rp.ablation_rows(rep)
    if abl:
        t = Table(title=f"{mode}: ablations, same networks, {rep.config.transfers} transfers "
                        "per variant; mean over seeds [95 % t-interval]")
        for col in ("transfer effects", "regular: >= 95 %", "regular: mean correctness",
                    "HA: >= 95 %", "HA: mean correctness"):
            t.add_column(col)
        for row in abl:
            t.add_row(*row)
        console.print(t)
    met = rep.meets_targets()
    for kind, (op, value) in rp.TARGETS.items():
        mark = "[green]met[/]" if met[kind] else "[red]missed[/]"
        console.print(f"{mode}: target {kind}: mean share >= 95 % correct "
                      f"{op} {100 * value:.1f} %: {mark}")


def _crossbar(seeds: int, transfers: int, epochs: int, out: Path, overwrite: bool,
              threads: int, fidelity: str, r_wire: float, passes: int, device: str,
              workers: int = 1) -> None:
    """Beyond the paper: crossbar transfers by write-verify, inference through the MVM."""
    results_path = out / "crossbar_results.h5"
    if results_path.exists() and not overwrite:
        raise _fail(f"{results_path} exists; use --overwrite or another --out")
    from xbarlab.config import SimConfig
    from xbarlab.log.results import write_results
    from xbarlab.nn import crossbar_transfer as ct

    console.print(_data_line("auto"), highlight=False, soft_wrap=True)
    plain = _PlainTicker(not console.is_terminal)
    t0 = time.perf_counter()
    try:
        cfg = ct.CrossbarTransferConfig(
            sim=SimConfig(rows=8, cols=8, device=device, fidelity=fidelity,
                          r_wire_row=r_wire, r_wire_col=r_wire),
            passes=passes,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with console.status("starting") as status:
        try:
            def say(msg: str) -> None:
                status.update(msg)
                plain(msg)

            res = ct.beyond_drolet2023(cfg, seeds=seeds, epochs=epochs, transfers=transfers,
                                       progress=say, threads=threads,
                                       workers=workers)
        except (ValueError, RuntimeError) as exc:
            raise _fail(str(exc)) from None
    table = Table(title=f"Beyond Drolet et al. 2023: {seeds} seeds, {transfers} crossbar "
                        f"transfers ({device}, {fidelity}, {r_wire} Ω/segment, {passes} "
                        "write-verify pass(es)); mean +- std over seeds")
    summary = res.summary()
    names = list(summary)
    table.add_column("metric")
    for name in names:
        table.add_column(name)
    for metric in summary[names[0]]:
        table.add_row(metric, *(f"{100 * summary[n][metric][0]:.1f} % +- "
                                f"{100 * summary[n][metric][1]:.1f}" for n in names))
    console.print(table)
    ci_rows = res.chip_intervals()
    ci = Table(title=f"Chip-level statistics over {transfers} programmed chips per network: "
                     "value [95 % interval] (bootstrap over chips; statistical models: t over "
                     f"groups of {transfers} transfers)")
    ci.add_column("network")
    for label in ci_rows[0][2]:
        ci.add_column(label if label.startswith("chip") else f"share >= 95 %, {label}")
    for name, seed, iv in ci_rows:
        ci.add_row(f"{name} seed {seed}", *(v.pct() for v in iv.values()))
    console.print(ci)
    output_folder(out)
    tree: dict[str, Any] = {"config": {"crossbar": cfg.model_dump(mode="json"),
                                       "seconds": res.seconds, "chips": transfers},
                            "calibrated_preset": res.calibrated.model_dump(mode="json")}
    for r, (_, _, ivs) in zip(res.rows, ci_rows, strict=True):
        tree[f"{r.name.replace('-', '_')}_seed{r.seed}"] = {
            "statistical": _metrics_tree(r.statistical), "calibrated": _metrics_tree(r.calibrated),
            "statistical_at_n": r.statistical_at_n, "calibrated_at_n": r.calibrated_at_n,
            "crossbar_mvm": _metrics_tree(r.crossbar.mvm),
            "crossbar_read_back": _metrics_tree(r.crossbar.read_back),
            "crossbar_pulses": r.crossbar.n_pulses, "converged_share": r.crossbar.converged_share,
            "intervals_95": {label.replace(" ", "_").replace("(", "").replace(")", ""):
                             np.array([iv.mean, iv.low, iv.high]) for label, iv in ivs.items()},
        }
    write_results(results_path, tree, overwrite=overwrite)
    console.print(f"results: {results_path}   total {time.perf_counter() - t0:.1f} s")


def _metrics_tree(m: Any) -> dict[str, Any]:
    return {"share_95": m.share_95, "acc_mean": m.acc_mean, "acc_min": m.acc_min,
            "acc_nominal": m.acc_nominal, "n_transfers": m.n_transfers, "bins": list(m.bins),
            "point_fraction": m.point_fraction}
