"""Reading a log while it is written, and after its writer was SIGKILLed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.log.docs import (
    STREAM_SHAPE,
    run_start,
    run_stop,
    stream_cell,
    stream_conductance,
    stream_event,
    stream_voltage,
)
from xbarlab.log.reader import LogReader, follow
from xbarlab.log.salvage import salvage
from xbarlab.log.verify import verify
from xbarlab.log.writer import HDF5Writer

CHILD = Path(__file__).with_name("writer_child.py")


@contextmanager
def _spawn(
    path: Path, n: int, block: int, every: int = 0, pause: float = 0.0
) -> Iterator[subprocess.Popen[str]]:
    """The child writer; killed (if still running) and its pipes closed on exit."""
    with subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(n), str(block), str(every), str(pause)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)


def _assert_stream(rows: np.ndarray) -> None:
    """Rows are the child's stream from seq 1 on, every value as the formula gives it."""
    seq = np.arange(1, len(rows) + 1)
    r, c = stream_cell(seq)
    v, g = stream_voltage(seq), stream_conductance(seq)
    np.testing.assert_array_equal(rows["event"], seq - 1)
    np.testing.assert_array_equal(rows["time"], seq.astype(float))
    np.testing.assert_array_equal(rows["row"], r)
    np.testing.assert_array_equal(rows["col"], c)
    np.testing.assert_array_equal(rows["voltage"], v)
    np.testing.assert_array_equal(rows["conductance"], g)
    np.testing.assert_array_equal(rows["current"], g * v)


def test_reader_sees_flushed_blocks_only(tmp_path: Path) -> None:
    """A live reader sees exactly the rows the writer's end-of-data marker counts."""
    path = tmp_path / "live.h5"
    with HDF5Writer(path, block_rows=4, flush_interval=None) as writer:
        writer(run_start(STREAM_SHAPE))
        with LogReader(path) as log:
            assert log.counts()["measurements"] == 0 and log.end is None
            for seq in range(1, 4):
                writer(stream_event(seq))
            log.refresh()
            assert log.counts()["measurements"] == 0  # still buffered
            writer(stream_event(4))  # completes the block: written, marked within 0.25 s
            log.refresh()
            assert log.counts()["measurements"] == writer.flushed_rows["measurements"]
            writer.flush()  # marks it now
            log.refresh()
            _assert_stream(log.measurements_array())
            assert len(log.measurements_array()) == 4 and log.status == "unfinished"
            writer(stream_event(5))
            writer(run_stop(5))
            log.refresh()
            assert log.status == "success" and len(log.measurements_array()) == 5


def test_follow_a_file_written_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    blocks = []
    live_blocks = 0
    with _spawn(path, n=3000, block=250, every=250, pause=0.05) as child:
        for block in follow(path, poll_interval=0.005, timeout=60):
            blocks.append(block)
            live_blocks += child.poll() is None
        assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
    rows = np.concatenate(blocks)
    assert len(rows) == 3000
    _assert_stream(rows)
    assert live_blocks >= 3, "follow() should yield blocks while the writer is still running"


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_keeps_every_flushed_row(tmp_path: Path, trial: int) -> None:
    rng = random.Random(1000 + trial)
    block = 500
    path = tmp_path / f"killed-{trial}.h5"
    target = rng.randint(1, 8) * block
    reported = 0
    with _spawn(path, n=10**7, block=block) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip().isdigit():
                reported = int(line)
                if reported >= target:
                    break
        time.sleep(rng.uniform(0.0, 0.05))  # kill at a random point of the next block
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        for line in child.stdout:  # lines already in the pipe
            if line.strip().isdigit():
                reported = max(reported, int(line))
    assert child.returncode == -signal.SIGKILL
    assert reported >= target

    with LogReader(path) as log:  # SWMR read works straight away
        rows = log.measurements_array()
        assert len(rows) >= reported and log.status == "unfinished"
        _assert_stream(rows)
        assert len(log.events_array()) == len(rows)

    assert verify(path).exit_code == 1  # sound so far, unfinished
    out = tmp_path / f"killed-{trial}.recovered.h5"
    report = salvage(path, out)
    assert report.kept["measurement rows"] == (len(rows), len(rows)), report.lines()
    assert verify(out).exit_code == 0
    with h5py.File(out, "r") as f:  # a plain reader, as h5dump uses
        assert f["measurements"].shape == (len(rows),)
        assert f["measurements"][()].tobytes() == rows.tobytes()
    if shutil.which("h5dump") is not None:
        done = subprocess.run(["h5dump", "-H", str(out)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr


def test_flush_interval_bounds_the_delay_of_a_slow_run(tmp_path: Path) -> None:
    """A slow run (few rows, then nothing) still reaches a live reader: the flush clock
    flushes buffered rows on its own, with no further event."""
    path = tmp_path / "slow.h5"
    with HDF5Writer(path, block_rows=1000, flush_interval=0.2) as writer:
        writer(run_start(STREAM_SHAPE))
        with LogReader(path) as log:
            writer(stream_event(1))
            writer(stream_event(2))
            deadline = time.monotonic() + 10.0
            while len(log.measurements_array()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
                log.refresh()
            _assert_stream(log.measurements_array())
            assert len(log.measurements_array()) == 2
