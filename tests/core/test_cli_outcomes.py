"""Run outcomes say whether the job was done; metadata, CSV, progress and units for people."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from xbarlab import __version__
from xbarlab.cli.main import app
from xbarlab.cli.progress import ProgressSubscriber
from xbarlab.documents import Event, EventKind, RunStatus, RunStop
from xbarlab.log.reader import LogReader
from xbarlab.protocols.write_verify import ArrayOutcome, WriteVerifyOutcome
from xbarlab.units import duration, si

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def flat(output: str) -> str:
    """Console output with table borders removed and whitespace collapsed (tables wrap)."""
    return " ".join(re.sub(r"[│┃┌┐└┘├┤┬┴┼─━]", " ", output).split())

# 2 x 2 'simple' devices start at 100-200 µS. Targets at 140-160 µS with a ±50 % band are met
# without a pulse; targets at 590 µS cannot be reached with a one-pulse budget.
SESSION = """\
seed: 3
sim: {{rows: 2, cols: 2, device: simple, seed: 3}}
protocol:
  kind: write_verify_array
  target: {{pattern: checkerboard, g_low: {low}, g_high: {high}}}
  params: {{tolerance: 0.5, max_pulses: 1}}
"""


@pytest.mark.parametrize(("low", "high", "status", "code", "text"), [
    (140e-6, 160e-6, "programmed", 0, "all 4 cells within ±50 % of target at the final read"),
    (150e-6, 590e-6, "partial", 3, "2 / 4 cells within ±50 % of target at the final read"),
    (585e-6, 590e-6, "failed", 1, "none of the 4 cells within ±50 %"),
])
def test_write_verify_status_and_exit_code_say_how_well_it_programmed(
    tmp_path: Path, low: float, high: float, status: str, code: int, text: str
) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(SESSION.format(low=low, high=high))
    out = tmp_path / "s.h5"
    res = runner.invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out", str(out)])
    assert res.exit_code == code, res.output
    assert text in flat(res.output)
    with LogReader(out) as log:
        assert log.status == status and text in (log.end.reason if log.end else "")
    summary = runner.invoke(app, ["log", "summary", str(out)])
    assert summary.exit_code == 0 and status in summary.output


def _outcome(cells_ok: list[bool], stuck: int = 0) -> ArrayOutcome:
    targets = np.full((1, len(cells_ok)), 200e-6)
    final = np.where(cells_ok, 200e-6, 300e-6)[None, :]
    cells = [WriteVerifyOutcome((0, j), 200e-6, 200e-6, True, 3, 0,
                                "stuck: no move" if j < stuck else "converged")
             for j in range(len(cells_ok))]
    return ArrayOutcome(targets, cells, final, 0.01)


def test_verdict_counts_only_the_final_read() -> None:
    assert _outcome([True, True]).verdict()[0] == "programmed"
    status, reason = _outcome([True, False, False], stuck=1).verdict()
    assert status == "partial" and "1 / 3 cells" in reason and "2 outside" in reason
    assert "1 given up as stuck" in reason
    assert _outcome([False, False]).verdict()[0] == "failed"
    assert RunStatus("partial") is RunStatus.PARTIAL


def test_metadata_goes_into_the_run_start_and_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "m.h5"
    res = runner.invoke(app, ["run", "read_map", "-c", str(EXAMPLES / "session-read-map.yaml"),
                              "--out", str(out), "--sample", "die P464EC", "--operator", "ada",
                              "--note", "after anneal, 21 °C"])
    assert res.exit_code == 0, res.output
    with LogReader(out) as log:
        cfg = log.info.config
    assert (cfg["sample"], cfg["operator"], cfg["notes"]) == ("die P464EC", "ada",
                                                              "after anneal, 21 °C")
    summary = runner.invoke(app, ["log", "summary", str(out)])
    assert "die P464EC" in summary.output and "after anneal" in summary.output


def test_metadata_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text((EXAMPLES / "session-read-map.yaml").read_text()
                   + "sample: wafer 7\noperator: bob\nnotes: first light\n")
    out = tmp_path / "m.h5"
    assert runner.invoke(app, ["run", "read_map", "-c", str(cfg), "--out", str(out)]
                         ).exit_code == 0
    with LogReader(out) as log:
        assert log.info.config["sample"] == "wafer 7" and log.info.config["notes"] == "first light"


def test_csv_has_units_in_the_header_and_iso_times(tmp_path: Path) -> None:
    out = tmp_path / "m.h5"
    runner.invoke(app, ["run", "read_map", "-c", str(EXAMPLES / "session-read-map.yaml"),
                        "--out", str(out)])
    csv = tmp_path / "m.csv"
    res = runner.invoke(app, ["log", "export", str(out), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(csv)
    for col in ("time (UTC)", "voltage (V)", "current (A)", "conductance (S)", "width (s)"):
        assert col in frame.columns
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", frame["time (UTC)"].iloc[0])
    with LogReader(out) as log:
        g = log.measurements()["conductance"].to_numpy()
    np.testing.assert_allclose(frame["conductance (S)"].to_numpy(), g, rtol=1e-12)
    # --force is the old name of --overwrite: still accepted, not shown in --help
    assert runner.invoke(app, ["log", "export", str(out), "--csv", str(csv), "--force"]
                         ).exit_code == 0
    assert "--force" not in runner.invoke(app, ["log", "export", "--help"]).output


def test_demo_summary_in_plain_words(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "--size", "4", "--out", str(tmp_path / "d.h5"),
                              "--no-plot"])
    assert res.exit_code in (0, 3), res.output
    text = flat(res.output)
    assert re.search(r"\d+ of 16 cells \(\d+ %\) ended within ±1 % of their target", text)
    assert re.search(r"the median cell is off by [\d.]+ %, the worst by [\d.]+ %", text)
    assert "so the final read is the figure that counts" in text


def test_version_and_choices_in_help() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"xbarlab {__version__}"
    demo_help = runner.invoke(app, ["demo", "--help"], terminal_width=200,
                              env={"COLUMNS": "200"}).output
    for choice in ("letter_x", "checkerboard", "gradient", "ring", "tio2-o921c"):
        assert choice in demo_help
    assert "ideal" in runner.invoke(app, ["emulate", "--help"], terminal_width=200,
                                   env={"COLUMNS": "200"}).output


def test_plain_progress_lines_outside_a_terminal() -> None:
    buf = io.StringIO()
    bar = ProgressSubscriber(Console(file=buf, force_terminal=False, width=120), interval=0.0)
    assert bar.plain
    with bar:
        bar(Event(1, 0.0, EventKind.PULSE, "p", "set"))
        bar(Event(2, 0.0, EventKind.CHECKPOINT, "p", "cell_done",
                  data={"progress": (3, 16), "pass": 1}))
        bar(RunStop("r", 0.0, RunStatus.PARTIAL, "", 2))
    lines = buf.getvalue().splitlines()
    assert any("3/16 cells, pass 1, 1 pulses" in line for line in lines), lines
    assert all("\x1b[" not in line for line in lines)  # no terminal control codes in a log


def test_si_prefixes_and_symbols() -> None:
    assert si(3.4e-6, "S") == "3.4 µS"
    assert si(1e-6, "s") == "1 µs"
    assert si(0.00123, "A") == "1.23 mA"
    assert si(999.95e-6, "S") == "1 mS"
    assert si(-2.5, "V") == "-2.5 V" and si(2.0, "V", signed=True) == "+2 V"
    assert si(1400.0, "Ω") == "1.4 kΩ"
    assert duration(0.0123) == "12.3 ms" and duration(4.2) == "4.20 s"


def test_a_sneak_path_dominated_read_map_is_flagged_in_the_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text("sim: {rows: 12, cols: 12, fidelity: wires, r_wire_row: 1.0, r_wire_col: 1.0}\n"
                   "protocol: {kind: read_map, params: {scheme: floating}}\n")
    res = runner.invoke(app, ["run", "read_map", "-c", str(cfg), "--out", str(tmp_path / "f.h5")])
    assert res.exit_code == 0, res.output
    assert "144 of 144 reads above what one device can conduct (893 µS)" in flat(res.output)
    cfg.write_text(cfg.read_text().replace("floating", "grounded"))
    res = runner.invoke(app, ["run", "read_map", "-c", str(cfg), "--out", str(tmp_path / "g.h5")])
    assert res.exit_code == 0 and "sneak paths" not in res.output


def test_compliance_hits_are_counted_in_the_summary(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SESSION.format(low=150e-6, high=590e-6) + "limits: {compliance: 1.0e-4}\n")
    res = runner.invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out",
                              str(tmp_path / "c.h5")])
    assert res.exit_code == 3, res.output
    text = flat(res.output)
    # two 590 µS targets, one pulse each at 1.1 V on a 100-200 µS device: > 100 µA
    assert re.search(r"compliance 2 of 2 pulses(, \d+ of \d+ reads)? hit the current "
                     r"compliance \(100 µA\)", text), text
