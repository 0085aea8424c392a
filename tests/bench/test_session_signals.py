"""`xbarlab run` as a user meets it: Ctrl-C while it starts is one line, SIGTERM is an abort
with exit code 143 and the log says so, a bench whose links are lost for good ends in one
error line and the summary (no traceback, the safe state tried once in the session)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.emulators.benches import K2600_707B, SIM, WV_PARAMS, bench_config
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.log.reader import LogReader

ROOT = Path(__file__).resolve().parents[2]
XBARLAB = [sys.executable, "-c", "from xbarlab.cli.entry import main; main()"]


def _run(args: list[str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([*XBARLAB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # type: ignore[call-overload]


def test_ctrl_c_while_starting_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C while xbarlab imports its modules (a second or more on a loaded machine): one
    line on stderr, exit code 130, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); "
         "from xbarlab.cli.entry import main; sys.argv[0] = 'xbarlab'; main()",
         "run", "write_verify_array", "-c", str(ROOT / "examples" / "session-write-verify.yaml"),
         "--out", str(tmp_path / "x.h5")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    time.sleep(0.2)  # inside the imports of the command line (about 1 s of CPU)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err + out, err
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("interrupted" in lines[0] or "Ctrl-C" in lines[0]), err


@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_the_start_says_what_happened(tmp_path: Path) -> None:
    """Ctrl-C at moments spread over the imports, the building of the command line, the
    command's own start and the run: exit 130 every time, never silent, never a traceback
    (typer turns a Ctrl-C it meets into exit 130 without a word)."""
    cfg = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    cfg["sim"].update(rows=64, cols=64)  # a 6 s run: still running at the last moment
    session = tmp_path / "session.yaml"
    session.write_text(yaml.safe_dump(cfg))
    for k, delay in enumerate((0.1, 0.4, 0.7, 1.0, 1.3, 1.6, 2.5)):
        # every other one compiles its kernels anew (numba calls back into Python: a Ctrl-C
        # there is swallowed, and must neither print a traceback nor be lost)
        env = {**os.environ, **({"NUMBA_CACHE_DIR": str(tmp_path / f"numba{k}")} if k % 2
                               else {})}
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('up', flush=True); "
             "from xbarlab.cli.entry import main; sys.argv[0] = 'xbarlab'; main()",
             "run", "write_verify_array", "-c", str(session), "--out", str(tmp_path / f"{k}.h5")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err + out and "Exception ignored" not in err, (delay, err)
        assert proc.returncode == 130, (delay, out, err)
        assert "interrupted" in err + out or "Ctrl-C" in err + out, (delay, out, err)


def _logged_events(path: Path) -> int:
    try:
        with LogReader(path) as log:
            return len(log.events())
    except Exception:  # not created or not started yet
        return 0


@pytest.mark.slow
def test_sigterm_is_an_abort_with_exit_code_143(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    cfg["sim"].update(rows=32, cols=32)  # long enough to be stopped in the middle
    session = tmp_path / "session.yaml"
    session.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = tmp_path / "x.h5"
    proc = _run(["run", "write_verify_array", "-c", str(session), "--out", str(out)])
    deadline = time.monotonic() + 120
    while _logged_events(out) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the writer flushes once a second
    proc.send_signal(signal.SIGTERM)
    try:
        stdout, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, (stdout, err)
    assert "Traceback" not in err + stdout and "aborted" in stdout
    with LogReader(out) as log:
        assert log.status == "aborted" and log.end is not None
        assert log.end.reason == "SIGTERM received"


@pytest.mark.slow
def test_links_lost_for_good_end_in_one_line_and_the_summary(tmp_path: Path) -> None:
    emu = EmulatedBench(bench_config(K2600_707B), SIM).start()
    try:
        bench_yaml = tmp_path / "bench.yaml"
        bench_yaml.write_text(yaml.safe_dump(emu.config(timeout=1.0).model_dump(mode="json")),
                              encoding="utf-8")
        session = tmp_path / "session.yaml"
        session.write_text(yaml.safe_dump({
            "backend": "bench", "bench": str(bench_yaml), "limits": K2600_707B["limits"],
            "protocol": {"kind": "write_verify_array",
                         "params": WV_PARAMS.model_dump(mode="json")}}), encoding="utf-8")
        out = tmp_path / "x.h5"
        proc = _run(["run", "write_verify_array", "-c", str(session), "--out", str(out)])
        deadline = time.monotonic() + 60
        while emu.safe and time.monotonic() < deadline:
            time.sleep(0.005)
        emu.stop()  # every instrument gone: sockets closed, nothing listens any more
        t0 = time.monotonic()
        stdout, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        emu.stop()
    assert proc.returncode == 1, (stdout, err)
    assert "Traceback" not in err + stdout
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "safe state was not confirmed" in errors[0], err
    assert "status" in stdout and "failed" in stdout
    assert took < 15, f"{took:.1f} s to give up"
    with LogReader(out) as log:
        assert log.status == "failed" and log.end is not None
        assert "safe state" in log.end.reason


@pytest.mark.slow
def test_sigterm_twice_on_the_bench_is_one_abort_with_a_finished_log(tmp_path: Path) -> None:
    """SIGTERM during a bench run, then another one while the session cleans up: the abort is
    never a transport failure, the second signal waits, the session itself reaches the safe
    state (the supervisor has nothing to do) and the log is complete."""
    with EmulatedBench(bench_config(K2600_707B), SIM) as emu:
        bench_yaml = tmp_path / "bench.yaml"
        bench_yaml.write_text(yaml.safe_dump(emu.config(timeout=1.0).model_dump(mode="json")),
                              encoding="utf-8")
        session = tmp_path / "session.yaml"
        session.write_text(yaml.safe_dump({
            "backend": "bench", "bench": str(bench_yaml), "limits": K2600_707B["limits"],
            "protocol": {"kind": "write_verify_array",
                         "params": WV_PARAMS.model_dump(mode="json")}}), encoding="utf-8")
        out = tmp_path / "x.h5"
        proc = _run(["run", "write_verify_array", "-c", str(session), "--out", str(out)])
        deadline = time.monotonic() + 60
        while emu.safe and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)  # most often lands in the cleanup
        stdout, err = proc.communicate(timeout=60)
        assert emu.safe, emu.unsafe()
    # 143; or -15 if the second signal came after everything was done (log closed, summary
    # shown) and the process was on its way out: SIGTERM then ends it as usual
    assert proc.returncode == 143 or (proc.returncode == -15 and "aborted" in stdout), (
        stdout, err)
    assert "Traceback" not in err + stdout and "TransportError" not in stdout
    with LogReader(out) as log:
        assert log.status == "aborted" and log.end is not None
        assert log.end.reason == "SIGTERM received"
        # (an I/O call cut short by the signal may leave its link resynchronised: reconnect)
        kinds = [k for k in log.events()["kind"] if k != "reconnect"]
        assert kinds[-1] == "safe_state" and "fault" not in kinds
    assert not (tmp_path / "x.h5.safety.txt").exists()  # a clean goodbye: nothing left to do
