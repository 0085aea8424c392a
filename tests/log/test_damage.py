"""Damaged logs: random byte flips and truncations of real logs of every protocol.

Every reader and every `xbarlab log` command must, within 2 s, either return exactly what it
returns on the intact file, or refuse with one clear line (a `LogError`, or exit code 2 with
one `error:` line): never different data, never a traceback, never a hang. The operations run
in a child process (`damage_worker.py`) that is killed if it does not answer in time.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.log.streaming import CellByCellCrossbar
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Mvm, Plan
from xbarlab.protocols.forming import forming
from xbarlab.protocols.iv_sweep import iv_sweep
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import write_verify_array
from xbarlab.sim.factory import build_sim_crossbar

WORKER = Path(__file__).with_name("damage_worker.py")
LIMIT_S = 2.0  # per operation
READERS = ("info", "measurements", "events", "mvm", "final", "annotations", "follow")
COMMANDS = ("summary", "export", "export-events", "verify", "recover")


def _mvm_plan() -> Plan:
    rng = np.random.default_rng(3)
    for _ in range(3):
        yield Mvm(rng.uniform(0, 0.2, size=(2, 4)))
    yield Checkpoint("done", {"n": 3, "note": "mvm"})


def _build(folder: Path) -> dict[str, Path]:
    """One small finished log per protocol, and one whose writer was killed."""
    limits = BenchLimits()
    sim = SimConfig(rows=4, cols=4, seed=1)
    plans: dict[str, tuple[Any, Plan]] = {
        "write_verify": (build_sim_crossbar(sim), write_verify_array(
            np.full((4, 4), 200e-6), WriteVerifyParams(), passes=1)),
        "read_map": (build_sim_crossbar(sim), read_map((4, 4))),
        "iv_sweep": (build_sim_crossbar(sim), iv_sweep((1, 1), 1.0, -1.0, 0.1)),
        "forming": (build_sim_crossbar(sim), forming((2, 2), v_start=0.8, v_max=1.4)),
        "mvm": (build_sim_crossbar(sim), _mvm_plan()),
        "streamed": (CellByCellCrossbar(), read_map((4, 4))),
    }
    logs = {}
    for name, (xbar, plan) in plans.items():
        path = folder / name / "log.h5"
        path.parent.mkdir()
        with HDF5Writer(path, block_rows=64) as writer:
            RunEngine(xbar, limits, [writer]).run(plan, protocol=name)
        logs[name] = path
    path = folder / "killed" / "log.h5"
    path.parent.mkdir()
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("writer_child.py")),
                              str(path), str(10**7), "100", "0", "0"], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip().isdigit() and int(line) >= 1000:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    logs["killed"] = path
    return logs


class Worker:
    """The child process that runs the operations; restarted after a hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.asked = 0

    def ask(self, request: dict[str, str]) -> dict[str, Any]:
        if self.proc is not None and self.proc.poll() is not None:
            self.close()  # ended (a crash on a damaged file): release its pipes first
        if self.proc is None:
            self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.asked += 1
        request = {**request, "id": str(self.asked)}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            budget = 60.0 + LIMIT_S * (len(READERS) + len(COMMANDS))  # first call imports
            ready, _, _ = select.select([self.proc.stdout], [], [], budget)
            if not ready:
                raise AssertionError(f"hang: no answer within {budget:.0f} s for {request}")
            answer = dict(json.loads(self.proc.stdout.readline()))
        except BaseException:  # interrupted: never read this request's answer later
            self.close()
            raise
        assert answer.pop("id") == request["id"]
        return answer

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Worker,
                                                                      Path]]:
    folder = tmp_path_factory.mktemp("damage")
    logs = _build(folder)
    worker = Worker()
    refs = {}
    for name, path in logs.items():
        work = folder / name / "work"
        work.mkdir()
        refs[name] = (path, worker.ask({"path": str(path), "orig": str(path),
                                        "work": str(work)}))
        for op in READERS:
            assert refs[name][1][op]["ok"], (name, op, refs[name][1][op])
        verdict = 1 if name == "killed" else 0
        assert refs[name][1]["verify"]["code"] == verdict, (name, refs[name][1]["verify"])
    yield refs, worker, folder
    worker.close()


def _check(name: str, ref: dict[str, Any], got: dict[str, Any], what: str) -> None:
    for op in READERS:
        r = got[op]
        where = f"{what}, {op}"
        assert r["t"] < LIMIT_S, f"{where}: took {r['t']:.2f} s"
        assert "trace" not in r, f"{where}: traceback\n{r['trace']}"
        if r["ok"]:
            assert r["hash"] == ref[op]["hash"], f"{where}: different data, no error"
        else:
            assert r["err"] and "\n" not in r["err"].strip(), f"{where}: {r['err']!r}"
    for op in COMMANDS:
        r = got[op]
        where = f"{what}, xbarlab log {op}"
        assert r["t"] < LIMIT_S + (1.0 if op == "recover" else 0.0), f"{where}: {r['t']:.2f} s"
        assert "trace" not in r, f"{where}: traceback\n{r['trace']}"
        if op == "verify":
            assert r["code"] in (0, 1, 2), f"{where}: exit {r['code']}"
            if r["code"] in (0, 1):
                assert r["code"] == ref[op]["code"], f"{where}: verdict {r['code']}"
                assert all(got[o]["ok"] for o in READERS), f"{where}: sound, readers refuse"
            continue
        if op == "recover" and r["code"] == 0:
            assert r["subset"], f"{where}: salvaged rows that are not the original's"
            assert r["verified"] == 0, f"{where}: the salvaged log is not sound"
            continue
        if r["code"] == 0:
            assert r["stdout"] == ref[op]["stdout"], f"{where}: different output, no error"
        else:
            assert r["code"] == 2, f"{where}: exit {r['code']}: {r['stderr']}"
            lines = r["stderr"].splitlines()
            assert len(lines) == 1 and lines[0].startswith("error:"), f"{where}: {lines}"


# a longer hunt: XBARLAB_DAMAGE_EXAMPLES=500 XBARLAB_DAMAGE_SEED=1
SCALE = int(os.environ.get("XBARLAB_DAMAGE_EXAMPLES", "0")) or 1
SEED = int(os.environ.get("XBARLAB_DAMAGE_SEED", "20261206"))
NAMES = ("write_verify", "read_map", "iv_sweep", "forming", "mvm", "streamed", "killed")


@seed(SEED)
@settings(max_examples=28 if SCALE == 1 else SCALE, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(name=st.sampled_from(NAMES), where=st.floats(0, 1), head=st.booleans(),
       mask=st.integers(1, 255))
def test_a_flipped_byte_is_caught_or_harmless(
    setup: tuple[dict[str, Any], Worker, Path], name: str, where: float, head: bool, mask: int,
) -> None:
    refs, worker, folder = setup
    orig, ref = refs[name]
    data = bytearray(orig.read_bytes())
    span = min(len(data), 4096) if head else len(data)  # metadata lives mostly at the start
    pos = min(int(where * span), len(data) - 1)
    data[pos] ^= mask
    case = _case(folder, name, bytes(data))
    _check(name, ref, worker.ask({"path": str(case), "orig": str(orig),
                                  "work": str(case.parent)}),
           f"{name}: byte {pos} ^ {mask:#04x}")


@seed(SEED + 1)
@settings(max_examples=20 if SCALE == 1 else SCALE // 2, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(name=st.sampled_from(NAMES), where=st.floats(0, 1), head=st.booleans())
def test_a_truncated_file_is_refused_or_salvaged(
    setup: tuple[dict[str, Any], Worker, Path], name: str, where: float, head: bool,
) -> None:
    refs, worker, folder = setup
    orig, ref = refs[name]
    data = orig.read_bytes()
    size = int(where * (min(len(data), 600) if head else len(data) - 1))
    case = _case(folder, name, data[:size])
    _check(name, ref, worker.ask({"path": str(case), "orig": str(orig),
                                  "work": str(case.parent)}),
           f"{name}: cut to {size} of {len(data)} bytes")


def _case(folder: Path, name: str, data: bytes) -> Path:
    work = folder / name / f"case-{time.monotonic_ns()}"
    work.mkdir()
    path = work / "log.h5"
    path.write_bytes(data)
    return path


def test_refusals_name_what_is_intact(setup: tuple[dict[str, Any], Worker, Path]) -> None:
    """A cut-short finished log: one line with the rows still intact and how to salvage."""
    refs, worker, folder = setup
    orig, _ = refs["write_verify"]
    data = orig.read_bytes()
    case = _case(folder, "write_verify", data[: len(data) - 100])
    got = worker.ask({"path": str(case), "orig": str(orig), "work": str(case.parent)})
    err = got["info"]["err"]
    assert "is cut short" in err and "xbarlab log recover" in err, err
    shutil.rmtree(case.parent)
