"""Starting SWMR writing while another thread briefly holds an attribute of the file open (a
sampling profiler holding the frame that read it, as in Dask workers)."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import pytest

from xbarlab.log.writer import _start_swmr


def _file(path: Path) -> h5py.File:
    f = h5py.File(path, "w", libver="latest")
    f.attrs["x"] = 1
    return f


def test_swmr_waits_for_a_held_attribute_to_be_released(tmp_path: Path) -> None:
    with _file(tmp_path / "a.h5") as f:
        held = [h5py.h5a.open(f.id, b"x")]  # an open attribute: HDF5 refuses SWMR now
        with pytest.raises(RuntimeError, match=r"(?i)swmr"):
            f.swmr_mode = True
        threading.Timer(0.03, held.clear).start()  # the other thread lets go
        _start_swmr(f)
        assert f.swmr_mode


def test_an_attribute_held_for_good_still_fails_in_one_error(tmp_path: Path) -> None:
    with _file(tmp_path / "b.h5") as f:
        held = h5py.h5a.open(f.id, b"x")
        with pytest.raises(RuntimeError, match=r"(?i)swmr"):
            _start_swmr(f, attempts=3)
        del held
