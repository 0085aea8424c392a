"""The writer's per-event buffering: packed records, block conversion, flush points, chunk writes.

References are independent of the writer: the values the events were built from, numpy
concatenations of them, and what h5py reads back from the file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.log.docs import expected_rows, note_event, read_event, run_start, run_stop
from xbarlab.documents import Event, EventKind
from xbarlab.log import blocks
from xbarlab.log.reader import LogReader
from xbarlab.log.writer import HDF5Writer

RNG = np.random.default_rng(7)


def _cells_event(seq: int, k: int, *, step: str = "read", kind: EventKind = EventKind.READ,
                 scheme: str = "grounded") -> Event:
    """An event of `k` distinct random cells of a 4 x 4 array, random values."""
    flat = RNG.choice(16, size=k, replace=False)
    cells = np.stack([flat // 4, flat % 4], axis=1).astype(np.int64)
    v = RNG.uniform(-0.5, 0.5, k)
    g = RNG.uniform(5e-5, 6e-4, k)
    return Event(seq, 1000.0 + seq, kind, "unit", step, scheme, width=1e-6 * seq,
                 cells=cells, voltages=v, currents=g * v, conductances=g,
                 compliance=RNG.random(k) < 0.3)


def _check_file(path: Path, events: list[Event]) -> None:
    """Every row of /measurements and /events equals what the events hold, in order."""
    ref = expected_rows(events)
    with LogReader(path) as log:
        m = log.measurements_array()
        e = log.events_array()
        labels = log.labels()
    assert len(m) == len(ref["row"]) and len(e) == len(events)
    for name, values in ref.items():
        np.testing.assert_array_equal(m[name], values, err_msg=name)
    np.testing.assert_array_equal(e["seq"], [ev.seq for ev in events])
    np.testing.assert_array_equal(e["time"], [ev.time for ev in events])
    np.testing.assert_array_equal(e["width"], [ev.width for ev in events])
    counts = np.array([len(ev.cells) for ev in events])
    np.testing.assert_array_equal(e["meas_count"], counts)
    starts = np.cumsum(counts) - counts
    np.testing.assert_array_equal(e["meas_start"], np.where(counts > 0, starts, -1))
    assert [labels[s] for s in e["step"]] == [ev.step for ev in events]
    assert [labels[s] for s in m["step"]] == [ev.step for ev in events for _ in ev.cells]


def test_cell_records_unpack_to_the_arrays_they_were_packed_from() -> None:
    events = [_cells_event(s, k) for s, k in enumerate([3, 1, 5, 5, 2], start=1)]
    records = b"".join(blocks.cell_record(e.seq, e.cells, e.voltages, e.currents,
                                          e.conductances, e.compliance) for e in events)
    ref = expected_rows(events)
    for counts in ([3, 1, 5, 5, 2],):  # mixed sizes: the byte-offset gather
        cols = blocks.unpack_cells(records, np.array(counts))
        for name, attr in (("row", "row"), ("col", "col"), ("voltage", "voltage"),
                           ("current", "current"), ("conductance", "conductance"),
                           ("compliance", "compliance")):
            np.testing.assert_array_equal(getattr(cols, attr).reshape(-1), ref[name],
                                          err_msg=name)
    same = [_cells_event(s, 4) for s in range(3)]  # one size: the structured view
    cols = blocks.unpack_cells(b"".join(blocks.cell_record(
        e.seq, e.cells, e.voltages, e.currents, e.conductances, e.compliance) for e in same),
        np.array([4, 4, 4]))
    np.testing.assert_array_equal(cols.voltage, np.stack([e.voltages for e in same]))
    np.testing.assert_array_equal(cols.row, np.stack([e.cells[:, 0] for e in same]))
    with pytest.raises(ValueError, match="bytes of cell records for 4 cells"):
        blocks.unpack_cells(records[:-1], np.array([4]))


def test_cell_record_converts_other_dtypes_and_refuses_inconsistent_arrays() -> None:
    rec = blocks.cell_record(9, [[1, 2]], np.array([1]), np.array([2.5], np.float32),
                             [3.0], [])  # int voltage, float32 current, no compliance flags
    cols = blocks.unpack_cells(rec, np.array([1]))
    assert (cols.row[0], cols.col[0], cols.voltage[0]) == (1, 2, 1.0)
    assert (cols.current[0], cols.conductance[0], cols.compliance[0]) == (2.5, 3.0, False)
    with pytest.raises(ValueError, match="event 9: 2 cells but 1 voltages"):
        blocks.cell_record(9, [[0, 0], [0, 1]], [0.1], [1e-5, 1e-5], [1e-4, 1e-4], [])
    with pytest.raises(ValueError, match=r"shape \(1, 2\), got shape \(1, 3\)"):
        blocks.cell_record(9, [[0, 0, 0]], [0.1], [1e-5], [1e-4], [])
    with pytest.raises(ValueError, match="whole numbers"):
        blocks.cell_record(9, [[0.5, 1.0]], [0.1], [1e-5], [1e-4], [])


@pytest.mark.parametrize("block_rows", [1, 4, 7, 64])
def test_mixed_blocks_round_trip_in_order(tmp_path: Path, block_rows: int) -> None:
    """Events of 0, 1, 2 ... 9 cells, kinds and steps interleaved, across block boundaries."""
    sizes = [1, 0, 2, 1, 1, 9, 0, 3, 1, 2, 0, 5, 1, 1, 1, 4, 0, 2]
    events: list[Event] = []
    for seq, k in enumerate(sizes, start=1):
        if k:
            pulse = seq % 3 == 0
            events.append(_cells_event(seq, k, step="set" if pulse else "verify",
                                       kind=EventKind.PULSE if pulse else EventKind.READ,
                                       scheme="v/2" if pulse else "grounded"))
        else:
            events.append(Event(seq, 1000.0 + seq, EventKind.CHECKPOINT, "unit", "note"))
    path = tmp_path / "mixed.h5"
    with HDF5Writer(path, block_rows=block_rows, flush_interval=None) as writer:
        writer(run_start())
        for ev in events:
            writer(ev)
        writer(run_stop(len(events)))
    _check_file(path, events)
    with LogReader(path) as log:
        kinds = [ev.kind.value for ev in events]
        assert list(log.events()["kind"]) == kinds


def test_two_cells_then_none_is_not_mistaken_for_one_cell_each(tmp_path: Path) -> None:
    """A block whose row count equals its event count but whose events are not 1-cell."""
    events = [_cells_event(1, 2), Event(2, 1002.0, EventKind.CHECKPOINT, "unit", "note")]
    path = tmp_path / "two.h5"
    with HDF5Writer(path, block_rows=8, flush_interval=None) as writer:
        writer(run_start())
        for ev in events:
            writer(ev)
    _check_file(path, events)


def test_arrays_of_other_dtypes_and_layouts_are_logged_by_value(tmp_path: Path) -> None:
    base = _cells_event(1, 3)
    wide = np.zeros((3, 4))
    wide[:, 1] = base.voltages
    odd = [
        Event(1, 1.0, EventKind.READ, "unit", "read", "grounded",
              cells=base.cells.astype(np.int32), voltages=wide[:, 1],  # strided view
              currents=base.currents.astype(np.float32), conductances=base.conductances,
              compliance=base.compliance.astype(np.uint8)),
        Event(2, 2.0, EventKind.READ, "unit", "read", "grounded",
              cells=np.asfortranarray(base.cells), voltages=np.full(3, 1),  # int voltages
              currents=base.currents, conductances=base.conductances,
              compliance=np.zeros(0, bool)),  # no flags: all False
    ]
    path = tmp_path / "odd.h5"
    with HDF5Writer(path, block_rows=16) as writer:
        writer(run_start())
        for ev in odd:
            writer(ev)
    with LogReader(path) as log:
        m = log.measurements_array()
    np.testing.assert_array_equal(m["row"], np.tile(base.cells[:, 0], 2))
    np.testing.assert_array_equal(m["col"], np.tile(base.cells[:, 1], 2))
    np.testing.assert_array_equal(m["voltage"], np.concatenate([base.voltages, np.ones(3)]))
    np.testing.assert_array_equal(
        m["current"], np.concatenate([base.currents.astype(np.float32), base.currents]))
    np.testing.assert_array_equal(m["compliance"], np.concatenate([base.compliance,
                                                                   np.zeros(3, bool)]))


def test_logged_values_are_a_copy_taken_when_the_event_arrived(tmp_path: Path) -> None:
    """A producer that reuses its arrays after emitting cannot change the buffered rows."""
    ev = _cells_event(1, 2)
    kept = {name: getattr(ev, name).copy() for name in ("voltages", "currents", "conductances")}
    path = tmp_path / "copy.h5"
    with HDF5Writer(path, block_rows=64, flush_interval=None) as writer:
        writer(run_start())
        writer(ev)
        for name in kept:
            getattr(ev, name)[:] = -1.0  # overwritten while the row is still buffered
    with LogReader(path) as log:
        m = log.measurements_array()
    for name, column in (("voltages", "voltage"), ("currents", "current"),
                         ("conductances", "conductance")):
        np.testing.assert_array_equal(m[column], kept[name])


def test_a_partial_block_is_written_at_close_and_at_run_stop(tmp_path: Path) -> None:
    events = [_cells_event(s, 1) for s in range(1, 6)]
    for stop in (False, True):
        path = tmp_path / f"partial-{stop}.h5"
        writer = HDF5Writer(path, block_rows=1000, flush_interval=None)
        writer(run_start())
        for ev in events:
            writer(ev)
        assert writer.flushed_rows["measurements"] == 0  # all five still buffered
        if stop:
            writer(run_stop(5))
            assert writer.flushed_rows == {"measurements": 5, "events": 5, "mvm": 0}
        writer.close()
        _check_file(path, events)


def test_flush_points_follow_blocks_and_realign_to_chunks(tmp_path: Path) -> None:
    """Rows reach the file when a block is full; after an early flush the next block ends on
    the next multiple of block_rows, and every later whole block lands on chunk boundaries."""
    path = tmp_path / "align.h5"
    flushed: list[int] = []
    events = [_cells_event(s, 1) for s in range(1, 15)]
    with HDF5Writer(path, block_rows=4, flush_interval=None) as writer:
        writer(run_start())
        for j, ev in enumerate(events):
            if j == 2:
                writer.flush()  # as a timed flush would: 2 rows, mid-chunk
            writer(ev)
            flushed.append(writer.written_rows["measurements"])
    assert flushed == [0, 0, 2, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12]
    _check_file(path, events)
    with h5py.File(path, "r") as f:
        assert f["measurements"].chunks == (4,) and f["events"].chunks == (4,)


def test_timed_flush_reaches_a_live_reader(tmp_path: Path) -> None:
    """flush_interval=0 flushes every event; an interval flushes the first event after it."""
    path = tmp_path / "every.h5"
    with HDF5Writer(path, block_rows=100, flush_interval=0) as writer:
        writer(run_start())
        for s in range(1, 4):
            writer(_cells_event(s, 1))
            assert writer.flushed_rows["measurements"] == s
    with HDF5Writer(tmp_path / "none.h5", block_rows=100, flush_interval=None) as writer:
        writer(run_start())
        writer(_cells_event(1, 1))
        assert writer.flushed_rows["measurements"] == 0


def test_an_unknown_kind_is_refused_before_anything_is_buffered(tmp_path: Path) -> None:
    with HDF5Writer(tmp_path / "bad.h5", block_rows=8) as writer:
        writer(run_start())
        writer(read_event(1, [(0, 0)], 0.2, [1e-4]))
        bad = Event(2, 2.0, "melt", "unit", "read")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown kind 'melt'"):
            writer(bad)
        writer(note_event(3, EventKind.CHECKPOINT, "after", {"x": 1}))
    with LogReader(tmp_path / "bad.h5") as log:
        assert list(log.events()["seq"]) == [1, 3]
        assert log.events()["data"][1] == {"x": 1}


def test_rows_of_a_failed_append_are_written_by_the_next_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "retry.h5"
    events = [_cells_event(s, 1 + s % 3) for s in range(1, 9)]
    with HDF5Writer(path, block_rows=64, flush_interval=None) as writer:
        writer(run_start())
        for ev in events[:5]:
            writer(ev)
        sink = writer._sinks["events"]
        real = sink.append
        # a Ctrl-C in the middle of a flush (a write the file system refuses is final:
        # tests/log/test_disk_full.py)
        monkeypatch.setattr(sink, "append",
                            lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            writer.flush()  # measurements written, events not
        monkeypatch.setattr(sink, "append", real)
        for ev in events[5:]:
            writer(ev)
    _check_file(path, events)


def test_the_flush_clock_thread_ends_with_the_writer(tmp_path: Path) -> None:
    import threading

    def clocks() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("HDF5Writer flush")]

    before = len(clocks())
    writer = HDF5Writer(tmp_path / "clock.h5", flush_interval=0.05)
    writer(run_start())
    assert len(clocks()) == before + 1
    writer(_cells_event(1, 1))
    writer.close()
    assert len(clocks()) == before


def test_one_cell_events_of_any_number_type_are_logged_by_value(tmp_path: Path) -> None:
    """The 1-cell path packs Python numbers; unusual arrays go through the checked record."""
    odd = [
        Event(1, 1.0, EventKind.READ, "unit", "read", "grounded", cells=np.array([[1, 2]]),
              voltages=np.array([1]), currents=np.array([2.5], np.float32),
              conductances=np.array([2.5]), compliance=np.array([1], np.uint8)),
        Event(2, 2.0, EventKind.PULSE, "unit", "set", "v/2", width=1e-6,
              cells=np.array([[3.0, 0.0]]), voltages=[1.2],  # type: ignore[arg-type]
              currents=np.array([np.nan]), conductances=np.array([np.nan]),
              compliance=np.zeros(0, bool)),
        Event(3, 3.0, EventKind.READ, "unit", "read", "grounded",
              cells=np.array([[0, 1], [2, 3]])[1:], voltages=np.full((4, 2), 0.2)[1:2, 0],
              currents=np.array([2e-5]), conductances=np.array([1e-4]),
              compliance=np.array([True]), message="a read with a note"),
    ]
    path = tmp_path / "one.h5"
    with HDF5Writer(path, block_rows=2) as writer:
        writer(run_start())
        for ev in odd:
            writer(ev)
        bad = Event(4, 4.0, EventKind.READ, "unit", "read", cells=np.array([[0, 0]]),
                    voltages=np.array([0.2, 0.2]), currents=np.array([1e-5]),
                    conductances=np.array([5e-5]))
        with pytest.raises(ValueError, match="event 4: 1 cells but 2 voltages"):
            writer(bad)
        wide = Event(5, 5.0, EventKind.READ, "unit", "read", cells=np.array([[0, 0, 1]]),
                     voltages=np.array([0.2]), currents=np.array([1e-5]),
                     conductances=np.array([5e-5]))
        with pytest.raises(ValueError, match="shape"):
            writer(wide)
    with LogReader(path) as log:
        m = log.measurements_array()
        e = log.events()
    np.testing.assert_array_equal(m["row"], [1, 3, 2])
    np.testing.assert_array_equal(m["col"], [2, 0, 3])
    np.testing.assert_array_equal(m["voltage"], [1.0, 1.2, 0.2])
    np.testing.assert_array_equal(m["current"][[0, 2]], [np.float32(2.5), 2e-5])
    assert np.isnan(m["current"][1]) and np.isnan(m["conductance"][1])
    np.testing.assert_array_equal(m["compliance"], [True, False, True])
    np.testing.assert_array_equal(m["width"][1], 1e-6)
    assert list(e["seq"]) == [1, 2, 3] and e["message"][2] == "a read with a note"
    np.testing.assert_array_equal(e["meas_start"], [0, 1, 2])


def test_h5dump_reads_rows_written_as_whole_chunks(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("h5dump") is None:
        pytest.skip("h5dump (hdf5-tools) not installed")
    path = tmp_path / "chunks.h5"
    events = [_cells_event(s, 1) for s in range(1, 9)]  # two whole blocks of 4
    with HDF5Writer(path, block_rows=4, flush_interval=None) as writer:
        writer(run_start())
        for ev in events:
            writer(ev)
    done = subprocess.run(["h5dump", "-d", "/measurements", "-m", "%.17g", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "SIMPLE { ( 8 ) / ( H5S_UNLIMITED ) }" in done.stdout
    for ev in events:
        assert f"{ev.voltages[0]:.17g}" in done.stdout


def test_never_more_than_a_block_is_buffered(tmp_path: Path) -> None:
    """After every event fewer than block_rows rows and events wait in memory (the old
    writer's bound), whatever the mix of sizes; the file then holds every row in order."""
    sizes = np.random.default_rng(3).integers(0, 6, 300)
    events = [_cells_event(s, int(k)) if k else
              Event(s, 1000.0 + s, EventKind.CHECKPOINT, "unit", "note")
              for s, k in enumerate(sizes, start=1)]
    path = tmp_path / "bound.h5"
    given_rows = 0
    with HDF5Writer(path, block_rows=7, flush_interval=None) as writer:
        writer(run_start())
        for j, ev in enumerate(events, start=1):
            writer(ev)
            given_rows += len(ev.cells)
            done = writer.written_rows
            assert given_rows - done["measurements"] < 7, j
            assert j - done["events"] < 7, j
    _check_file(path, events)


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_keeps_every_flushed_row_of_a_mixed_stream(tmp_path: Path, trial: int) -> None:
    """Whole chunks, partial writes and cell records all survive a kill once flushed."""
    import os
    import random
    import signal
    import subprocess
    import sys

    from tests.log.docs import mixed_count, mixed_event

    child_py = Path(__file__).with_name("writer_child.py")
    rng = random.Random(2000 + trial)
    path = tmp_path / f"mixed-{trial}.h5"
    target = rng.randint(2, 10) * 64
    reported = 0
    with subprocess.Popen([sys.executable, str(child_py), str(path), str(10**7), "64", "0",
                           "0", "mixed", "37"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if line.strip().isdigit() and int(line) >= target:
                    reported = int(line)
                    break
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            for line in child.stdout:
                if line.strip().isdigit():
                    reported = max(reported, int(line))
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
    assert reported >= target
    with LogReader(path) as log:
        m = log.measurements_array()
        e = log.events_array()
    assert len(m) >= reported
    events = [mixed_event(s) for s in range(1, len(e) + 1)]
    assert sum(mixed_count(s) for s in range(1, len(e) + 1)) == len(m)  # whole events only
    ref = expected_rows(events)
    for name, values in ref.items():
        np.testing.assert_array_equal(m[name], values, err_msg=name)
    np.testing.assert_array_equal(e["seq"], np.arange(1, len(e) + 1))


@pytest.mark.parametrize("k", [2, 3, 16])
def test_blocks_of_equal_sized_events_round_trip(tmp_path: Path, k: int) -> None:
    """Every block holds events of k cells (the zero-copy record view) and some blocks
    are partial (an explicit flush, as a timed one)."""
    events = [_cells_event(s, k) for s in range(1, 14)]
    path = tmp_path / f"equal-{k}.h5"
    with HDF5Writer(path, block_rows=3 * k, flush_interval=None) as writer:
        writer(run_start())
        for s, ev in enumerate(events, start=1):
            writer(ev)
            if s == 5:
                writer.flush()
    _check_file(path, events)
