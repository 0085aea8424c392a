"""`--resume LOG`: a killed run continues from its log; cells done are not programmed again and
the new log links to the old run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.log.reader import LogError, LogReader

runner = CliRunner()


def _done(log: LogReader) -> list[tuple[int, int]]:
    notes = log.annotations()
    rows = notes[(notes["kind"] == "checkpoint") & (notes["message"] == "cell_done")]
    return [(int(d["cell"][0]), int(d["cell"][1])) for d in rows["data"]]


def _count_done(path: Path) -> int:
    try:
        with LogReader(path) as log:
            return len(_done(log)) if log.started else 0
    except (LogError, OSError, KeyError):
        return 0


def _pulsed(log: LogReader) -> set[tuple[int, int]]:
    m = log.measurements()
    p = m[m["kind"] == "pulse"]
    return set(zip(p["row"].astype(int), p["col"].astype(int), strict=True))


def test_killed_32x32_write_verify_resumes_without_programming_a_done_cell(
        tmp_path: Path) -> None:
    cfg = tmp_path / "wv.yaml"
    cfg.write_text("sim: {rows: 32, cols: 32, seed: 0}\nprotocol: {kind: write_verify_array}\n")
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbarlab.cli.main", "run", "write_verify_array", "-c", str(cfg),
         "--out", str(a)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while _count_done(a) < 40:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    res = runner.invoke(app, ["run", "write_verify_array", "--resume", str(a), "--out", str(b)])
    assert res.exit_code in (0, 3), res.output  # done, or partial: disturbed cells at the end
    assert "resuming run" in res.output
    with LogReader(a) as old:  # readable again (recovered by the resume)
        done_a, old_id, pulsed_a = _done(old), old.info.run_id, _pulsed(old)
        assert old.status == "unfinished"
    with LogReader(b) as new:
        link = new.info.config["resumed_from"]
        done_b, pulsed_b, status = _done(new), _pulsed(new), new.status
        final = new.final_conductances()
    assert 40 <= len(done_a) < 1024
    assert link["run_id"] == old_id and link["cells_done"] == len(set(done_a))
    assert status in ("programmed", "partial")  # ran to its end
    assert not set(done_a) & pulsed_b, "a cell done before the kill was programmed again"
    assert not set(done_a) & set(done_b)
    assert set(done_a) | set(done_b) == {(r, c) for r in range(32) for c in range(32)}
    assert pulsed_a and np.isfinite(final).all()  # the resumed run read the whole array
