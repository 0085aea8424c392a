"""Probing suspect files in a child process and refusing to clear a live writer's file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.log.docs import run_start, run_stop
from xbarlab.log.recovery import RecoveryError, clear_write_flag, holders, probe
from xbarlab.log.writer import HDF5Writer


def _finished_log(path: Path) -> Path:
    with HDF5Writer(path) as writer:
        writer(run_start())
        writer(run_stop(0))
    return path


def test_probe_reports_a_finished_log(tmp_path: Path) -> None:
    result = probe(_finished_log(tmp_path / "ok.h5"), timeout=60)
    assert result.readable and result.plain_readable and not result.hung
    assert result.status == "success" and result.counts == {"events": 0, "measurements": 0,
                                                           "mvm": 0}


def test_probe_that_does_not_finish_in_time_reports_a_hang(tmp_path: Path) -> None:
    result = probe(_finished_log(tmp_path / "ok.h5"), timeout=0.01)
    assert result.hung and not result.readable and "did not finish" in result.error


def test_a_file_held_open_by_another_process_is_not_cleared(tmp_path: Path) -> None:
    path = _finished_log(tmp_path / "held.h5")
    script = "import sys, time; f = open(sys.argv[1], 'rb'); print('open', flush=True); " \
             "time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "open"
            assert child.pid in holders(path)
            if shutil.which("h5clear") is None:
                pytest.skip("h5clear (hdf5-tools) not installed")
            with pytest.raises(RecoveryError, match=str(child.pid)):
                clear_write_flag(path)
        finally:
            child.kill()
            child.wait(timeout=10)
    assert child.pid not in holders(path)
