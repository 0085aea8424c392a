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


def test_sense_skips_rows_without_voltage_and_gives_the_same_sums() -> None:
    """Rows at the columns' common potential add nothing: skipping them leaves every line
    current bit for bit what the full pass (`solve`'s kernel, same order) gives."""
    devices = SimpleDevices((9, 6), SimpleDeviceParams(), np.random.default_rng(2))
    circ = IdealCircuit(min_cells=1)
    rng = np.random.default_rng(4)
    for level in (0.0, 0.3, -0.7):
        row_v = np.full(9, level)
        picked = rng.choice(9, 3, replace=False)
        row_v[picked] = rng.uniform(-0.5, 0.5, 3)
        col_v = np.full(6, level)
        full = circ.solve(devices, row_v[None], col_v[None])
        i_rows, i_cols = circ.sense(devices, row_v[None], col_v[None])
        np.testing.assert_array_equal(i_rows, full.i_rows)
        np.testing.assert_array_equal(i_cols, full.i_cols)
        assert (i_rows[0, np.setdiff1d(np.arange(9), picked)] == 0).all()
