"""Sweep files: expansion into points, stable ids, one clear line per bad point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.config import ConfigError
from xbarlab.sweep.commands import command
from xbarlab.sweep.spec import SweepFile, expand, load_sweep, validate_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sweep"
runner = CliRunner()
BASE = {"sim": {"rows": 4, "cols": 4, "device": "simple"}}


def _points(spec: dict, base: dict | None = None) -> list:
    sweep = validate_config(spec, SweepFile, "test")
    return expand(sweep, base if base is not None else BASE, command(sweep.command).validate)


def test_axes_combine_as_a_product() -> None:
    pts = _points({
        "command": "run write_verify_array",
        "grid": {"protocol.params.read_scheme": ["grounded", "v/2"], "sim.fidelity":
                 ["ideal", "wires"]},
        "zip": [{"sim.rows": [4, 6, 8], "sim.cols": [4, 6, 8]}],
        "points": [{"protocol.params.tolerance": 0.01}, {"protocol.params.tolerance": 0.02}],
        "seeds": 3,
    })
    assert len(pts) == 2 * 2 * 3 * 2 * 3
    assert len({p.point_id for p in pts}) == len(pts)
    one = pts[0]
    assert one.config["sim"]["rows"] == one.config["sim"]["cols"] == 4
    assert one.config["seed"] == one.config["sim"]["seed"] == 0
    # zipped values move together, never crossed
    assert all(p.config["sim"]["rows"] == p.config["sim"]["cols"] for p in pts)
    assert {p.config["protocol"]["params"]["tolerance"] for p in pts} == {0.01, 0.02}


def test_ids_are_stable_and_follow_the_resolved_config() -> None:
    spec = {"command": "run read_map", "grid": {"sim.rows": [4, 5]}}
    a, b = _points(spec), _points(spec)
    assert [p.point_id for p in a] == [p.point_id for p in b]
    changed = _points(spec, {"sim": {"rows": 4, "cols": 7, "device": "simple"}})
    assert not {p.point_id for p in a} & {p.point_id for p in changed}
    assert all(p.config["protocol"]["kind"] == "read_map" for p in a)


@pytest.mark.parametrize(("spec", "expected"), [
    ({"command": "run write_verify_array", "grid": {"sim.r_wir_row": [1.0]}},
     "point 0 (sim.r_wir_row=1.0): sim.r_wir_row: no such field"),
    ({"command": "run write_verify_array", "grid": {"sim.rows": [4, "many"]}},
     "point 1 (sim.rows=many): sim.rows: Input should be a valid integer"),
    ({"command": "run write_verify_array", "grid": {"sim.rows": [4, 4]}},
     "point 1 (sim.rows=4) is the same run as point 0"),
    ({"command": "run nothing"}, "command: unknown 'run nothing'"),
])
def test_bad_points_each_get_one_line(spec: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _points(spec)
    assert str(err.value).splitlines()[0].startswith(expected), str(err.value)


def test_every_bad_point_is_listed() -> None:
    with pytest.raises(ConfigError) as err:
        _points({"command": "run write_verify_array",
                 "grid": {"sim.rows": [0, 4, -1], "protocol.params.tolerance": [0.01, 2.0]}})
    lines = str(err.value).splitlines()
    # rows 0 and -1 fail with both tolerances; tolerance 2.0 also fails with rows=4
    assert len(lines) == 2 * 3 + 1, lines


@pytest.mark.parametrize(("text", "expected"), [
    ("", "empty sweep file"),
    ("command: run read_map\nzip: {sim.rows: [4, 5], sim.cols: [4]}\n", "differ in length"),
    ("command: run read_map\ngrd: {sim.rows: [4]}\n", "grd: Extra inputs"),
    ("command: run read_map\nbase: missing.yaml\n", "missing.yaml: cannot read"),
])
def test_bad_sweep_files(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_sweep(f)
    res = runner.invoke(app, ["sweep", "run", str(f), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and expected.split(":")[0] in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists(), "nothing is started for a bad sweep file"


def test_example_sweep_is_valid() -> None:
    sweep, base = load_sweep(EXAMPLES / "scheme-wires.yaml")
    pts = expand(sweep, base, command(sweep.command).validate)
    assert len(pts) == 24
    res = runner.invoke(app, ["sweep", "check", str(EXAMPLES / "scheme-wires.yaml")])
    assert res.exit_code == 0 and "24 points" in res.output


def test_base_bench_path_is_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text(yaml.safe_dump({"bench": "bench.yaml"}))
    (tmp_path / "s.yaml").write_text("command: run read_map\nbase: cfg/base.yaml\n")
    _, base = load_sweep(tmp_path / "s.yaml")
    assert Path(base["bench"]) == (tmp_path / "cfg" / "bench.yaml").resolve()
