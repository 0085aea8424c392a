"""`xbarlab emulate CONFIG`: serves a bench config's instruments, writes a config pointing at
them that other xbarlab commands use unchanged, stops cleanly; a taken port is a clear error."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.emulators.benches import K2600_707B
from xbarlab.bench.config import BenchConfig
from xbarlab.cli.main import app
from xbarlab.config import load_config
from xbarlab.drivers.registry import check_identities


def _write(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_emulate_serves_a_bench_that_other_commands_use(tmp_path: Path) -> None:
    bench = _write(tmp_path / "bench.yaml", K2600_707B)
    out = tmp_path / "emulated.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbarlab.cli.main", "emulate", str(bench), "--out", str(out),
         "--no-noise", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.exists(), proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)  # the file is written in one go; let the command reach its loop
        cfg = load_config(out, BenchConfig)
        assert all(i.address.startswith("TCPIP::127.0.0.1::") for i in cfg.instruments.values())
        reports = check_identities(cfg)
        assert [r.ok for r in reports] == [True] * 4, reports
        session = _write(tmp_path / "session.yaml", {
            "backend": "bench", "bench": str(out), "limits": K2600_707B["limits"],
            "protocol": {"kind": "read_map"}})
        result = CliRunner().invoke(app, ["run", "read_map", "--config", str(session),
                                          "--out", str(tmp_path / "run.h5")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "run.h5").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "TCPIP::127.0.0.1::" in output
    assert "stopped; 0 problem(s)" in output


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    bench = _write(tmp_path / "bench.yaml", K2600_707B)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["emulate", str(bench), "--port", str(port),
                                          "--out", str(tmp_path / "e.yaml"), "--duration", "0"])
    assert result.exit_code == 2
    assert f"port {port}" in result.output and "already in use" in result.output
    assert "--port 0" in result.output
    assert not (tmp_path / "e.yaml").exists()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bench = _write(tmp_path / "bench.yaml", {**K2600_707B, "rows": 0})
    result = CliRunner().invoke(app, ["emulate", str(bench), "--duration", "0"])
    assert result.exit_code == 2
    assert "rows" in result.output
