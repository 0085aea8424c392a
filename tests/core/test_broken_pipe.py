"""A reader that goes away (`xbarlab run ... | head`, a pager closed early) changes nothing
but what is printed: the exit code still says how the work went.

Before, rich's console exited 1 on the broken pipe (`SystemExit(1)`), so a partial run exited 1
("failed"), and `--estimate --json` failed on Python's own BrokenPipeError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.log import live_writer
from xbarlab.log.verify import verify

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from xbarlab.cli.entry import main; sys.argv[0] = 'xbarlab'; main()"


def _closed_stdout(*args: str, timeout: float = 300) -> tuple[int, str]:
    """Run the command with its standard output a pipe nobody reads (closed at once)."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _session(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    cfg["sim"].update(rows=8, cols=8)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_exit_code_of_a_run_is_kept(tmp_path: Path) -> None:
    log = tmp_path / "run.h5"
    code, err = _closed_stdout("run", "write_verify_array", "-c", str(_session(tmp_path)),
                               "--out", str(log))
    report = verify(log)
    assert report.exit_code == 0 and report.status == "partial"  # the run ended, logged
    assert code == 3 and "Traceback" not in err and "Exception ignored" not in err, err


def test_an_estimate_as_json_is_kept(tmp_path: Path) -> None:
    session = _session(tmp_path)
    reference = subprocess.run([sys.executable, "-c", CLI, "run", "write_verify_array", "-c",
                                str(session), "--estimate", "--json"], capture_output=True,
                               text=True, timeout=300)
    assert reference.stdout.lstrip().startswith("{")
    code, err = _closed_stdout("run", "write_verify_array", "-c", str(session), "--estimate",
                               "--json")
    assert code == reference.returncode and "Traceback" not in err, err


def test_following_a_live_log_stops_when_its_reader_goes(tmp_path: Path) -> None:
    log = tmp_path / "live.h5"
    with live_writer.start(log) as writer:
        # the run never ends while this runs: follow must end on its own, not at --timeout
        code, err = _closed_stdout("log", "follow", str(log), "--timeout", "120", timeout=90)
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.flush()
    assert code == 0 and "Traceback" not in err, err
