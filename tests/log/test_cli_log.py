"""`xbarlab log summary / export / recover` through typer's CliRunner."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fakes import RecordingCrossbar
from xbarlab.cli.main import app
from xbarlab.documents import Document, Event
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits, LimitViolation
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Plan, Pulse, Read

runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def _plan() -> Plan:
    yield Read(None, 0.2, tag="before")
    for v in (1.6, 1.4):
        yield Pulse((0, 0), v, 1e-6)
    with contextlib.suppress(LimitViolation):
        yield Pulse((0, 1), 9.0, 1e-6)  # refused by the bench limits
    yield Read(((0, 0), (3, 3)), 0.2, tag="verify")
    yield Checkpoint("done")


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, RecordingCrossbar, list[Event]]:
    docs: list[Document] = []
    xbar = RecordingCrossbar()
    path = tmp_path / "session.h5"
    with HDF5Writer(path) as writer:
        RunEngine(xbar, BenchLimits(), [writer, docs.append]).run(
            _plan(), protocol="cli-test", seed=4).raise_for_status()
    return path, xbar, [d for d in docs if isinstance(d, Event)]


def _row(out: str, first: str) -> list[str]:
    """Cells of the table row whose first cell is `first`."""
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


def test_summary_shows_status_counts_and_final_conductances(
    logged: tuple[Path, RecordingCrossbar, list[Event]],
) -> None:
    path, xbar, _ = logged
    res = runner.invoke(app, ["log", "summary", str(path)], env=ENV)
    assert res.exit_code == 0, res.output
    out = res.output
    assert _row(out, "status")[1] == "success"
    assert _row(out, "protocol")[1] == "cli-test" and _row(out, "seed")[1] == "4"
    assert _row(out, "array")[1] == "4 x 4" and _row(out, "backend")[1] == "recording"
    # kind, events, cell measurements, compliance hits
    assert _row(out, "read") == ["read", "2", str(16 + 2), "0"]
    assert _row(out, "pulse") == ["pulse", "2", "2", "0"]
    assert _row(out, "refused") == ["refused", "1", "0", "0"]
    assert _row(out, "checkpoint") == ["checkpoint", "1", "0", "0"]
    assert _row(out, "total")[1:3] == ["6", "20"]
    g = xbar.g  # the backend's true state: every cell's last read is exact on this fake
    stats = _row(out, "16 / 16")
    expected = [f"{x * 1e6:.2f} µS" for x in (g.min(), np.median(g), g.mean(), g.max())]
    assert stats[1:] == expected
    assert g[0, 0] > 150e-6 * 1.2  # the pulses did move cell (0, 0)


def test_export_writes_one_row_per_cell_measurement(
    logged: tuple[Path, RecordingCrossbar, list[Event]], tmp_path: Path,
) -> None:
    path, _, events = logged
    out = tmp_path / "m.csv"
    res = runner.invoke(app, ["log", "export", str(path), "--csv", str(out)], env=ENV)
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    measured = [e for e in events if len(e.cells)]
    assert len(frame) == sum(len(e.cells) for e in measured) == 20
    np.testing.assert_array_equal(
        frame["conductance (S)"], np.concatenate([e.conductances for e in measured]))
    iso = pd.to_datetime(frame["time (UTC)"], format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True)
    unix = (iso - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    np.testing.assert_allclose(unix, np.concatenate(
        [np.full(len(e.cells), e.time) for e in measured]), rtol=0, atol=1e-6)  # µs
    assert list(frame["kind"]) == [e.kind.value for e in measured for _ in e.cells]
    assert list(frame["step"][:16]) == ["before"] * 16

    events_csv = tmp_path / "e.csv"
    res = runner.invoke(app, ["log", "export", str(path), "--csv", str(events_csv),
                              "--table", "events"], env=ENV)
    assert res.exit_code == 0, res.output
    ev = pd.read_csv(events_csv, keep_default_na=False)
    assert list(ev["seq"]) == [e.seq for e in events]
    assert "outside the bench limits" in ev["message"][3]


def test_export_refuses_to_overwrite_without_force(
    logged: tuple[Path, RecordingCrossbar, list[Event]], tmp_path: Path,
) -> None:
    path, _, _ = logged
    out = tmp_path / "m.csv"
    out.write_text("keep me")
    res = runner.invoke(app, ["log", "export", str(path), "--csv", str(out)], env=ENV)
    assert res.exit_code != 0 and "--overwrite" in res.output and "Traceback" not in res.output
    assert out.read_text() == "keep me"
    res = runner.invoke(app, ["log", "export", str(path), "--csv", str(out), "--force"], env=ENV)
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out)) == 20


def test_bad_files_give_one_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["log", "summary", str(tmp_path / "nope.h5")], env=ENV)
    assert res.exit_code == 2 and "no such log file" in res.output
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    res = runner.invoke(app, ["log", "summary", str(junk)], env=ENV)
    assert res.exit_code == 2 and "not an HDF5 file (8 bytes" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["log", "recover", str(junk)], env=ENV)
    assert res.exit_code == 2 and "not an HDF5 file" in res.output
    assert not (tmp_path / "junk.recovered.h5").exists()


def test_follow_prints_rows_until_the_run_stopped(
    logged: tuple[Path, RecordingCrossbar, list[Event]],
) -> None:
    path, xbar, _ = logged
    res = runner.invoke(app, ["log", "follow", str(path), "--timeout", "30"], env=ENV)
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1].endswith("success, 20 rows")
    last = f"G = {xbar.g[3, 3] * 1e6:.2f} µS"  # the last measurement read cell (3, 3)
    assert last in res.output


def test_summary_of_a_log_without_a_run(tmp_path: Path) -> None:
    HDF5Writer(tmp_path / "empty.h5").close()
    res = runner.invoke(app, ["log", "summary", str(tmp_path / "empty.h5")], env=ENV)
    assert res.exit_code == 2 and "no run yet" in res.output


def test_a_writer_killed_before_the_run_start_gets_no_circular_advice(tmp_path: Path) -> None:
    """A log whose writer died before the run start (48 bytes or a few KiB): every command says
    nothing was logged, none sends the user to another command."""
    import subprocess
    import sys

    early = tmp_path / "early.h5"
    subprocess.run([sys.executable, "-c", "import os, sys; from xbarlab.log.writer import "
                    "HDF5Writer; w = HDF5Writer(sys.argv[1]); w._file.flush(); os._exit(0)",
                    str(early)], check=True, timeout=120)
    short = tmp_path / "short.h5"
    short.write_bytes(early.read_bytes()[:48])
    for path in (early, short):
        for args in (["summary"], ["verify"], ["recover"], ["export", "--csv",
                                                             str(tmp_path / "x.csv")]):
            res = runner.invoke(app, ["log", args[0], str(path), *args[1:]], env=ENV)
            assert res.exit_code == 2, (args, res.output)
            assert "no run was logged" in res.output and "recover" not in res.output, res.output
            assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "early.recovered.h5").exists()


def test_what_is_not_a_log_gets_no_advice_to_recover_it(tmp_path: Path) -> None:
    """A missing file, a directory, an empty file, a file that is not HDF5: one line each from
    `verify` and `recover`, exit 2, and no advice to salvage what holds nothing to salvage."""
    empty, junk = tmp_path / "empty.h5", tmp_path / "junk.h5"
    empty.write_bytes(b"")
    junk.write_bytes(b"x" * 4096)
    cases = {tmp_path / "nope.h5": "no such log file", tmp_path: "a directory",
             empty: "not an HDF5 file (empty", junk: "not an HDF5 file (4096 bytes"}
    for path, said in cases.items():
        for command in ("verify", "recover"):
            res = runner.invoke(app, ["log", command, str(path)], env=ENV)
            assert res.exit_code == 2, (command, path, res.output)
            assert said in res.output and "salvages" not in res.output, (command, res.output)
            assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.h5", "junk.h5"]


def test_an_overwritten_signature_is_salvaged_in_full(
    logged: tuple[Path, RecordingCrossbar, list[Event]],
) -> None:
    """The first bytes of a log overwritten (the HDF5 signature gone): `verify` calls it a
    damaged superblock and points to `recover`, which rebuilds the superblock and loses
    nothing."""
    path, _, events = logged
    data = bytearray(path.read_bytes())
    data[:8] = b"\0" * 8
    path.write_bytes(bytes(data))
    for command in ("verify", "summary"):
        res = runner.invoke(app, ["log", command, str(path)], env=ENV)
        assert res.exit_code == 2 and "signature is overwritten" in res.output, res.output
        assert f"xbarlab log recover {path}" in res.output
    res = runner.invoke(app, ["log", "recover", str(path)], env=ENV)
    assert res.exit_code == 0, res.output
    assert "lost: nothing" in res.output and "superblock damaged: rebuilt" in res.output
    copy = path.with_name("session.recovered.h5")
    res = runner.invoke(app, ["log", "verify", str(copy)], env=ENV)
    assert res.exit_code == 0 and "sound" in res.output, res.output
    res = runner.invoke(app, ["log", "export", str(copy), "--csv", str(path.with_suffix(".csv")),
                              "--table", "events"], env=ENV)
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(path.with_suffix(".csv"), comment="#")) == len(events)
