"""`durable`: fsync of the log at every flush and of its directory at creation; CLI and config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.log.docs import read_event, run_start, run_stop
from xbarlab.cli.main import app
from xbarlab.config import LogSettings
from xbarlab.log.writer import HDF5Writer

runner = CliRunner()


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every fsync as 'dir' or 'file' (and still do it)."""
    calls: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_durable_writer_syncs_directory_then_every_flush(tmp_path: Path,
                                                         synced: list[str]) -> None:
    with HDF5Writer(tmp_path / "d.h5", block_rows=2, flush_interval=None,
                    durable=True) as writer:
        assert synced == ["dir"]
        writer(run_start())
        after_start = len(synced)
        assert synced[1:] == ["file", "file"]  # data, then the end-of-data marker
        writer(read_event(1, [(0, 0)], 0.2, [1e-4]))
        assert len(synced) == after_start  # buffered: nothing to sync yet
        writer(read_event(2, [(0, 1)], 0.2, [1e-4]))  # a full block: flushed and synced
        assert len(synced) - after_start in (1, 2)  # + its marker, unless marked < 0.25 s ago
        before_stop = len(synced)
        writer(run_stop(2))
        assert synced[before_stop:] == ["file", "file"]  # data and stop row, then marker
    synced.clear()
    with HDF5Writer(tmp_path / "plain.h5") as writer:
        writer(run_start())
        writer(run_stop(0))
    assert synced == []


def _config(tmp_path: Path, **log: object) -> Path:
    cfg = {"sim": {"rows": 4, "cols": 4}, "protocol": {"kind": "read_map"}}
    if log:
        cfg["log"] = log
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(("args", "log", "expect"), [
    ([], {}, False),  # sim: off by default
    (["--durable"], {}, True),
    ([], {"durable": True}, True),
    (["--no-durable"], {"durable": True}, False),
])
def test_cli_durable_switch_and_config_field(tmp_path: Path, synced: list[str],
                                             args: list[str], log: dict[str, object],
                                             expect: bool) -> None:
    res = runner.invoke(app, ["run", "read_map", "-c", str(_config(tmp_path, **log)),
                              "--out", str(tmp_path / "o.h5"), *args],
                        env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    assert ("file" in synced) is expect and ("dir" in synced) is expect


def test_durable_default_follows_the_backend() -> None:
    assert LogSettings().durable_for("bench") and not LogSettings().durable_for("sim")
    assert not LogSettings(durable=False).durable_for("bench")
