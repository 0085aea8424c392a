"""Write-verify's stall rule (`stall_pulses`): a cell whose read no longer moves at the
amplitude cap is given up after that many pulses at the cap, logged as its outcome."""

from __future__ import annotations

import numpy as np

from tests.fakes import RecordingCrossbar
from tests.protocols.test_write_verify import drive
from xbarlab.config import WriteVerifyParams
from xbarlab.crossbar import BiasScheme, Cell, PulseResult
from xbarlab.messages import Checkpoint, Pulse
from xbarlab.protocols.write_verify import write_verify, write_verify_array


class CapOnly(RecordingCrossbar):
    """Only pulses at >= `v_cap` move G, by `step` S each, up to `g_max`."""

    def __init__(self, g0: float, step: float, v_cap: float, g_max: float = 1.0) -> None:
        super().__init__(g0=g0)
        self.step, self.v_cap, self.g_max = step, v_cap, g_max

    def pulse(self, cell: Cell, voltage: float, width: float, scheme: BiasScheme) -> PulseResult:
        self.calls.append(("pulse", (cell, voltage, width, scheme)))
        if voltage >= self.v_cap - 1e-12:
            self.g[cell] = min(self.g[cell] + self.step, self.g_max)
        return PulseResult(cell, voltage, width)


def _params(**kw: object) -> WriteVerifyParams:
    return WriteVerifyParams(max_pulses=400, max_pulses_at_limit=200, **kw)  # type: ignore[arg-type]


def _ramp(p: WriteVerifyParams) -> int:
    """Pulses below the cap before the SET amplitude reaches it."""
    return round((p.set_max - p.set_start) / p.step)


def test_a_device_at_its_bound_is_given_up_after_stall_pulses_at_the_cap() -> None:
    target = 300e-6
    p = _params(stall_pulses=4)
    xbar = CapOnly(g0=200e-6, step=5e-6, v_cap=p.set_max, g_max=250e-6)
    msgs, out = drive(write_verify((1, 1), target, p), xbar)
    pulses = [m for m in msgs if isinstance(m, Pulse)]
    at_cap = [m for m in pulses if m.voltage == p.set_max]
    assert not out.converged and out.reason.startswith("stuck: read stalled")
    assert "+2.10 V" in out.reason and "µS" in out.reason
    # 10 pulses climb to the bound (5 uS each), then 4 that move nothing end it
    assert len(at_cap) == 10 + 4 and len(pulses) == _ramp(p) + 14
    # without the rule the same cell spends its whole at-cap allowance
    _, slow = drive(write_verify((1, 1), target, _params()), CapOnly(200e-6, 5e-6, p.set_max,
                                                                     250e-6))
    assert slow.reason.startswith("stuck: 200 pulses") and slow.n_pulses > out.n_pulses


def test_a_cell_still_moving_at_the_cap_is_not_stalled() -> None:
    target = 300e-6
    p = _params(stall_pulses=4)
    # 0.4 % of the target per pulse: 1.6 % per window of 4, above half the band (0.5 %)
    moving = CapOnly(g0=0.8 * target, step=0.004 * target, v_cap=p.set_max)
    _, out = drive(write_verify((1, 1), target, p), moving)
    assert out.converged
    # 0.1 % per pulse: 0.4 % per window, below half the band: stalled after one window
    creeping = CapOnly(g0=0.8 * target, step=0.001 * target, v_cap=p.set_max)
    _, out = drive(write_verify((1, 1), target, p), creeping)
    assert out.reason.startswith("stuck: read stalled") and out.n_pulses == _ramp(p) + 4


def test_stalled_cells_show_in_the_log_checkpoint_and_the_verdict() -> None:
    p = _params(stall_pulses=3)
    targets = np.full((4, 4), 300e-6)
    xbar = CapOnly(g0=200e-6, step=2e-6, v_cap=p.set_max, g_max=220e-6)
    msgs, out = drive(write_verify_array(targets, p, cells=[(0, 0), (2, 3)]), xbar)
    done = [m for m in msgs if isinstance(m, Checkpoint) and m.label == "cell_done"]
    assert [d.data["reason"].startswith("stuck: read stalled") for d in done] == [True, True]
    status, reason = out.verdict()
    assert status == "failed" and "2 given up as stuck, 2 of them with a stalled read" in reason
