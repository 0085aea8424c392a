"""Single-cell operations on the compiled, warm-started line engine give the answers of the
numpy engine (cold starts) and of the direct factorization, operation after operation."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.messages import Read
from xbarlab.protocols.write_verify import write_verify
from xbarlab.sim import solver_kernels
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.solver import CrossbarSolver, DeviceLaw, WireCircuit

pytestmark = pytest.mark.skipif(not solver_kernels.AVAILABLE, reason="numba not installed")


def _session(fidelity: str, compiled: bool) -> tuple[np.ndarray, np.ndarray, SimCrossbar]:
    """Write-verify of a few cells of a wired 10 x 9 array; every op's answer and the final
    conductances."""
    cfg = SimConfig(rows=10, cols=9, fidelity=fidelity, r_wire_row=1.0, r_wire_col=1.0,  # type: ignore[arg-type]
                    r_source=10.0, r_sense=10.0, seed=4)
    xbar = build_sim_crossbar(cfg)
    assert isinstance(xbar.circuit, WireCircuit)
    xbar.circuit.compiled = compiled
    targets = np.random.default_rng(1).uniform(100e-6, 500e-6, (10, 9))
    answers = []
    for cell in [(0, 0), (4, 5), (9, 8), (4, 6)]:
        plan = write_verify(cell, float(targets[cell]), WriteVerifyParams(max_pulses=30))
        msg = next(plan)
        try:
            while True:
                if isinstance(msg, Read):
                    res = xbar.read(msg.cells, msg.v_read, msg.scheme)
                    answers.append(float(res.currents[0]))
                else:
                    res = xbar.pulse(msg.cell, msg.voltage, msg.width, msg.scheme)
                    answers.append(res.current)
                msg = plan.send(res)
        except StopIteration:
            pass
    return np.array(answers), xbar.g.copy(), xbar


@pytest.mark.parametrize("fidelity", ["wires", "nonlinear"])
def test_write_verify_answers_match_the_numpy_engine(fidelity: str) -> None:
    fast, g_fast, xbar = _session(fidelity, compiled=True)
    slow, g_slow, _ = _session(fidelity, compiled=False)
    assert len(fast) == len(slow) > 20
    assert np.abs(fast - slow).max() <= 1e-9 * np.abs(slow).max()
    assert np.abs(g_fast - g_slow).max() <= 1e-9 * g_slow.max()
    solver = xbar.circuit.solver_for(xbar.shape)  # type: ignore[attr-defined]
    assert solver._warm, "the compiled path kept no warm start"


@pytest.mark.parametrize("nonlinear", [False, True])
def test_each_operation_matches_the_direct_factorization(nonlinear: bool) -> None:
    # the warm start comes from a state the devices have since left: still exact
    rng = np.random.default_rng(2)
    circ = WireCircuit(r_wire_row=2.0, r_wire_col=2.0, r_source=50.0, r_sense=10.0,
                       nonlinear=nonlinear)
    cfg = SimConfig(rows=8, cols=12, seed=3, noise=False)
    xbar = build_sim_crossbar(cfg)
    devices = xbar.devices
    ref = CrossbarSolver(circ.solver_for(xbar.shape).wires, engine="direct")
    for k in range(12):
        cell = (int(rng.integers(8)), int(rng.integers(12)))
        for scheme, v in ((BiasScheme.GROUNDED, 0.2), (BiasScheme.HALF, 1.6 - 3.2 * (k % 2))):
            row_v, col_v = line_biases(xbar.shape, cell, v, scheme)
            sol = circ.solve(devices, row_v[None], col_v[None])
            exact = ref.solve(None, circ.terminals(row_v[None], col_v[None]),
                              law=DeviceLaw.of_devices(devices, linearize=not nonlinear))
            assert np.abs(sol.v_dev - exact.v_dev).max() <= 1e-9 * abs(v)
            i_scale = np.abs(exact.i_cols).max()
            assert np.abs(sol.i_cols - exact.i_cols).max() <= 1e-9 * i_scale
            if scheme is BiasScheme.HALF:
                devices.apply_voltage(sol.v_dev[0], 1e-6, rng)
