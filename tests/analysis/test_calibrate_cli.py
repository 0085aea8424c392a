"""`xbarlab calibrate` on the command line: a good log gives a preset the simulator runs and a
report; every bad input gives one error line, exit code 2, and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from tests.analysis.simlogs import simulate_read_map, simulate_write_verify
from xbarlab.analysis.calibrate import calibrate
from xbarlab.analysis.calibrate_data import CalibrationInputError
from xbarlab.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("calib-cli")
    wv = simulate_write_verify(d / "wv16.h5", "tio2-o921c", seed=5, shape=(16, 16)).path
    wv8 = simulate_write_verify(d / "wv8.h5", "tio2-o921c", seed=6, shape=(8, 8)).path
    rmap = simulate_read_map(d / "map.h5", seed=7, shape=(16, 16)).path
    noise = d / "noise.h5"
    noise.write_bytes(b"not a log at all " * 200)
    foreign = d / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = [1.0, 2.0, 3.0]
    cut = d / "cut.h5"
    shutil.copy(wv, cut)
    with cut.open("r+b") as fh:
        fh.truncate(cut.stat().st_size // 2)
    return {"wv": wv, "wv8": wv8, "map": rmap, "noise": noise, "foreign": foreign, "cut": cut}


def _bad(args: list[str], out: Path, what: str) -> None:
    res = runner.invoke(app, ["calibrate", *args, "--out", str(out),
                              "--report", str(out.with_suffix(".png"))])
    assert res.exit_code == 2, res.output
    text = res.output.strip()
    assert "Traceback" not in text and text.startswith("error:"), text
    assert len(" ".join(text.split()).split("error:")) == 2, text  # one error
    assert what in " ".join(text.split()), text
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_good_logs_give_a_preset_and_a_report(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "my-device.yaml"
    res = runner.invoke(app, ["calibrate", str(logs["wv"]), "--out", str(out),
                              "--report", str(tmp_path / "report.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "set.a" in res.output and "kept from tio2-o921c" in res.output
    assert "set rate at" in res.output
    demo = runner.invoke(app, ["demo", "--device", str(out), "--size", "4", "--no-plot",
                               "--out", str(tmp_path / "demo.h5")])
    assert demo.exit_code in (0, 3), demo.output  # ran on the calibrated devices
    assert (tmp_path / "demo.h5").is_file()


def test_two_logs_pool_their_devices(logs: dict[str, Path]) -> None:
    cal = calibrate([logs["wv"], logs["wv"]])
    one = calibrate([logs["wv"]])
    assert len(cal.preset["calibration"]["logs"]) == 2
    # the same data twice: the same rates, with twice the steps (t within 1 %: the disturb
    # fit weighs the steps' t by its standard error, which the doubled data halves)
    assert cal.rate_fits[0].t == pytest.approx(one.rate_fits[0].t, rel=1e-2)
    assert len(cal.rate_fits[0].g0) == 2 * len(one.rate_fits[0].g0)


def test_log_without_write_verify_traces(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["map"])], tmp_path / "a.yaml", "determine no parameter")


def test_corrupt_file(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["noise"])], tmp_path / "b.yaml", "noise.h5")


def test_cut_short_log(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["cut"])], tmp_path / "c.yaml", "cut.h5")


def test_foreign_hdf5(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["foreign"])], tmp_path / "d.yaml", "not an xbarlab log")


def test_logs_of_different_sizes(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["wv"]), str(logs["wv8"])], tmp_path / "e.yaml", "one array size")


def test_missing_file_and_unknown_base(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(tmp_path / "nothere.h5")], tmp_path / "f.yaml", "no such file")
    _bad([str(logs["wv"]), "--base", "no-such-preset"], tmp_path / "g.yaml", "--base")
    with pytest.raises(CalibrationInputError):
        calibrate([])


def test_check_reruns_a_held_out_session(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    res = runner.invoke(app, ["calibrate", str(logs["wv"]), "--out", str(out), "--check",
                              str(logs["wv8"]), "--report", str(tmp_path / "r.png")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"prediction of {logs['wv8']}" in text and "final error KS p =" in text
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_held_out_logs(logs: dict[str, Path], tmp_path: Path) -> None:
    _bad([str(logs["wv"]), "--check", str(logs["noise"])], tmp_path / "h.yaml", "--check")
    _bad([str(logs["wv"]), "--check", str(logs["map"])], tmp_path / "i.yaml",
         "not a write-verify session")


def test_unchecked_law_warned_and_bias_check(logs: dict[str, Path], tmp_path: Path) -> None:
    """A write-verify log alone: the CLI warns that the rates rest on the base's I-V law and
    clip levels; --bias-check re-runs the session on the calibrated preset and reports each
    rate's bias and its standard error with it (also in the preset's calibration block)."""
    import yaml

    out = tmp_path / "b.yaml"
    res = runner.invoke(app, ["calibrate", str(logs["wv8"]), "--out", str(out), "--bias-check"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "warning:" in text and "which the logs do not check" in text
    assert "with the bias check's" in text
    block = yaml.safe_load(out.read_text(encoding="utf-8"))["calibration"]
    assert block["bias_check"]["log"] == str(logs["wv8"])
    for r in block["rate_at_median_amplitude"]:
        assert r["rel_stderr_with_bias"] >= r["rel_stderr"]
        assert r["rel_stderr_with_bias"] >= abs(r["bias_check"])
