"""The HDF5 log holds exactly the documents it was given: every kind, across block boundaries."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from tests.log.docs import (
    expected_rows,
    mvm_event,
    note_event,
    pulse_event,
    read_event,
    run_start,
    run_stop,
)
from xbarlab.documents import Document, Event, EventKind, RunStatus
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.reader import LogError, LogReader
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Mvm, Plan, Pulse, Read

RNG = np.random.default_rng(1)
X = RNG.uniform(-0.3, 0.3, (3, 4))
Y = RNG.uniform(-1e-4, 1e-4, (3, 4))
COMP = np.zeros((3, 4), bool)
COMP[1, 2] = True


def _documents() -> list[Document]:
    """One of each kind, with reads of 1, 3 and 16 cells (so blocks of 5 rows spill)."""
    all16 = [(r, c) for r in range(4) for c in range(4)]
    events = [
        read_event(1, [(0, 1)], 0.2, [1.5e-4]),
        read_event(2, [(1, 1), (2, 3), (3, 0)], 0.1, [1e-4, 2e-4, 3e-4], step="verify",
                   compliance=[False, True, False]),
        pulse_event(3, (2, 3), -1.7, 1e-6, step="reset"),
        mvm_event(4, X, Y, COMP),
        read_event(5, all16, 0.2, list(np.linspace(5e-5, 6e-4, 16))),
        note_event(6, EventKind.CHECKPOINT, "cell_done",
                   {"progress": (3, 16), "g": np.float64(1.25e-4), "arr": np.arange(3),
                    "by_cell": {(0, 1): 2}}),
        note_event(7, EventKind.REFUSED, "pulse of +9 V on (0, 0) is outside [-3, +2.5] V",
                   step="set"),
        pulse_event(8, (0, 0), 1.2, 5e-7),
        note_event(9, EventKind.FAULT, "OSError: instrument timed out (Ω, µA)", step="fault"),
    ]
    return [run_start(), *events, run_stop(len(events), RunStatus.FAILED, "refused: +9 V")]


def _write(path: Path, docs: list[Document], **kw: object) -> None:
    with HDF5Writer(path, **kw) as writer:  # type: ignore[arg-type]
        for doc in docs:
            writer(doc)


@pytest.mark.parametrize(("block_rows", "fsync"), [(5, False), (1024, True), (1, False)])
def test_every_document_kind_round_trips(tmp_path: Path, block_rows: int, fsync: bool) -> None:
    docs = _documents()
    path = tmp_path / "run.h5"
    _write(path, docs, block_rows=block_rows, fsync=fsync)
    events = docs[1:-1]
    assert all(isinstance(e, Event) for e in events)
    evs: list[Event] = events  # type: ignore[assignment]

    with LogReader(path) as log:
        info = log.info
        assert (info.run_id, info.protocol, info.seed, info.version, info.git_revision) == (
            "run-under-test", "unit", 5, "9.9.9", "abc123")
        assert info.shape == (4, 4) and info.start_time == 1_700_000_000.0
        assert info.config == {"a": 1, "b": [1.5]}
        assert info.backend == {"backend": "fake", "n": 2}
        assert info.limits == {"read_v_max": 0.5}
        end = log.end
        assert end is not None and end.status == "failed" and end.reason == "refused: +9 V"
        assert end.n_events == len(evs) and log.status == "failed"

        m = log.measurements()
        ref = expected_rows(evs)
        assert len(m) == len(ref["row"]) == 1 + 3 + 1 + 16 + 1
        for name, values in ref.items():
            np.testing.assert_array_equal(m[name].to_numpy(), values, err_msg=name)
        kinds = [e.kind.value for e in evs for _ in range(len(e.cells))]
        steps = [e.step for e in evs for _ in range(len(e.cells))]
        schemes = [e.scheme for e in evs for _ in range(len(e.cells))]
        assert list(m["kind"]) == kinds and list(m["step"]) == steps
        assert list(m["scheme"]) == schemes and set(m["protocol"]) == {"unit"}
        np.testing.assert_array_equal(m["seq"], [evs[i].seq for i in ref["event"]])

        e = log.events()
        assert list(e["seq"]) == [ev.seq for ev in evs]
        assert list(e["kind"]) == [ev.kind.value for ev in evs]
        assert list(e["step"]) == [ev.step for ev in evs]
        assert list(e["message"]) == [ev.message for ev in evs]
        np.testing.assert_array_equal(e["time"], [ev.time for ev in evs])
        np.testing.assert_array_equal(e["meas_count"], [len(ev.cells) for ev in evs])
        assert e["data"][5] == {"progress": [3, 16], "g": 1.25e-4, "arr": [0, 1, 2],
                                "by_cell": {"(0, 1)": 2}}

        notes = log.annotations()
        # the read and pulses in compliance get a note each from their flags
        assert list(notes["kind"]) == ["compliance", "compliance", "checkpoint", "refused",
                                       "compliance", "fault"]
        assert list(notes["seq"]) == [2, 3, 6, 7, 8, 9]
        assert notes["data"][0]["cells"] == [[2, 3]]
        assert notes["message"][5] == "OSError: instrument timed out (Ω, µA)"

        mvm = log.mvm()
        np.testing.assert_array_equal(mvm.inputs, X)
        np.testing.assert_array_equal(mvm.outputs, Y)
        np.testing.assert_array_equal(mvm.compliance, COMP)
        np.testing.assert_array_equal(mvm.event, [3, 3, 3])

        final = log.final_conductances()
        g16 = np.linspace(5e-5, 6e-4, 16).reshape(4, 4)
        np.testing.assert_array_equal(final, g16)  # the full read came after the others


def test_schema_version_units_and_format_attributes(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, _documents())
    with h5py.File(path, "r") as f:  # a plain (non-SWMR) reader opens a closed log
        assert f.attrs["schema"] == "xbarlab.log" and f.attrs["schema_version"] == 2
        units = json.loads(f["measurements"].attrs["units"])
        assert units == {"time": "s", "voltage": "V", "width": "s", "current": "A",
                         "conductance": "S"}
        assert json.loads(f["events"].attrs["units"])["time"] == "s"
        assert f["mvm/inputs"].attrs["units"] == "V" and f["mvm/outputs"].attrs["units"] == "A"
        assert json.loads(f["run"].attrs["config"]) == {"a": 1, "b": [1.5]}
        # fields are self-describing enums in the file, not bare codes
        kind = h5py.check_enum_dtype(f["measurements"].dtype["kind"])
        assert kind is not None and kind["read"] != kind["pulse"]
        assert f["measurements"].dtype.names is not None
        assert "conductance" in f["measurements"].dtype.names


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_opens_a_finished_log(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write(path, _documents())
    done = subprocess.run(["h5dump", "-d", "/events", "-A", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert '"refused"' in done.stdout or "refused" in done.stdout


def test_seed_and_git_revision_may_be_absent(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    start = run_start(seed=None)
    start = type(start)(**{**{f: getattr(start, f) for f in start.__slots__},
                           "git_revision": None})
    _write(path, [start, run_stop(0)])
    with LogReader(path) as log:
        assert log.info.seed is None and log.info.git_revision is None
        assert len(log.measurements()) == 0 and len(log.events()) == 0
        assert np.isnan(log.final_conductances()).all()


def test_engine_run_is_logged_in_order(tmp_path: Path) -> None:
    """The writer as an engine subscriber: the file matches the documents the engine sent."""

    def plan() -> Plan:
        yield Read(None, 0.2)
        for v in (1.5, -1.5, 1.3):
            yield Pulse((1, 2), v, 1e-6)
            yield Read(((1, 2),), 0.2, tag="verify")
        yield Mvm(np.array([0.1, 0.0, 0.2, 0.0]))
        yield Checkpoint("done", {"progress": (1, 1)})

    docs: list[Document] = []
    path = tmp_path / "engine.h5"
    xbar = RecordingCrossbar()
    with HDF5Writer(path, block_rows=4) as writer:
        result = RunEngine(xbar, BenchLimits(), [writer, docs.append]).run(
            plan(), protocol="wv", config={"k": 2}, seed=11)
    assert result.ok
    events = [d for d in docs if isinstance(d, Event)]
    with LogReader(path) as log:
        m = log.measurements()
        pulses = m[m["kind"] == "pulse"]
        assert list(pulses["voltage"]) == [1.5, -1.5, 1.3]
        assert (pulses["width"] == 1e-6).all() and set(pulses["scheme"]) == {"v/2"}
        verify = m[m["step"] == "verify"]
        assert list(zip(verify["row"], verify["col"], strict=True)) == [(1, 2)] * 3
        # the backend's true conductance after the pulses is what the last read logged
        assert log.final_conductances()[1, 2] == pytest.approx(xbar.g[1, 2])
        assert list(log.events()["seq"]) == [e.seq for e in events]
        assert np.all(np.diff(m["seq"]) >= 0) and log.status == "success"
        assert log.info.protocol == "wv" and log.info.seed == 11
        assert log.info.backend == {"backend": "recording", "shape": [4, 4]}


def test_existing_file_is_never_overwritten_silently(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious data")
    with pytest.raises(FileExistsError, match="overwrite"):
        HDF5Writer(path)
    assert path.read_bytes() == b"precious data"
    _write(path, _documents(), overwrite=True)
    with LogReader(path) as log:
        assert log.status == "failed"


def test_misuse_raises_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="block_rows"):
        HDF5Writer(tmp_path / "a.h5", block_rows=0)
    with HDF5Writer(tmp_path / "b.h5") as writer:
        with pytest.raises(RuntimeError, match="before the RunStart"):
            writer(read_event(1, [(0, 0)], 0.2, [1e-4]))
        writer(run_start())
        with pytest.raises(RuntimeError, match="one run per log file"):
            writer(run_start())
        bad = read_event(1, [(0, 0), (0, 1)], 0.2, [1e-4, 2e-4])
        bad = Event(1, 0.0, EventKind.READ, "unit", "read", cells=bad.cells,
                    voltages=bad.voltages, currents=bad.currents[:1],
                    conductances=bad.conductances)
        with pytest.raises(ValueError, match="2 cells but 2 voltages, 1 currents"):
            writer(bad)
        with pytest.raises(ValueError, match="MVM input"):
            writer(mvm_event(2, np.zeros((1, 3)), np.zeros((1, 4))))
    with pytest.raises(RuntimeError, match="closed"):
        writer(read_event(3, [(0, 0)], 0.2, [1e-4]))
    HDF5Writer(tmp_path / "empty.h5").close()  # a writer that never got a RunStart
    with LogReader(tmp_path / "empty.h5") as empty:
        assert not empty.started
        with pytest.raises(LogError, match="holds no run"):
            _ = empty.info
    with pytest.raises(FileNotFoundError):
        LogReader(tmp_path / "missing.h5")
    (tmp_path / "not.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(LogError, match="not an HDF5 file"):
        LogReader(tmp_path / "not.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(LogError, match="not an xbarlab log"):
        LogReader(tmp_path / "other.h5")
