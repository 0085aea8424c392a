"""A wired single-cell session with the devices' kept small-signal conductance
(`TiO2Devices.small_signal`, computed with `g` in one compiled pass and checked there) gives
the same reads, pulse currents and states, bit for bit, as the generic law (`g`, then numpy's
product, then the solver's own check)."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.sim import tio2_kernels
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.solver import DeviceLaw
from xbarlab.sim.tio2 import TiO2Devices

pytestmark = pytest.mark.skipif(not tio2_kernels.AVAILABLE, reason="numba missing")


def _session(generic: bool, fidelity: str) -> tuple[list[float], np.ndarray]:
    cfg = SimConfig(rows=32, cols=32, fidelity=fidelity, r_wire_row=1.0,  # type: ignore[arg-type]
                    r_wire_col=1.0, r_source=10.0, r_sense=10.0, seed=3)
    xbar = build_sim_crossbar(cfg)
    if generic:  # the same devices without the kept small-signal conductance
        assert isinstance(xbar.devices, TiO2Devices)
        xbar.devices.small_signal = None  # type: ignore[method-assign, assignment]
    out = []
    for k, cell in enumerate([(0, 0), (5, 17), (31, 31), (12, 3)]):
        for j in range(6):
            out.append(xbar.read((cell,), 0.2, BiasScheme.GROUNDED).currents[0])
            volts = (1.3 + 0.05 * j) * (1 if k % 2 else -1)
            out.append(xbar.pulse(cell, volts, 1e-6, BiasScheme.HALF).current)
    return out, np.array(xbar.g)


@pytest.mark.parametrize("fidelity", ["wires", "nonlinear"])
def test_the_kept_small_signal_law_gives_the_generic_answers_bit_for_bit(fidelity: str) -> None:
    kept, g_kept = _session(False, fidelity)
    generic, g_generic = _session(True, fidelity)
    assert kept == generic
    assert np.array_equal(g_kept, g_generic)


def test_the_law_carries_the_devices_check() -> None:
    xbar = build_sim_crossbar(SimConfig(rows=32, cols=32, fidelity="wires", r_wire_row=1.0,
                                        r_wire_col=1.0, seed=1))
    devices = xbar.devices
    assert DeviceLaw.of_devices(devices, linearize=True).g0_state == -1  # first: unchecked
    xbar.pulse((3, 4), 1.8, 1e-6, BiasScheme.HALF)
    law = DeviceLaw.of_devices(devices, linearize=True)
    assert law.g0_state == 2 and not law.g0.flags.writeable
    assert DeviceLaw.of_devices(devices, linearize=True).g0 is law.g0  # kept per state


def test_a_sinh_law_knows_its_slope_only_when_it_is_one_number() -> None:
    from xbarlab.sim.iv import SinhIV

    law = SinhIV(0.7, 1.3)
    assert law.scalar_slope == np.multiply(0.7, 1.3)
    assert SinhIV(np.full((2, 2), 0.7), 1.3).scalar_slope is None
