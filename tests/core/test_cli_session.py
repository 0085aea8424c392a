"""`xbarlab demo` and `xbarlab run` from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.log.reader import LogReader

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def test_demo_logs_a_session_and_plots_it(tmp_path: Path) -> None:
    out = tmp_path / "demo.h5"
    args = ["demo", "--size", "6", "--pattern", "checkerboard", "--out", str(out)]
    res = runner.invoke(app, args)
    assert "in plain words" in res.output and out.with_suffix(".png").stat().st_size > 10_000
    with LogReader(out) as log:
        # exit code and logged status agree: 0 programmed (every cell in tolerance), 3 partial
        assert (log.status, res.exit_code) in (("programmed", 0), ("partial", 3)), res.output
        final = log.final_conductances()
    # The checkerboard is there: high cells read above low cells (bar a stuck device or two).
    mask = (np.add.outer(np.arange(6), np.arange(6)) % 2).astype(bool)
    assert np.mean(final[mask] > np.median(final[~mask]) * 1.5) >= 0.9


def test_demo_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "demo.h5"
    out.write_bytes(b"precious")
    res = runner.invoke(app, ["demo", "--size", "3", "--out", str(out)])
    assert res.exit_code == 2 and "exists" in res.output
    assert out.read_bytes() == b"precious"


def test_run_with_example_config(tmp_path: Path) -> None:
    out = tmp_path / "map.h5"
    cfg = EXAMPLES / "session-read-map.yaml"
    res = runner.invoke(app, ["run", "read_map", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    with LogReader(out) as log:
        events = log.events()
        assert events["kind"].tolist() == ["read"] and tuple(log.info.shape) == (8, 8)
        assert len(log.measurements()) == 64


def test_bad_config_is_one_clear_error_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sim: {rows: 0}\nlimits: {pulse_v_max: -1}\n")
    res = runner.invoke(app, ["run", "read_map", "--config", str(cfg), "--out",
                              str(tmp_path / "x.h5")])
    assert res.exit_code == 2
    assert "bad.yaml: sim.rows" in res.output and "bad.yaml: limits.pulse_v_max" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "x.h5").exists()


def test_protocol_beyond_limits_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "sim: {rows: 2, cols: 2}\nlimits: {pulse_v_max: 1.5}\n"
        "protocol: {kind: write_verify_array, params: {set_max: 2.0}}\n"
    )
    out = tmp_path / "s.h5"
    res = runner.invoke(app, ["run", "write_verify_array", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "s.yaml: protocol.params.set_max: 2 V is above limits.pulse_v_max (1.5 V)" in res.output
    assert not out.exists()


def test_log_plot_of_a_read_map(tmp_path: Path) -> None:
    out = tmp_path / "map.h5"
    cfg = EXAMPLES / "session-read-map.yaml"
    assert runner.invoke(app, ["run", "read_map", "-c", str(cfg), "--out", str(out)]).exit_code == 0
    png = tmp_path / "map.png"
    res = runner.invoke(app, ["log", "plot", str(out), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(app, ["log", "plot", str(out), "--out", str(png)])
    assert again.exit_code == 2 and "exists" in again.output


def test_terminal_map_fits_the_width_and_keeps_the_pattern() -> None:
    from xbarlab.cli.session import render_map

    g = np.zeros((64, 64))
    g[:, 32:] = 1.0  # right half high
    for width, per_line in ((200, 128), (80, 64), (40, 32)):
        lines = render_map(g, width).splitlines()
        assert all(len(line) == per_line for line in lines)
        assert lines[0][0] == " " and lines[0][-1] == "█"
    assert len(render_map(g, 40).splitlines()) == 32  # 2 x 2 blocks: rows shrink too
