"""A log deleted while its run writes it (`rm` in another terminal, a cleaning script): the
writer kept writing into a file with no name, and everything was lost when it closed. Now the
complete, closed log is copied back when the writer closes: to its path if that is free, else
next to it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.log.docs import read_event, run_start, run_stop
from xbarlab.log.reader import LogReader
from xbarlab.log.verify import verify
from xbarlab.log.writer import HDF5Writer

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, during: object) -> HDF5Writer:
    w = HDF5Writer(path, flush_interval=None)
    w(run_start())
    for k in range(1, 4):
        w(read_event(k, [(0, k)], 0.2, [1e-4 * k]))
    w.flush()
    during()  # type: ignore[operator]
    for k in range(4, 7):
        w(read_event(k, [(1, k - 4)], 0.2, [1e-4 * k]))
    w(run_stop(6))
    w.close()
    return w


def test_a_deleted_log_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    w = _write(path, lambda: path.unlink())
    assert w.restored == path
    report = verify(path)
    assert report.exit_code == 0 and report.status == "success", report.problems
    with LogReader(path) as log:
        assert len(log.measurements()) == 6  # the rows after the deletion too


def test_a_log_replaced_meanwhile_comes_back_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"

    def replace() -> None:
        path.unlink()
        path.write_text("someone else's file")

    w = _write(path, replace)
    assert w.restored == tmp_path / "run.restored.h5"
    assert path.read_text() == "someone else's file"  # not touched
    assert verify(tmp_path / "run.restored.h5").exit_code == 0


def test_a_moved_log_is_left_where_it_went(tmp_path: Path) -> None:
    path, moved = tmp_path / "run.h5", tmp_path / "elsewhere.h5"
    w = _write(path, lambda: path.rename(moved))
    assert w.restored is None and not path.exists()
    assert verify(moved).exit_code == 0


def test_the_run_says_its_log_was_deleted_and_copied_back(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    cfg["sim"].update(rows=64, cols=64)  # several seconds of run after the log appears
    session = tmp_path / "s.yaml"
    session.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "run.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbarlab.cli.main", "run", "write_verify_array", "-c",
         str(session), "--out", str(log)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    with proc:
        deadline = time.monotonic() + 120
        while not log.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "no log appeared"
            time.sleep(0.02)
        time.sleep(0.5)
        log.unlink()  # while the run writes it
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err  # partial, as the example session always ends
    assert "was deleted while the run wrote it" in " ".join(err.split()), err
    report = verify(log)
    assert report.exit_code == 0 and report.status == "partial", report.problems
