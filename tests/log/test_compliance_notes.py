"""Compliance notes: the flags of a read or pulse in compliance are the record; the reader's
notes list one compliance note per such operation, for new logs (no compliance event) and
for logs of earlier xbarlab (a compliance event after the operation) alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.fakes import RecordingCrossbar
from tests.log.docs import note_event, pulse_event, read_event, run_start, run_stop
from xbarlab.crossbar import PulseResult, ReadResult
from xbarlab.documents import EventKind
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.reader import LogReader
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Plan, Pulse, Read


class _Clamping(RecordingCrossbar):
    """Reads of (0, c) and pulses above 1.5 V hit the compliance."""

    def read(self, cells, v_read, scheme):  # type: ignore[no-untyped-def]
        r = super().read(cells, v_read, scheme)
        hit = r.cells[:, 0] == 0
        return ReadResult(r.cells, r.v_read, np.where(hit, 1e-2, r.currents), hit)

    def pulse(self, cell, voltage, width, scheme):  # type: ignore[no-untyped-def]
        p = super().pulse(cell, voltage, width, scheme)
        return PulseResult(p.cell, p.voltage, p.width, 1e-2, abs(voltage) > 1.5)


def _notes(path: Path) -> list[tuple[int, str, str, str, object]]:
    with LogReader(path) as log:
        n = log.annotations()
    return list(zip(n["seq"].tolist(), n["kind"].astype(str), n["step"].astype(str),
                    n["message"], n["data"], strict=True))


def test_a_new_log_notes_every_operation_in_compliance_from_its_flags(tmp_path: Path) -> None:
    def plan() -> Plan:
        yield Read(((0, 0), (1, 1)), 0.2, tag="verify")  # seq 1: (0, 0) hits
        yield Pulse((1, 1), 2.0, 1e-6, tag="set")  # seq 2: hits
        yield Pulse((1, 1), 1.2, 1e-6, tag="set")  # seq 3: does not
        yield Checkpoint("cell_done", {"cell": (1, 1)})  # seq 4
        yield Read(None, 0.2, tag="read_map")  # seq 5: the whole first row hits

    log = tmp_path / "new.h5"
    with HDF5Writer(log) as writer:
        assert RunEngine(_Clamping(), BenchLimits(), [writer]).run(plan(), protocol="p").ok
    with LogReader(log) as reader:
        kinds = reader.events()["kind"].astype(str).tolist()
        flags = reader.measurements()["compliance"].tolist()
    assert kinds == ["read", "pulse", "pulse", "checkpoint", "read"]  # no compliance events
    assert flags[:4] == [True, False, True, False] and sum(flags[4:]) == 4
    limit = BenchLimits().compliance
    assert limit == 0.01
    assert _notes(log) == [
        (1, "compliance", "verify",
         "current compliance (0.01 A) reached during the read at +0.2 V on (0, 0)",
         {"cells": [[0, 0]], "during": "read at +0.2 V", "compliance_A": 0.01}),
        (2, "compliance", "set",
         "current compliance (0.01 A) reached during the pulse of +2 V, 1e-06 s on (1, 1)",
         {"cells": [[1, 1]], "during": "pulse of +2 V, 1e-06 s", "compliance_A": 0.01}),
        (4, "checkpoint", "checkpoint", "cell_done", {"cell": [1, 1]}),
        (5, "compliance", "read_map",
         "current compliance (0.01 A) reached during the read at +0.2 V on (0, 0), (0, 1), "
         "(0, 2), (0, 3)",
         {"cells": [[0, 0], [0, 1], [0, 2], [0, 3]], "during": "read at +0.2 V",
          "compliance_A": 0.01}),
    ]


def test_a_log_of_earlier_xbarlab_lists_each_compliance_once(tmp_path: Path) -> None:
    """Earlier engines logged a compliance event right after the operation: it is the note
    (its own seq), not doubled by one rebuilt from the flags."""
    old = "current compliance (0.01 A) reached during the read at +0.2 V on (2, 3)"
    data = {"cells": [[2, 3]], "during": "read at +0.2 V", "compliance_A": 0.01}
    log = tmp_path / "old.h5"
    with HDF5Writer(log) as writer:
        writer(run_start())
        writer(read_event(1, [(2, 3)], 0.2, [np.nan], step="verify", compliance=[True]))
        writer(note_event(2, EventKind.COMPLIANCE, old, data, step="verify"))
        writer(pulse_event(3, (2, 3), 1.0, 1e-6))  # flagged, its event lost (a killed run)
        writer(run_stop(3))
    notes = _notes(log)
    assert notes[0] == (2, "compliance", "verify", old, data)
    # the pulse's note is rebuilt (run_start's limits name no compliance: NaN A)
    assert [n[:3] for n in notes[1:]] == [(3, "compliance", "set")]
    assert notes[1][4] == {"cells": [[2, 3]], "during": "pulse of +1 V, 1e-06 s",
                           "compliance_A": notes[1][4]["compliance_A"]}  # type: ignore[index]
    assert np.isnan(notes[1][4]["compliance_A"])  # type: ignore[index]
