"""The compiled single case of the ideal circuit against its numpy path: same device
voltages, currents and line currents (to rounding) for single-cell bias cases and batches,
linear and sinh devices; floating lines and unknown laws take the numpy path. A whole
write-verify session gives the same operations and final map on both paths."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme, ReadResult
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.protocols.write_verify import ArrayOutcome, write_verify_array
from xbarlab.sim import circuit_kernels
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.devices import SimpleDeviceParams, SimpleDevices
from xbarlab.sim.factory import build_sim_crossbar

pytestmark = pytest.mark.skipif(not circuit_kernels.AVAILABLE, reason="numba missing")


def _tio2(shape: tuple[int, int], seed: int) -> object:
    return build_sim_crossbar(SimConfig(rows=shape[0], cols=shape[1], seed=seed)).devices


@pytest.mark.parametrize("kind", ["sinh", "linear"])
def test_single_cases_match_the_numpy_path(kind: str) -> None:
    shape = (7, 5)
    devices = (_tio2(shape, 1) if kind == "sinh"
               else SimpleDevices(shape, SimpleDeviceParams(), np.random.default_rng(1)))
    fast, ref = IdealCircuit(min_cells=0), IdealCircuit(compiled=False)
    rng = np.random.default_rng(3)
    for scheme in BiasScheme:
        if scheme is BiasScheme.FLOATING:
            continue
        cell = (int(rng.integers(7)), int(rng.integers(5)))
        row_v, col_v = line_biases(shape, cell, float(rng.uniform(-2.5, 2.5)), scheme)
        a = fast.solve(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
        b = ref.solve(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
        np.testing.assert_array_equal(a.v_dev, b.v_dev)
        scale = float(np.abs(b.i_dev).max())
        for x, y in ((a.i_dev, b.i_dev), (a.i_rows, b.i_rows), (a.i_cols, b.i_cols)):
            np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14 * scale)
        s_a = fast.sense(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
        np.testing.assert_allclose(s_a[1], b.i_cols, rtol=1e-13, atol=1e-14 * scale)
    # a batch of arbitrary potentials (a map read, an MVM)
    row_b, col_b = rng.uniform(-1, 1, (6, 7)), rng.uniform(-1, 1, (6, 5))
    got = fast.sense(devices, row_b, col_b)  # type: ignore[arg-type]
    want = ref.solve(devices, row_b, col_b)  # type: ignore[arg-type]
    np.testing.assert_allclose(got[0], want.i_rows, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(got[1], want.i_cols, rtol=1e-12, atol=1e-18)


def test_floating_lines_take_the_lumped_solve() -> None:
    devices = _tio2((4, 4), 2)
    row_v, col_v = line_biases((4, 4), (1, 2), 0.8, BiasScheme.FLOATING)
    a = IdealCircuit(min_cells=0).solve(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
    b = IdealCircuit(compiled=False).solve(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
    np.testing.assert_allclose(a.i_cols, b.i_cols, rtol=1e-12)
    assert np.isfinite(a.v_dev).all()


def _session(compiled: bool) -> tuple[int, ArrayOutcome]:
    xbar = build_sim_crossbar(SimConfig(rows=12, cols=12, seed=4))
    xbar.devices.compiled = compiled  # type: ignore[attr-defined]
    xbar.circuit.compiled = compiled  # type: ignore[attr-defined]
    xbar.circuit.min_cells = 0  # type: ignore[attr-defined]
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (12, 12))
    res = RunEngine(xbar, BenchLimits(), []).run(
        write_verify_array(targets, WriteVerifyParams()), protocol="t")
    return res.n_events, res.value


def test_small_arrays_keep_the_numpy_path() -> None:
    """Below `min_cells` (and 32 x 32 for the devices) no kernel is loaded: a short run on a
    small array does not pay numba's one-time load."""
    xbar = build_sim_crossbar(SimConfig(rows=8, cols=8, seed=1))
    assert xbar.circuit._law(xbar.devices) is None  # type: ignore[attr-defined]
    assert not xbar.devices.compiled  # type: ignore[attr-defined]
    big = build_sim_crossbar(SimConfig(rows=32, cols=32, seed=1))
    assert big.circuit._law(big.devices) is not None  # type: ignore[attr-defined]
    assert big.devices.compiled  # type: ignore[attr-defined]


def test_a_write_verify_session_is_the_same_on_both_paths() -> None:
    n_fast, fast = _session(True)
    n_ref, ref = _session(False)
    assert n_fast == n_ref
    assert [o.n_pulses for o in fast.cells] == [o.n_pulses for o in ref.cells]
    np.testing.assert_allclose(fast.final, ref.final, rtol=1e-9)


def test_the_column_case_matches_the_numpy_solve() -> None:
    """`IdealCircuit.column` (a single-cell pulse or read): the device voltages exactly and
    the selected column's current as the numpy path; None where a line floats."""
    shape = (7, 5)
    devices = _tio2(shape, 5)
    fast, ref = IdealCircuit(min_cells=0), IdealCircuit(compiled=False)
    rng = np.random.default_rng(8)
    for scheme in (BiasScheme.HALF, BiasScheme.THIRD, BiasScheme.GROUNDED):
        for _ in range(4):
            cell = (int(rng.integers(7)), int(rng.integers(5)))
            row_v, col_v = line_biases(shape, cell, float(rng.uniform(-2.5, 2.5)), scheme)
            want = ref.solve(devices, row_v[None], col_v[None])  # type: ignore[arg-type]
            v_dev = np.empty(shape)
            got = fast.column(devices, row_v, col_v, cell[1], v_dev)  # type: ignore[arg-type]
            assert got is not None
            np.testing.assert_array_equal(v_dev, want.v_dev[0])
            assert got == pytest.approx(float(want.i_cols[0, cell[1]]), rel=1e-13, abs=1e-25)
            alone = fast.column(devices, row_v, col_v, cell[1])  # type: ignore[arg-type]
            assert alone == got
    row_v, col_v = line_biases(shape, (1, 2), 0.8, BiasScheme.FLOATING)
    assert fast.column(devices, row_v, col_v, 2) is None  # type: ignore[arg-type]
    assert IdealCircuit().column(devices, row_v, col_v, 2) is None  # type: ignore[arg-type]


def test_kept_line_biases_are_line_biases() -> None:
    xbar = build_sim_crossbar(SimConfig(rows=6, cols=9, seed=1))
    for _ in range(2):  # the second round reuses the kept arrays: they must not change
        for scheme in BiasScheme:
            for cell, v in (((0, 0), 1.3), ((5, 8), -0.7), ((2, 4), 1.3)):
                got = xbar._biases(cell[0], cell[1], v, scheme)
                want = line_biases((6, 9), cell, v, scheme)
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])


def test_one_read_on_floats_is_the_array_path() -> None:
    devices = _tio2((4, 4), 3)
    cur = np.array([3.1e-5, -2.0e-7, 0.0, 1e-3])
    for x in cur:
        a = devices.read_noise(np.array([x]), np.random.default_rng(9))  # type: ignore[attr-defined]
        b = devices.read_noise(np.array([x, x]), np.random.default_rng(9))  # type: ignore[attr-defined]
        c = devices.read_noise_one(float(x), np.random.default_rng(9))  # type: ignore[attr-defined]
        assert float(a[0]) == float(b[0]) == c
    for hit in (False, True):
        one = ReadResult(np.array([[1, 2]]), 0.2, np.array([3.1e-5]), np.array([hit]))
        many = ReadResult(np.array([[1, 2]] * 2), 0.2, np.array([3.1e-5] * 2),
                          np.array([hit] * 2))
        np.testing.assert_array_equal(one.conductances, many.conductances[:1])
