"""`LiveLog` against the log it follows, read independently with `LogReader` at known points."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.watch.sessions import PARAMS, SHAPE, GatedSession
from xbarlab.config import PatternTarget
from xbarlab.log import schema as sc
from xbarlab.log.reader import LogReader
from xbarlab.protocols.patterns import target_map
from xbarlab.watch.live import LiveLog


def _expected(path: Path) -> dict[str, object]:
    """What the log holds now, from `LogReader` alone."""
    with LogReader(path) as r:
        ev = r.events_array()
        m = r.measurements_array()
        g = r.final_conductances()
        status = r.status
    kinds = ev["kind"].astype(int)
    return {"read": int(np.sum(kinds == sc.KIND_CODE["read"])),
            "pulse": int(np.sum(kinds == sc.KIND_CODE["pulse"])),
            "measurements": len(m), "compliance": int(m["compliance"].sum()), "g": g,
            "status": status}


def test_follows_a_session_from_before_its_file_exists(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    live = LiveLog(out)
    assert live.poll() is False and live.status == "waiting" and "created" in live.detail
    session = GatedSession(out, gates=(8, 24))
    session.start()
    try:
        for gate in (8, 24):
            assert session.wait_gate() == gate
            live.poll()
            want = _expected(out)
            assert live.status == "running" and want["status"] == "unfinished"
            assert live.counts.operations["read"] == want["read"]
            assert live.counts.operations["pulse"] == want["pulse"]
            assert live.counts.measurements == want["measurements"]
            assert live.counts.compliance == want["compliance"]
            np.testing.assert_array_equal(live.g, want["g"])
            assert live.cells_read == gate  # row-major write-verify, one cell at a time
            assert live.progress == (gate, SHAPE[0] * SHAPE[1])
            session.release()
    finally:
        session.release()
        session.join(120)
    assert session.error is None and session.result is not None
    live.poll()
    want = _expected(out)
    # the run ends; 28 of 64 cells stay in tolerance after the disturb of later cells, so
    # the log calls it partial (older logs: success)
    assert live.status == want["status"] and live.status in ("partial", "success")
    np.testing.assert_array_equal(live.g, want["g"])
    # in tolerance: counted independently from the final map, the pattern and the tolerance
    targets = target_map(PatternTarget(), SHAPE)
    ok = np.abs(want["g"] - targets) <= PARAMS.tolerance * targets  # type: ignore[operator]
    assert live.in_tolerance == int(ok.sum())
    assert live.progress == (64, 64) and live.tolerance == PARAMS.tolerance
    compliance = [a for a in live.annotations if a.kind == "compliance"]
    assert len(compliance) == min(want["compliance"], 500) > 0  # type: ignore[call-overload]
    live.close()


def test_trace_of_a_cell_is_its_rows_in_the_log(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    session = GatedSession(out, gates=())
    session.start()
    session.join(120)
    live = LiveLog(out)
    live.poll()
    with LogReader(out) as r:
        frame = r.measurements()
        t0 = r.info.start_time
    cell = frame[(frame["row"] == 2) & (frame["col"] == 5)]
    tr = live.trace((2, 5))
    reads = cell[cell["kind"] == "read"]
    pulses = cell[cell["kind"] == "pulse"]
    np.testing.assert_allclose(tr["read_g"], reads["conductance"].to_numpy())
    np.testing.assert_allclose(tr["read_t"], reads["time"].to_numpy() - t0)
    np.testing.assert_allclose(tr["pulse_v"], pulses["voltage"].to_numpy())
    # numbers: position among the cell's operations (write-verify: read, pulse, read, ...)
    order = np.argsort(np.concatenate([tr["read_n"], tr["pulse_n"]]))
    kinds = np.array(["read"] * len(tr["read_n"]) + ["pulse"] * len(tr["pulse_n"]))[order]
    assert list(kinds) == list(cell["kind"].astype(str))
    assert len(tr["pulse_v"]) == live.pulses[2, 5] > 0
    live.close()


def test_a_refusal_shows_as_an_event_and_the_run_as_failed(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    session = GatedSession(out, gates=(), refuse_at=3)
    session.start()
    session.join(120)
    live = LiveLog(out)
    live.poll()
    assert live.status == "failed" and "refused" in live.reason
    refused = [a for a in live.annotations if a.kind == "refused"]
    assert live.counts.refused == 1 and len(refused) == 1
    assert "+50" in refused[0].message and "outside the bench limits" in refused[0].message
    live.close()


def test_a_file_that_is_not_a_log_keeps_the_page_waiting(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    out.write_bytes(b"not hdf5 at all")
    live = LiveLog(out)
    live.poll()
    assert live.status == "waiting" and "HDF5" in live.detail


@pytest.mark.parametrize("n", [0, 1])
def test_nothing_changes_without_new_rows(tmp_path: Path, n: int) -> None:
    out = tmp_path / "run.h5"
    GatedSession(out, gates=()).run()  # in this thread
    live = LiveLog(out)
    assert live.poll() is True
    version = live.version
    for _ in range(n + 1):
        assert live.poll() is False
    assert live.version == version
    live.close()


def test_a_session_without_new_rows_is_called_stalled(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    session = GatedSession(out, gates=(4,))
    session.start()
    try:
        assert session.wait_gate() == 4
        live = LiveLog(out, stall_after=0.3)
        live.poll()
        assert live.status == "running" and live.detail == ""
        deadline = time.monotonic() + 30
        while "no new rows" not in live.detail and time.monotonic() < deadline:
            time.sleep(0.1)
            live.poll()
        assert "no new rows" in live.detail and live.status == "running"
    finally:
        session.release()
        session.join(120)
    live.poll()
    assert live.status not in ("running", "waiting") and live.detail == ""
    live.close()
