"""A log on a disk that fills up: the run stops with the bench safe and the reason said, the
log keeps everything measured before, and nothing crashes.

Two ways a disk fills:
- slowly (the common case): the writer's reserve (`min_free`) stops the run while the log
  can still end sound and complete;
- at once, or a limit the free space does not show (a quota, a file-size limit): the write
  fails, the run stops on it, the file keeps what was flushed before (`recover` salvages it)
  and the process exits normally (HDF5 itself crashes at exit on a file it cannot write).
  Reproduced here with a real file-size limit (RLIMIT_FSIZE: the kernel refuses the write
  with EFBIG), in a child process.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.fakes import RecordingCrossbar
from tests.log.docs import read_event, run_start, run_stop
from xbarlab.cli.main import app
from xbarlab.documents import Document, Event, RunStatus
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.errors import LogWriteFailed
from xbarlab.log.reader import LogReader
from xbarlab.log.verify import verify
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Plan, Read

runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def _reads(n: int) -> Plan:
    for k in range(n):
        yield Read(((k % 4, k // 4 % 4),), 0.2)


_STATVFS = os.statvfs


def _words(text: str) -> str:
    """The text with the summary table's borders and line breaks taken out."""
    return " ".join(text.replace("│", " ").split())


class _Disk:
    """`os.statvfs` of a disk whose free space drops below the reserve after `flushes`."""

    def __init__(self, flushes: int) -> None:
        self.left, self.calls = flushes, 0

    def __call__(self, path: Any) -> os.statvfs_result:
        self.calls += 1
        real = _STATVFS(path)
        free = 1 << 40 if self.calls <= self.left else 10 << 20  # 10 MiB
        blocks = free // real.f_frsize
        return os.statvfs_result((real.f_bsize, real.f_frsize, real.f_blocks, blocks, blocks,
                                  real.f_files, real.f_ffree, real.f_favail, real.f_flag,
                                  real.f_namemax))


@pytest.mark.parametrize("flushes", [1, 5])
def test_low_disk_stops_the_run_and_the_log_ends_sound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flushes: int) -> None:
    """The free space falls below the 64 MiB reserve at the RunStart's flush (1) or later
    (5): the run fails at the next event, saying why; every event up to and including that
    one is in the log, with the fault and a run stop; the log verifies sound."""
    monkeypatch.setattr("xbarlab.log.writer.os.statvfs", _Disk(flushes))
    docs: list[Document] = []
    xbar = RecordingCrossbar()
    path = tmp_path / "low.h5"
    with HDF5Writer(path, block_rows=4, flush_interval=None) as writer:
        result = RunEngine(xbar, BenchLimits(), [writer, docs.append]).run(
            _reads(200), protocol="reads")
    assert result.status is RunStatus.FAILED
    assert "10 MiB free on its disk, less than the 64 MiB the log keeps" in result.reason
    done = len(xbar.calls)
    assert 1 <= done < 200 and xbar.safe_calls == 1
    report = verify(path)
    assert report.sound and report.finished and report.status == "failed", report.problems
    with LogReader(path) as log:
        assert len(log.measurements()) == done  # nothing measured is missing
        assert log.end is not None and "keeps in reserve" in log.end.reason
        assert "LogSpaceLow" in " ".join(log.events()["message"].astype(str))


def test_reserve_from_the_session_config(tmp_path: Path) -> None:
    """`log.min_free_mib` in a session: more than the disk has stops the run at its first
    operation (exit 1, the reason in the summary); 0 switches the check off."""
    config = tmp_path / "s.yaml"
    for reserve, code in ((1e12, 1), (0, 0)):
        config.write_text("sim: {rows: 4, cols: 4}\nprotocol: {kind: read_map}\n"
                          f"log: {{min_free_mib: {reserve}}}\n")
        out = tmp_path / f"r{reserve}.h5"
        res = runner.invoke(app, ["run", "read_map", "-c", str(config), "--out", str(out)],
                            env=ENV)
        assert res.exit_code == code, res.output
        assert ("keeps in reserve" in _words(res.output)) is (code == 1)
        assert verify(out).sound


_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from xbarlab.cli.entry import main
sys.argv = ["xbarlab", "run", "write_verify_array", "-c", sys.argv[2], "--out", sys.argv[3]]
main()
"""
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "session-write-verify.yaml"


def test_a_refused_write_stops_the_run_and_the_process_exits_cleanly(tmp_path: Path) -> None:
    """The kernel refuses the log's writes past 500 kB (EFBIG) in the middle of the example
    write-verify session: exit 1 (not a crash), the reason names the file and the cause, no
    traceback; `recover` salvages every row the end-of-data marker confirmed (flushed every
    50 ms here, so most of them)."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["log"] = {"flush_interval": 0.05}
    session = tmp_path / "session.yaml"
    session.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "full.h5"
    limit = 500_000
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(limit), str(session), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, **ENV})
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in text and "unexpected" not in text, text
    assert "cannot write the log" in text and "File too large (EFBIG)" in _words(text)
    assert out.stat().st_size <= limit
    res = runner.invoke(app, ["log", "summary", str(out)], env=ENV)
    said = re.search(r"intact: (\d+) of \d+ measurement rows", _words(res.output))
    assert res.exit_code == 2 and said, res.output
    res = runner.invoke(app, ["log", "recover", str(out)], env=ENV)
    assert res.exit_code == 0, res.output
    with LogReader(tmp_path / "full.recovered.h5") as log:
        rows = len(log.measurements())
    assert rows > 100  # what was flushed before the refusal
    assert rows == int(said[1])  # the summary promised what recover gives, not more
    res = runner.invoke(app, ["run", "write_verify_array", "--resume", str(out), "--out",
                              str(tmp_path / "next.h5")], env=ENV)
    assert res.exit_code == 2 and f"--resume {tmp_path / 'full.recovered.h5'}" in _words(
        res.output), res.output



def test_a_refused_write_is_said_once_then_the_writer_drops_and_closes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from a table's append: the run's engine hears `LogWriteFailed` once (naming the
    file and the cause), stops the run and makes the bench safe; the writer drops the fault and
    the run stop without raising again, and closes."""
    path = tmp_path / "refused.h5"
    xbar = RecordingCrossbar()

    def refuse(*_: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with HDF5Writer(path, block_rows=4, flush_interval=None) as writer:
        def disk_fills(doc: Document) -> None:  # once the tables exist
            if isinstance(doc, Event):
                monkeypatch.setattr(writer._sinks["measurements"], "append", refuse)

        result = RunEngine(xbar, BenchLimits(), [disk_fills, writer]).run(
            _reads(50), protocol="reads")
    assert result.status is RunStatus.FAILED
    assert re.search(r"cannot write the log \S*refused\.h5: no space left on its disk "
                     r"\(ENOSPC\)", result.reason), result.reason
    assert "run stop was not recorded" not in result.reason  # dropped, not raised again
    assert len(xbar.calls) == 4 and xbar.safe_calls == 1  # the first block's flush
    assert writer.failed is not None and str(writer.failed) in result.reason


def test_a_write_refused_in_the_flush_clock_thread_still_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the bench an operation takes milliseconds and the flush clock (another thread) does
    most flushes: a write refused there is raised at the run's next event, so the run does not
    go on measuring into a log that no longer records."""
    writer = HDF5Writer(tmp_path / "clock.h5", flush_interval=0.05)
    try:
        writer(run_start())

        def refuse(*_: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(writer._sinks["measurements"], "append", refuse)
        writer(read_event(1, [(0, 0)], 0.2, [1e-4]))  # buffered; the clock flushes it
        deadline = time.monotonic() + 30
        while writer.failed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.failed is not None and "(EIO)" in str(writer.failed)
        with pytest.raises(LogWriteFailed, match=r"clock\.h5: Input/output error \(EIO\)"):
            writer(read_event(2, [(0, 1)], 0.2, [1e-4]))
        writer(read_event(3, [(0, 2)], 0.2, [1e-4]))  # said once: dropped from now on
        writer(run_stop(3))
    finally:
        writer.close()


def test_the_demo_draws_no_plot_of_a_log_the_disk_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC at the 4th file flush of a demo: exit 1 with the cause in the summary, no PNG
    drawn from a log that is not whole, no error about the plot."""
    real = HDF5Writer._sync_file
    calls = [0]

    def sync(self: HDF5Writer, marker: bool | None = None) -> None:
        calls[0] += 1
        if calls[0] >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, marker)

    monkeypatch.setattr(HDF5Writer, "_sync_file", sync)
    out = tmp_path / "demo.h5"
    res = runner.invoke(app, ["demo", "--size", "8", "--out", str(out)], env=ENV)
    assert res.exit_code == 1, res.output
    assert "no space left on its disk (ENOSPC)" in _words(res.output)
    assert not out.with_suffix(".png").exists() and "plot:" not in res.output
