"""A sweep on a real Dask cluster (scheduler and workers as processes on loopback) that loses
a worker mid-sweep: every point finishes exactly once, every log is readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xbarlab.log.reader import LogReader
from xbarlab.sweep.commands import command
from xbarlab.sweep.execute import SweepReport, read_row, read_table, run_sweep
from xbarlab.sweep.spec import SweepFile, expand, validate_config

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=sink,
                                stderr=subprocess.STDOUT, env=env)


def _wait_for(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    info = tmp_path / "scheduler.json"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["scheduler"] = _start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(info)],
                                    tmp_path / "scheduler.log")
        _wait_for(lambda: info.exists() and info.stat().st_size > 0, 60, "the scheduler")
        address = json.loads(info.read_text())["address"]
        for name in ("w1", "w2"):
            procs[name] = _start(["worker", address, "--nthreads", "1", "--no-nanny",
                                  "--no-dashboard", "--name", name], tmp_path / f"{name}.log")
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        # workers first: a worker told to stop after its scheduler is gone waits out its own
        # close (measured: the 15 s timeout below, every run)
        for name in sorted(procs, key=lambda n: n == "scheduler"):
            p = procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_killed_worker_loses_no_point(
    tmp_path: Path, cluster: tuple[str, dict[str, subprocess.Popen[bytes]]]
) -> None:
    address, procs = cluster
    spec = validate_config({
        "command": "run write_verify_array",
        "grid": {"sim.rows": [3, 4, 5], "protocol.params.tolerance": [0.02, 0.05]},
        "seeds": 4,
    }, SweepFile, "test")
    base = {"sim": {"rows": 4, "cols": 5, "device": "simple"},
            "protocol": {"kind": "write_verify_array", "params": {"max_pulses": 60}}}
    points = expand(spec, base, command(spec.command).validate)
    assert len(points) == 24
    out = tmp_path / "sweep"
    result: dict[str, SweepReport | BaseException] = {}

    def sweep() -> None:
        try:
            result["report"] = run_sweep(points, command(spec.command).task, out,
                                         scheduler=address)
        except BaseException as exc:  # handed to the test thread
            result["report"] = exc

    runner = threading.Thread(target=sweep)
    runner.start()
    rows = out / "points"
    # kill worker 1 while the sweep is under way: after it finished a point, most still to run
    w1 = f":{procs['w1'].pid}"

    def w1_finished_one() -> bool:
        return rows.exists() and any(
            str((read_row(out, f.stem) or {}).get("worker", "")).endswith(w1)
            for f in rows.glob("*.json"))

    _wait_for(w1_finished_one, 120, "worker 1's first point")
    procs["w1"].send_signal(signal.SIGKILL)
    procs["w1"].wait(timeout=10)
    done_at_kill = len(list(rows.glob("*.json")))
    runner.join(timeout=300)
    assert not runner.is_alive(), "the sweep did not finish"
    report = result["report"]
    assert isinstance(report, SweepReport), report
    assert done_at_kill < 24, "the kill came too late to test anything"
    failed = [read_row(out, p) or {} for p in report.failed]
    assert not failed, [f"{r.get('status')}: {r.get('reason')}" for r in failed]
    table = read_table(out)
    assert len(table) == 24 and table["point"].is_unique
    assert set(table["point"]) == {p.point_id for p in points}
    assert set(table["status"]) <= {"programmed", "partial"}, "every run ran to its end"
    assert not list(rows.glob("*.part")), "no half-written log is left behind as a result"
    for log_name, run_id in zip(table["log"], table["run_id"], strict=True):
        with LogReader(out / log_name) as log:
            assert log.status in ("programmed", "partial") and log.info.run_id == run_id
    # the surviving worker finished what the killed one left
    assert table["worker"].nunique() == 2
