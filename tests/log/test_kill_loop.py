"""bench/kill_loop.py on a couple of kills: the measured cells a SIGKILL may lose are only the
last flush_interval's (the full run of >= 50 kills is the script itself)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "kill_loop.py"


@pytest.mark.slow
def test_kills_during_read_maps_lose_only_the_last_interval(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("kill_loop", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--kills", "2", "--flush-interval", "0.5", "--min-time", "1.0",
                        "--max-time", "2.0", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("kill ")]
    assert len(lines) == 2 and all("FAIL" not in line for line in lines)
    assert all(int(line.split()[2]) > 0 for line in lines), out  # cells were measured
