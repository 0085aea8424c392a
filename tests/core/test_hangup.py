"""A closed terminal and Ctrl-Z during a run.

- The terminal closes (an ssh link drops, the window is closed): the kernel sends SIGHUP. Its
  default ends the process on the spot: no safe state of its own (a bench waits for the
  supervisor), a log without a run stop ("unfinished", no reason). Now the run aborts as on
  SIGTERM: safe state, the log closed with "SIGHUP received", exit 129; under `nohup` the run
  goes on.
- Ctrl-Z (SIGTSTP) stops a process where it stands: a bench session would keep its outputs on
  for as long as it stays stopped. On a bench backend it is ignored, said so.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from xbarlab.log.reader import LogReader
from xbarlab.log.verify import verify

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from xbarlab.cli.entry import main; sys.argv[0] = 'xbarlab'; main()"


def _session(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    cfg["sim"].update(rows=64, cols=64)  # several seconds of run after the log appears
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child side is gone
            return out
        if not chunk:
            return out
        out += chunk


def _have_pty() -> bool:
    try:
        master, slave = os.openpty()
    except OSError:
        return False
    os.close(master)
    os.close(slave)
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _have_pty(), reason="no pseudo-terminals here (/dev/pts)")
def test_a_closed_terminal_ends_the_run_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "run.h5"
    argv = [sys.executable, "-c", CLI, "run", "write_verify_array", "-c",
            str(_session(tmp_path)), "--out", str(log)]
    pid, master = pty.fork()  # the child gets the pty as its controlling terminal
    if pid == 0:  # pragma: no cover - the child
        os.chdir(tmp_path)
        os.execv(sys.executable, argv)
    try:
        _wait_for(log)
        time.sleep(0.5)  # the run is under way
    finally:
        os.close(master)  # the terminal goes: the kernel sends SIGHUP to the child
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the session did not end after SIGHUP"
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 129  # not killed by the signal: it exited
    report = verify(log)
    assert report.exit_code == 0, report.problems  # sound and finished: a run stop
    assert report.status == "aborted"
    with LogReader(log) as reader:
        end = reader.end
    assert end is not None and end.reason.startswith("SIGHUP received"), end


@pytest.mark.slow
def test_under_nohup_a_closed_terminal_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "run.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "write_verify_array", "-c", str(_session(tmp_path)),
         "--out", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does
    with proc:
        _wait_for(log)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err  # the example session ends partial, as without SIGHUP
    assert verify(log).status == "partial"


SUSPENDED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.fakes import RecordingCrossbar
    from xbarlab.engine import RunEngine
    from xbarlab.limits import BenchLimits
    from xbarlab.messages import Read

    class Bench(RecordingCrossbar):  # no clock: a bench, for the engine
        def read(self, cells, v_read, scheme):
            if len(self.calls) == 2:
                os.kill(os.getpid(), signal.SIGTSTP)  # Ctrl-Z
                for _ in range(1000):
                    pass
            return super().read(cells, v_read, scheme)

    xbar = Bench()
    result = RunEngine(xbar, BenchLimits(), []).run(
        (Read(((0, 0),), 0.2) for _ in range(5)), protocol="p")
    print(result.status.value, len(xbar.calls), flush=True)
""")


def test_ctrl_z_does_not_stop_a_bench_run(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SUSPENDED.format(root=str(ROOT))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # stopped: what Ctrl-Z did before
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate()
        pytest.fail("the bench run was stopped by SIGTSTP")
    assert proc.returncode == 0, err
    assert out.split() == ["success", "5"]  # every read done, nothing stopped
    assert "Ctrl-Z ignored" in err and "Traceback" not in err
