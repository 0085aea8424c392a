"""I-V sweep and forming plans."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fakes import RecordingCrossbar
from tests.protocols.test_write_verify import drive
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Pulse, Read
from xbarlab.protocols.forming import forming
from xbarlab.protocols.iv_sweep import iv_sweep, staircase
from xbarlab.sim.factory import build_sim_crossbar


def test_staircase_is_a_closed_bipolar_loop() -> None:
    v = staircase(1.0, -0.5, 0.25)
    np.testing.assert_allclose(v, [0, .25, .5, .75, 1, .75, .5, .25, 0, -.25, -.5, -.25, 0])
    with pytest.raises(ValueError):
        staircase(1.0, 0.5, 0.1)


def test_iv_sweep_on_the_simulator_shows_switching_hysteresis() -> None:
    xbar = build_sim_crossbar(SimConfig(rows=2, cols=2, noise=False))
    result = RunEngine(xbar, BenchLimits()).run(
        iv_sweep((0, 0), v_max=1.5, v_min=-1.5, step=0.1, dwell=1e-6), protocol="iv"
    )
    curve = result.raise_for_status().value
    v, i = curve.voltages, curve.currents
    # Ohmic at low bias; after the SET branch the same voltage gives more current (hysteresis).
    up = np.where((v > 0) & (np.arange(len(v)) < np.argmax(v)))[0]
    down = np.where((v > 0) & (np.arange(len(v)) > np.argmax(v)))[0]
    k_up = up[np.isclose(v[up], 0.5)][0]
    k_down = down[np.isclose(v[down], 0.5)][0]
    assert i[k_down] > 1.05 * i[k_up]
    assert np.all(np.sign(i[v != 0]) == np.sign(v[v != 0]))


def test_forming_steps_up_until_the_cell_conducts() -> None:
    xbar = RecordingCrossbar(g0=5e-6)
    msgs, outcome = drive(forming((1, 1), g_formed=20e-6, v_start=1.5, v_step=0.5, v_max=3.0),
                          xbar)
    volts = [m.voltage for m in msgs if isinstance(m, Pulse)]
    np.testing.assert_allclose(volts, [1.5, 2.0, 2.5, 3.0])  # 5 uS x 1.25 x 1.5 x 1.75 x 2
    assert outcome.formed and outcome.g_final >= 20e-6 and outcome.v_formed == volts[-1]
    assert isinstance(msgs[-1], Read) and msgs[-1].scheme is BiasScheme.GROUNDED


def test_forming_gives_up_at_v_max() -> None:
    xbar = RecordingCrossbar(g0=1e-9)
    msgs, outcome = drive(forming((0, 0), g_formed=1e-3, v_start=1.0, v_step=0.5, v_max=2.0),
                          xbar)
    assert not outcome.formed and max(m.voltage for m in msgs if isinstance(m, Pulse)) <= 2.0
