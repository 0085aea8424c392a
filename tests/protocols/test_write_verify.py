"""Write-verify and read-map plans, checked on their message streams (no engine, no backend)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import RecordingCrossbar
from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Checkpoint, Message, Plan, Pulse, Read
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import programming_order, write_verify, write_verify_array


def drive(plan: Plan, xbar: RecordingCrossbar) -> tuple[list[Message], object]:
    """Run `plan` against `xbar` by hand (a fake engine), returning every message."""
    msgs: list[Message] = []
    result = None
    try:
        while True:
            msg = plan.send(result)
            msgs.append(msg)
            if isinstance(msg, Read):
                result = xbar.read(msg.cells, msg.v_read, msg.scheme)
            elif isinstance(msg, Pulse):
                result = xbar.pulse(msg.cell, msg.voltage, msg.width, msg.scheme)
            else:
                result = None
    except StopIteration as stop:
        return msgs, stop.value


def test_ispp_ramps_set_amplitude_then_stops_in_band() -> None:
    xbar = RecordingCrossbar(g0=100e-6)
    p = WriteVerifyParams(tolerance=0.01)
    msgs, outcome = drive(write_verify((1, 1), 300e-6, p), xbar)
    pulses = [m for m in msgs if isinstance(m, Pulse)]
    assert outcome.converged and abs(xbar.g[1, 1] - 300e-6) <= 0.01 * 300e-6
    # Consecutive SET pulses grow by exactly one step from the start amplitude.
    sets = [m.voltage for m in pulses[: next((i for i, m in enumerate(pulses) if m.voltage < 0),
                                             len(pulses))]]
    np.testing.assert_allclose(np.diff(sets), p.step)
    assert sets[0] == p.set_start
    # Every pulse is followed by a verify read; the plan ends on a read.
    for a, b in itertools.pairwise(msgs):
        if isinstance(a, Pulse):
            assert isinstance(b, Read)
    assert isinstance(msgs[-1], Read)
    assert all(m.scheme is BiasScheme.HALF for m in pulses)


def test_reset_amplitude_restarts_after_a_set() -> None:
    xbar = RecordingCrossbar(g0=400e-6)
    p = WriteVerifyParams(tolerance=0.001, max_pulses=200)
    msgs, _ = drive(write_verify((0, 0), 200e-6, p), xbar)
    volts = [m.voltage for m in msgs if isinstance(m, Pulse)]
    assert volts[0] == p.reset_start
    for prev, cur in itertools.pairwise(volts):
        if cur < 0 and prev > 0:
            assert cur == p.reset_start
        if cur > 0 and prev < 0:
            assert cur == p.set_start


def test_stops_after_max_pulses_and_reports_it() -> None:
    xbar = RecordingCrossbar(g0=100e-6)
    p = WriteVerifyParams(set_start=0.5, set_max=0.9, max_pulses=7)  # below switching: no change
    msgs, outcome = drive(write_verify((0, 0), 300e-6, p), xbar)
    assert not outcome.converged and "7 pulses" in outcome.reason
    assert sum(isinstance(m, Pulse) for m in msgs) == 7
    assert max(m.voltage for m in msgs if isinstance(m, Pulse)) <= 0.9


def test_a_stuck_cell_is_given_up_after_pulses_at_the_cap() -> None:
    xbar = RecordingCrossbar(g0=100e-6)
    xbar.stuck = True
    p = WriteVerifyParams(set_start=1.9, set_max=2.0, step=0.05, max_pulses_at_limit=5)
    msgs, outcome = drive(write_verify((0, 0), 300e-6, p), xbar)
    volts = [m.voltage for m in msgs if isinstance(m, Pulse)]
    assert volts == [1.9, 1.95, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert not outcome.converged and outcome.reason.startswith("stuck")


def test_n_verify_requires_consecutive_reads_in_band() -> None:
    xbar = RecordingCrossbar(g0=300e-6)
    msgs, outcome = drive(write_verify((0, 0), 300e-6, WriteVerifyParams(n_verify=3)), xbar)
    assert outcome.converged and outcome.n_pulses == 0
    assert [type(m) for m in msgs] == [Read, Read, Read]


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(0.5, 2.0), vmax=st.floats(0.5, 2.4), step=st.floats(0.001, 0.3),
    rstart=st.floats(-2.0, -0.5), rmin=st.floats(-2.9, -0.5),
    target=st.floats(50e-6, 600e-6), g0=st.floats(20e-6, 800e-6),
)
def test_amplitudes_never_leave_the_configured_range(
    start: float, vmax: float, step: float, rstart: float, rmin: float, target: float, g0: float
) -> None:
    if start > vmax or rstart < rmin:
        return
    p = WriteVerifyParams(set_start=start, set_max=vmax, step=step, reset_start=rstart,
                          reset_min=rmin, max_pulses=60, tolerance=0.01)
    msgs, _ = drive(write_verify((0, 0), target, p), RecordingCrossbar(g0=g0))
    volts = [m.voltage for m in msgs if isinstance(m, Pulse)]
    assert all(rmin - 1e-12 <= v <= vmax + 1e-12 for v in volts)
    assert len(volts) <= 60


def test_bad_targets_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        next(write_verify((0, 0), -1e-6, WriteVerifyParams()))
    with pytest.raises(ValueError, match="positive"):
        next(write_verify_array(np.zeros((2, 2)), WriteVerifyParams()))
    with pytest.raises(ValueError, match="order"):
        programming_order((2, 2), "diagonal")


def test_array_programs_in_order_with_progress_and_final_map() -> None:
    xbar = RecordingCrossbar(shape=(3, 2), g0=100e-6)
    targets = np.array([[200e-6, 300e-6], [150e-6, 250e-6], [300e-6, 120e-6]])
    msgs, outcome = drive(
        write_verify_array(targets, WriteVerifyParams(), order="column-major"), xbar
    )
    done = [m for m in msgs if isinstance(m, Checkpoint)]
    assert [d.data["cell"] for d in done] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [d.data["progress"] for d in done] == [(i, 6) for i in range(1, 7)]
    assert outcome.converged == 6 and outcome.in_tolerance_final == 6
    np.testing.assert_allclose(outcome.final, xbar.g)
    assert isinstance(msgs[-1], Read) and msgs[-1].cells is None


def test_passes_reprogram_disturbed_cells_until_the_map_holds() -> None:
    targets = np.full((2, 4), 300e-6)
    p = WriteVerifyParams(tolerance=0.01)

    def run(passes: int) -> tuple[list[Message], object]:
        xbar = RecordingCrossbar(shape=(2, 4), g0=100e-6)
        xbar.disturb = 0.001  # every pulse pulls the rest of its row down by 0.1 %
        return drive(write_verify_array(targets, p, passes=passes), xbar)

    _, one = run(1)
    msgs, three = run(3)
    assert one.in_tolerance_final < 8  # early cells drifted out while later ones were programmed
    assert three.in_tolerance_final == 8 and three.passes == 2
    # Later passes only revisit cells the previous read map showed out of tolerance.
    maps = [i for i, m in enumerate(msgs) if isinstance(m, Read) and m.cells is None]
    second = [m.data["cell"] for m in msgs[maps[0]:maps[1]] if isinstance(m, Checkpoint)]
    assert 0 < len(second) < 8 and all(m.data["pass"] == 2 for m in msgs[maps[0]:maps[1]]
                                       if isinstance(m, Checkpoint))
    assert len(three.attempts) == 8 + len(second)
    assert three.n_pulses == sum(a.n_pulses for a in three.attempts)


def test_stuck_cells_are_not_retried_in_later_passes() -> None:
    xbar = RecordingCrossbar(shape=(1, 2), g0=100e-6)
    xbar.stuck = True
    p = WriteVerifyParams(set_start=2.0, set_max=2.0, max_pulses_at_limit=2)
    _, outcome = drive(write_verify_array(np.full((1, 2), 300e-6), p, passes=3), xbar)
    assert outcome.passes == 1 and len(outcome.attempts) == 2
    assert all(o.reason.startswith("stuck") for o in outcome.cells)


def test_read_map_through_the_engine() -> None:
    xbar = RecordingCrossbar(shape=(2, 3))
    xbar.g[1, 2] = 400e-6
    result = RunEngine(xbar, BenchLimits()).run(read_map((2, 3)), protocol="read_map")
    assert result.ok and result.value.shape == (2, 3)
    assert result.value[1, 2] == pytest.approx(400e-6)
