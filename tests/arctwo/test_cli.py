"""`xbarlab emulate` / `bench check` / `run` with an ArC TWO bench config, as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from xbarlab.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_emulate_check_and_run_with_the_example_arc2_bench(tmp_path: Path) -> None:
    out = tmp_path / "emu.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbarlab.cli.main", "emulate", str(ROOT / "examples" / "bench"
                                                                  / "arc2.yaml"),
         "--out", str(out), "--no-noise", "--device", "simple", "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.exists(), proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
        check = runner.invoke(app, ["bench", "check", str(out)])
        assert check.exit_code == 0, check.output
        assert "emulated ArC TWO answers" in check.output
        res = runner.invoke(app, ["run", "write_verify_array", "-c",
                                  str(ROOT / "examples" / "session-write-verify.yaml"),
                                  "--out", str(tmp_path / "wv.h5"), "--backend", "bench",
                                  "--bench", str(out)])
        assert res.exit_code == 0, res.output
        assert "256/256 cells" in res.output
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "stopped; instrument idle, 0 problem(s), 0 clamped level(s)" in output


def test_check_of_a_bad_mapping_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text("[config]\nwords = 2\nbits = 2\n[mapping]\n"
                                     "words = [16, 17]\nbits = [0, 70]\n")
    (tmp_path / "b.yaml").write_text("kind: arc2\nrows: 2\ncols: 2\naddress: emulated://x:1\n"
                                     "mapping: m.toml\n")
    res = runner.invoke(app, ["bench", "check", str(tmp_path / "b.yaml"), "--dry-run"])
    assert res.exit_code == 2
    assert "outside 0..63" in res.output and "Traceback" not in res.output
