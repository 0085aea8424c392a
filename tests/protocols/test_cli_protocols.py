"""`xbarlab run PROTOCOL` for every example config (shrunk to run in a blink), and
`xbarlab log plot` of each log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.log.reader import LogReader
from xbarlab.protocols.registry import PROTOCOLS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "protocols"
runner = CliRunner()
SHRINK: dict[str, dict[str, Any]] = {  # keep the examples' physics, cut their length
    "forming": {"cells": [[0, 0], [3, 5]]},
    "endurance": {"cycles": 40, "read_every": 10},
    "retention": {"points": 5},
    "curve_tracer": {"cycles": 2, "v_step": 0.25},
    "multistate": {"cells": [[0, 0]]},
    "volatility": {"repeats": 1, "points": 5},
}
CHARACTERISATION = sorted(set(PROTOCOLS) - {"write_verify_array", "read_map"})


def _config(tmp_path: Path, name: str) -> Path:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    data["protocol"].update(SHRINK.get(name, {}))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_protocol_has_an_example() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == CHARACTERISATION


@pytest.mark.parametrize("name", CHARACTERISATION)
def test_run_logs_and_plots(tmp_path: Path, name: str) -> None:
    out, png = tmp_path / f"{name}.h5", tmp_path / f"{name}.png"
    res = runner.invoke(app, ["run", name, "-c", str(_config(tmp_path, name)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "success" in res.output
    with LogReader(out) as log:
        assert log.status == "success" and log.info.protocol == name
        kinds = set(log.measurements()["kind"].astype(str))
    assert kinds & {"read", "pulse"}
    res = runner.invoke(app, ["log", "plot", str(out), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000


def test_forming_run_forms_pristine_cells(tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    res = runner.invoke(app, ["run", "forming", "-c", str(_config(tmp_path, "forming")),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 / 2" in res.output  # cells formed
    with LogReader(out) as log:
        reads = log.measurements()
    first = reads[reads["kind"] == "read"].groupby(["row", "col"])["conductance"].first()
    last = reads[reads["kind"] == "read"].groupby(["row", "col"])["conductance"].last()
    assert np.all(first < 5e-6) and np.all(last > 50e-6)


def test_bad_values_fail_with_one_line_each(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("protocol: {kind: retention, duration: -5, points: 1}\n")
    res = runner.invoke(app, ["run", "retention", "-c", str(cfg), "--out",
                              str(tmp_path / "x.h5")])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if "bad.yaml" in line]
    assert len(errors) == 2 and any("duration" in e for e in errors)
    assert "Traceback" not in res.output and not (tmp_path / "x.h5").exists()


def test_unknown_protocol_and_kind_mismatch(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: {kind: endurance}\n")
    res = runner.invoke(app, ["run", "forming", "-c", str(cfg), "--out", str(tmp_path / "a.h5")])
    assert res.exit_code == 2 and "protocol.kind is 'endurance'" in res.output
    res = runner.invoke(app, ["run", "formin", "-c", str(cfg), "--out", str(tmp_path / "a.h5")])
    assert res.exit_code == 2 and "unknown protocol 'formin'" in res.output


def test_duration_option_runs_a_simulated_year_in_a_blink(tmp_path: Path) -> None:
    out = tmp_path / "r.h5"
    res = runner.invoke(app, ["run", "retention", "-c", str(_config(tmp_path, "retention")),
                              "--duration", "3.15e7", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with LogReader(out) as log:
        notes = log.annotations()
    t = [d["t"] for d in notes[notes["message"] == "retention_point"]["data"]]
    assert t[-1] == pytest.approx(3.15e7, rel=1e-6)
    res = runner.invoke(app, ["run", "endurance", "-c", str(_config(tmp_path, "endurance")),
                              "--duration", "5", "--out", str(tmp_path / "e.h5")])
    assert res.exit_code == 2 and "--duration applies to retention and volatility" in res.output
