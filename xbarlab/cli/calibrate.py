"""`xbarlab calibrate`: fit the TiO2 compact model to a lab's devices from its logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xbarlab.cli.common import fail, output_path
from xbarlab.cli.console import Console
from xbarlab.units import si

console = Console()


def _show(value: float, unit: str, digits: int = 4) -> str:
    """A value with its unit as a person reads it (SI prefixes, Ω)."""
    if unit in ("V", "S"):
        return si(value, unit)
    if unit == "ohm":
        return si(value, "Ω")
    unit = unit.replace("ohm", "Ω")
    return f"{value:.{digits}g}" + ("" if unit == "1" else f" {unit}")


def register(app: typer.Typer) -> None:
    """Add the `calibrate` command to `app`."""

    @app.command()
    def calibrate(
        logs: Annotated[list[Path], typer.Argument(help="xbarlab HDF5 logs of one array size")],
        out: Annotated[Path, typer.Option("--out", help="the calibrated preset (.yaml)")],
        base: Annotated[str, typer.Option(help="preset whose other parameters are kept")] = (
            "tio2-o921c"),
        report: Annotated[Path | None, typer.Option(help="report figure (.png/.svg/.pdf)")] = (
            None),
        overwrite: Annotated[bool, typer.Option(help="replace existing output files")] = False,
        check: Annotated[list[Path] | None, typer.Option(
            help="a held-out write-verify log: its session is re-run on the calibrated preset "
                 "and pulses per cell and final errors compared (KS test; repeatable)")] = None,
        bias_check: Annotated[bool, typer.Option(
            help="re-run the first write-verify session on the calibrated preset, recalibrate, "
                 "and add the rates' bias to their standard errors (as long again)")] = False,
    ) -> None:
        """Fit switching rates, read noise, device spread and stuck fractions (write-verify
        traces), read I-V nonlinearity (I-V sweeps), R_on/R_off (cycling into saturation) and
        drift (retention runs); write a preset usable with `--device FILE.yaml`."""
        from xbarlab.analysis.calibrate import (
            CalibrationInputError,
            write_preset,
        )
        from xbarlab.analysis.calibrate import calibrate as run_calibration

        output_path(out, "yaml", overwrite=overwrite)
        if report is not None:
            output_path(report, "plot", overwrite=overwrite, option="--report")
        try:
            cal = run_calibration(list(logs), base=base, name=out.stem)
        except CalibrationInputError as exc:
            raise fail(str(exc).splitlines()[0]) from None
        if not cal.estimates and not cal.estimated:
            raise fail("the logs determine no parameter (no write-verify pulse steps, no read "
                       "pairs, no stuck cells, no I-V sweep, no saturating cycling, no retention "
                       "run): nothing written")
        if bias_check:
            import tempfile

            from xbarlab.analysis.calibrate_bias import bias_check as run_bias_check

            with tempfile.TemporaryDirectory(prefix="xbarlab-calibrate-") as tmp:
                scratch = write_preset(cal, Path(tmp) / out.name)
                try:
                    found = run_bias_check(cal, scratch)
                except CalibrationInputError as exc:
                    raise fail(f"--bias-check: {str(exc).splitlines()[0]}") from None
            if not found:
                console.print("[yellow]warning:[/] --bias-check: no write-verify session with "
                              "rates among the logs: nothing checked", soft_wrap=True)
        checks = []
        if check:
            import tempfile

            from xbarlab.analysis.calibrate_predict import predict_session

            # the held-out sessions run on a scratch copy: a bad one writes nothing
            with tempfile.TemporaryDirectory(prefix="xbarlab-calibrate-") as tmp:
                scratch = write_preset(cal, Path(tmp) / out.name)
                for held in check:
                    try:
                        checks.append(predict_session(scratch, held))
                    except CalibrationInputError as exc:
                        raise fail(f"--check: {str(exc).splitlines()[0]}") from None
        write_preset(cal, out)
        for res in checks:
            console.print(f"prediction of {res.log}: pulses per cell KS p = {res.p_pulses:.3g}, "
                          f"final error KS p = {res.p_error:.3g} "
                          f"({'agree' if min(res.p_pulses, res.p_error) > 0.05 else 'differ'} "
                          "at 5 %)", soft_wrap=True)
        table = Table("parameter", "value", "std error", "points")
        for e in cal.estimates:
            table.add_row(e.name, _show(e.value, e.unit), _show(e.stderr, e.unit, 2), str(e.n))
        for e in cal.estimated:  # written, not determined (calibrate_determined)
            table.add_row(f"{e.name} (not determined)", _show(e.value, e.unit),
                          _show(e.stderr, e.unit, 2), str(e.n))
        console.print(table)
        for r in cal.preset["calibration"].get("rate_at_median_amplitude", []):
            bias = (f"(with the bias check's {r['bias_check']:+.1%}: "
                    f"{r['rel_stderr_with_bias']:.1%}) " if "bias_check" in r else "")
            console.print(f"{r['polarity']} rate at {r['v_ref']:.3g} V: {r['rate']:.4g} 1/(Ω s), "
                          f"std error {r['rel_stderr']:.1%} {bias}"
                          f"({'determined' if r.get('determined') else 'not determined'})",
                          soft_wrap=True)
        console.print(f"kept from {base}: {', '.join(cal.kept)}", soft_wrap=True)
        for w in cal.warnings:
            console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
        if report is not None:
            from xbarlab.analysis.calibrate_report import plot_calibration

            console.print(f"report: {plot_calibration(cal, report, checks)}")
        console.print(f"preset: {out} (use it with --device {out})")
