"""bench/bench_emulated.py keeps working (tiny sizes; the timings themselves are not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_emulated.py"


def test_bench_emulated_reports_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_emulated", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--ops", "4", "--repeat", "1"])
    out = capsys.readouterr().out
    for label in ("sim backend", "emulated: 2636B", "emulated: B2902A", "emulated: XBL board"):
        line = next(line for line in out.splitlines() if label in line)
        pulse_us, read_us = (float(x) for x in line[34:].split()[:2])
        assert pulse_us > 0 and read_us > 0, line
    assert "transport floor" in out
