"""`xbarlab watch` refuses bad input in one line (exit code 2, no traceback)."""

from __future__ import annotations

import socket
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from xbarlab.cli.main import app

pytest.importorskip("bokeh")
runner = CliRunner()


def _one_line_error(args: list[str], *needles: str) -> None:
    res = runner.invoke(app, ["watch", *args, "--no-browser"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for needle in needles:
        assert needle in lines[0]


def test_a_directory(tmp_path: Path) -> None:
    _one_line_error([str(tmp_path)], "is a directory")


def test_a_missing_folder(tmp_path: Path) -> None:
    _one_line_error([str(tmp_path / "nodir" / "run.h5")], "does not exist")


def test_not_a_log_name(tmp_path: Path) -> None:
    _one_line_error([str(tmp_path / "run.png")], ".h5")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    png = tmp_path / "run.h5"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    _one_line_error([str(png)], "not an HDF5 file")


def test_an_hdf5_file_of_another_program(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2, 3]
    _one_line_error([str(other)], "not an xbarlab log")


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _one_line_error([str(tmp_path / "run.h5"), "--port", str(port)], f"port {port}")
