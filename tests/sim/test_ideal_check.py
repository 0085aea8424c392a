"""The ideal circuit's compiled conductance check (`circuit_kernels.valid_conductances`):
the same verdict as `check_conductances`, and a bad state still refused with its message."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.crossbar import BiasScheme
from xbarlab.sim import circuit_kernels
from xbarlab.sim.circuit import IdealCircuit, check_conductances
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices
from xbarlab.sim.solver_network import CircuitError

pytestmark = pytest.mark.skipif(not circuit_kernels.AVAILABLE, reason="numba not installed")


def _numpy_verdict(g: np.ndarray) -> bool:
    return bool(np.isfinite(g).all() and (g >= 0).all())


def test_the_kernel_agrees_with_the_numpy_check_on_every_kind_of_value() -> None:
    rng = np.random.default_rng(3)
    values = [np.nan, np.inf, -np.inf, -1e-300, -0.0, 0.0, 5e-324, 1e308]
    for trial in range(200):
        g = rng.uniform(0.0, 1e-3, (int(rng.integers(1, 9)), int(rng.integers(1, 9))))
        for _ in range(int(rng.integers(0, 3))):
            g[rng.integers(g.shape[0]), rng.integers(g.shape[1])] = values[
                rng.integers(len(values))]
        assert circuit_kernels.valid_conductances(g) == _numpy_verdict(g), (trial, g)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e-4])
def test_a_bad_state_is_refused_on_the_compiled_path(bad: float) -> None:
    devices = SimpleDevices((3, 4), SimpleDeviceParams(), np.random.default_rng(0), noise=False)
    devices._g[1, 2] = bad  # a corrupted state, as a buggy device model could leave it
    with pytest.raises(CircuitError) as want:
        check_conductances(devices.g)
    circ = IdealCircuit(min_cells=1)  # the compiled path even on 3 x 4
    for call in (lambda: circ.solve(devices, np.array([[0.2, 0.0, 0.0]]), np.zeros((1, 4))),
                 lambda: circ.sense(devices, np.array([[0.2, 0.0, 0.0]]), np.zeros((1, 4))),
                 lambda: SimCrossbar(devices, circ).read([(0, 1)], 0.2, BiasScheme.GROUNDED)):
        with pytest.raises(CircuitError) as got:
            call()
        assert str(got.value) == str(want.value)
