"""A program-network run killed mid-way (SIGKILL, or SIGTERM) in a real subprocess, then
resumed with --resume: no device whose write-verify finished is programmed again, and the
result is as good as an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.network.logs import checkpoints, done_by_job, programmed_cells, pulses_by_job, status
from tests.network.nets import moons, train
from xbarlab.log.reader import LogReader
from xbarlab.network.model import save_npz

ROOT = Path(__file__).resolve().parents[2]


def _config(path: Path, rounds: int) -> Path:
    data = {"backend": "sim", "seed": 1,
            "sim": {"rows": 16, "cols": 16, "device": "tio2-o921c", "fidelity": "wires",
                    "r_wire_row": 0.3, "r_wire_col": 0.3, "seed": 9},
            "log": {"flush_interval": 0.1},
            "network": {"write_verify": {"tolerance": 0.05, "max_pulses": 200},
                        "max_cal": 100, "max_test": 100,
                        # an exact re-tune, every round that lowers the loss reprogrammed:
                        # the compensation jobs this test kills always happen
                        "compensation": {"rounds": rounds, "noise": 0.0, "min_gain": 0.0}}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xbarlab.cli.main", "program-network", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "150"}


def _progress(path: Path) -> tuple[int, set[str]]:
    """(devices done, job names started) as far as the live log has been flushed."""
    try:
        with LogReader(path) as log:
            notes = log.annotations()
    except Exception:  # not created or not started yet, or caught mid-flush
        return 0, set()
    jobs = {str(d["job"]) for m, d in zip(notes["message"], notes["data"], strict=True)
            if m == "job"}
    return int((notes["message"] == "cell_done").sum()), jobs


def _run_until(args: list[str], log: Path, when: str, sig: int) -> int:
    """Start the CLI, send `sig` once the log shows `when` ("program": 20 devices done,
    "compensate": the first compensation job started); returns the exit code."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=_env())
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            n, jobs = _progress(log)
            if (when == "program" and n >= 20) or (when == "compensate" and any(
                    j.startswith("compensate") for j in jobs)):
                proc.send_signal(sig)
                break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode != 0 or "aborted" in out, f"the run ended before the signal:\n{out}"
    return proc.returncode


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = moons()  # a smooth network (~88 %): its accuracy says how well it was programmed, not
    return save_npz(train((2, 8, 1), d.x_cal, d.y_cal, steps=300, lr=0.1),  # a noise draw
                    tmp_path_factory.mktemp("kill-net") / "net.npz")


@pytest.fixture(scope="module")
def uninterrupted_run(net: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Callable[[int], Path]:
    """The log of the uninterrupted run for a number of compensation rounds, run once per
    module: the two `program` cases compare with the same run (same network, config and
    seeds; the logs are only read)."""
    runs: dict[int, Path] = {}

    def run(rounds: int) -> Path:
        if rounds not in runs:
            d = tmp_path_factory.mktemp(f"uninterrupted{rounds}")
            c = d / "c.h5"
            full = subprocess.run(_cli(str(net), "--config", str(_config(d / "s.yaml", rounds)),
                                       "--out", str(c)),
                                  capture_output=True, text=True, timeout=300, cwd=ROOT,
                                  env=_env())
            assert full.returncode in (0, 3), full.stdout
            runs[rounds] = c
        return runs[rounds]

    return run


@pytest.mark.slow
@pytest.mark.parametrize(("when", "sig", "rounds"), [
    ("program", signal.SIGKILL, 0), ("compensate", signal.SIGKILL, 2),
    ("program", signal.SIGTERM, 0)])
def test_killed_run_resumes_without_reprogramming(
        tmp_path: Path, net: Path, uninterrupted_run: Callable[[int], Path], when: str, sig: int,
        rounds: int) -> None:
    cfg = _config(tmp_path / "s.yaml", rounds)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    code = _run_until(_cli(str(net), "--config", str(cfg), "--out", str(a)), a, when, sig)
    if sig == signal.SIGTERM:
        assert code == 143 and status(a) == "aborted"
    else:
        assert code == -signal.SIGKILL
    old_done = done_by_job(a)
    assert old_done, "nothing was done before the kill"
    res = subprocess.run(_cli(str(net), "--config", str(cfg), "--out", str(b), "--resume",
                              str(a)), capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=_env())
    assert res.returncode in (0, 3), res.stdout + res.stderr
    assert "resuming run" in res.stdout
    new_pulses = pulses_by_job(b)
    for job, cells in old_done.items():  # no finished device of a job is pulsed again in it
        assert not set(new_pulses.get(job, {})) & cells, job
        assert not set(done_by_job(b).get(job, set())) & cells, job
    all_cells = set(programmed_cells(b, "program/1")) | old_done.get("program/1", set())
    c = uninterrupted_run(rounds)
    assert all_cells == set(programmed_cells(c, "program/1"))  # every device, once
    resumed, uninterrupted = _quality([a, b]), _quality([c])
    print(f"{when} {sig}: resumed {resumed}, uninterrupted {uninterrupted}")
    assert resumed[0] <= 1.5 * uninterrupted[0] + 0.01, (resumed, uninterrupted)
    assert resumed[1] >= uninterrupted[1] - 0.06, (resumed, uninterrupted)


def _quality(chain: list[Path]) -> tuple[float, float]:
    """(median relative error of the devices at the last read against their last target,
    last test accuracy through the MVM) of a run and the runs it resumed (oldest first)."""
    targets: dict[tuple[int, int], float] = {}
    for path in chain:
        for job in checkpoints(path, "job"):
            targets.update({(int(r), int(c)): float(t)
                            for (r, c), t in zip(job["cells"], job["targets"], strict=True)})
    with LogReader(chain[-1]) as log:
        g = log.final_conductances()
    err = [abs(g[cell] - t) / t for cell, t in targets.items()]
    return float(np.median(err)), float(checkpoints(chain[-1], "evaluation")[-1]["test_acc"])
