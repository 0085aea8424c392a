"""One writer per log: a log a running session is filling is never overwritten or replaced.

Before, `xbarlab run ... --out F.h5 --overwrite` beside a running session writing F.h5
truncated F.h5 under it (HDF5's own file lock is gone once a writer is in SWMR mode); the
first session then ended "partial, log F.h5" with its whole log gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.log import live_writer
from tests.log.docs import read_event, run_start, run_stop
from xbarlab.cli.main import app
from xbarlab.host_locks import LOCK_DIR_ENV
from xbarlab.log.errors import LogInUse
from xbarlab.log.reader import LogReader
from xbarlab.log.verify import verify
from xbarlab.log.writer import HDF5Writer

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))


def _log(path: Path, n: int) -> None:
    with HDF5Writer(path, flush_interval=None) as w:
        w(run_start())
        for k in range(1, n + 1):
            w(read_event(k, [(0, 0)], 0.2, [1e-4]))
        w(run_stop(n))


def test_a_second_writer_is_refused_and_the_first_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with HDF5Writer(path, flush_interval=None) as first:
        first(run_start())
        first(read_event(1, [(0, 0)], 0.2, [1e-4]))
        first.flush()
        with pytest.raises(LogInUse, match=r"run.h5 is being written by .*this process"):
            HDF5Writer(path, overwrite=True)
        with pytest.raises(LogInUse):  # another spelling of the same file
            HDF5Writer(tmp_path / "." / "run.h5", overwrite=True)
        first(read_event(2, [(0, 1)], 0.2, [2e-4]))
        first(run_stop(2))
    assert verify(path).exit_code == 0
    assert len(LogReader(path).measurements()) == 2
    _log(path.with_name("other.h5"), 1)
    with HDF5Writer(path, overwrite=True):  # closed: free again
        pass


def _holder(path: Path) -> subprocess.Popen[str]:
    return live_writer.start(path)


def test_no_command_overwrites_or_replaces_a_log_being_written(tmp_path: Path) -> None:
    live = tmp_path / "live.h5"
    other = tmp_path / "other.h5"
    _log(other, 3)
    session = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    session["sim"].update(rows=4, cols=4)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(session))
    with _holder(live) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        attempts = {
            "run": ["run", "write_verify_array", "-c", str(cfg), "--out", str(live),
                    "--overwrite"],
            "demo": ["demo", "--size", "4", "--out", str(live), "--overwrite"],
            "recover": ["log", "recover", str(other), "--out", str(live), "--overwrite"],
        }
        for name, args in attempts.items():
            result = runner.invoke(app, args, env=ENV)
            lines = result.output.strip().splitlines()
            assert result.exit_code == 2, (name, result.output)
            # (the demo first says what it is about to do)
            assert name == "demo" or len(lines) == 1, lines
            assert lines[-1].startswith("error: ") and "Traceback" not in result.output
            text = " ".join(result.output.split())
            assert "is being written by another xbarlab session" in text
            assert f"pid {proc.pid}" in text
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "closed"
    assert verify(live).exit_code == 0  # the holder's log, whole
    assert len(LogReader(live).measurements()) == 2


def test_a_killed_writer_frees_its_log(tmp_path: Path) -> None:
    live = tmp_path / "live.h5"
    with _holder(live) as proc:
        with pytest.raises(LogInUse, match=f"pid {proc.pid}"):
            HDF5Writer(live, overwrite=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with HDF5Writer(live, overwrite=True) as w:  # its lock went with it
        w(run_start())
        w(run_stop(0))
    assert verify(live).exit_code == 0


def test_verify_tells_a_running_writer_from_a_killed_one(tmp_path: Path) -> None:
    """`log verify` exits 1 for both (sound, unfinished), and now says which: a session still
    writing, or a writer killed without a run stop (then `recover`)."""
    from xbarlab.cli.main import app as cli

    live = tmp_path / "live.h5"
    with _holder(live) as proc:
        report = verify(live)
        assert report.exit_code == 1 and report.writer == "running"
        assert f"its writer is running (pid {proc.pid})" in report.notes[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    report = verify(live)
    assert report.exit_code == 1 and report.writer == "gone"
    result = runner.invoke(cli, ["log", "verify", str(live)], env=ENV)
    assert result.exit_code == 1
    assert "is gone without a run stop" in " ".join(result.output.split())
    _log(tmp_path / "done.h5", 2)
    assert verify(tmp_path / "done.h5").writer == "unknown"  # finished: not asked


def test_follow_ends_when_the_writer_is_killed(tmp_path: Path) -> None:
    """`log follow` of a session whose writer is killed stops on its own (before: until its
    --timeout, or forever), with the rows flushed, exit 1 and what to do."""
    live = tmp_path / "live.h5"
    with _holder(live) as proc:
        follower = subprocess.Popen(
            [sys.executable, "-m", "xbarlab.cli.main", "log", "follow", str(live), "--timeout",
             "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **ENV})
        with follower:
            assert follower.stdout is not None
            assert "1 rows" in follower.stdout.readline()  # the row flushed before
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            out, err = follower.communicate(timeout=60)
    assert follower.returncode == 1, (out, err)
    assert "gone without a run stop" in " ".join(err.split()) and "recover" in err


def test_the_live_page_says_a_killed_writer_is_gone(tmp_path: Path) -> None:
    from xbarlab.watch.live import LiveLog

    live = tmp_path / "live.h5"
    with _holder(live) as proc:
        page = LiveLog(live, stall_after=0.0)
        page.poll()
        assert page.status == "running" and "slow or paused" in page.detail
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    page.poll()
    assert page.status == "running" and "gone without a run stop" in page.detail
    page.close()


def test_a_log_its_session_still_writes_is_not_resumed(tmp_path: Path) -> None:
    from xbarlab.analysis.resume import read_run
    from xbarlab.config import ConfigError

    live = tmp_path / "live.h5"
    with _holder(live) as proc:
        with pytest.raises(ConfigError, match="its session is still running"):
            read_run(live)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert read_run(live).status == "unfinished"  # killed: resumable
