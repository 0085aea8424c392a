"""bench/bench_log.py keeps working (tiny sizes; the timings themselves are not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_log.py"


def test_bench_log_runs_and_reports_every_case(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_log", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--rows", "4096", "--ops", "200", "--repeat", "1", "--dir", str(tmp_path)])
    out = capsys.readouterr().out
    for label in ("raw h5py block append, ds[a:b] = block", "DatasetID.write",
                  "read events of 256 cells", "read events of 1 cells",
                  "bare loop on SimCrossbar", "RunEngine, no subscriber",
                  "RunEngine + HDF5Writer", "HDF5 fletcher32 filter", "own CRC-32 per block",
                  "1-cell events, fletcher32 (default)", "write + fsync (median of 20)",
                  "16-cell events, durable", "RunEngine + HDF5Writer, durable"):
        line = next(line for line in out.splitlines() if label in line)
        value = float(line.split(label)[1].split()[0])
        assert value > 0, line
