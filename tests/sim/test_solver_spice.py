"""The crossbar solver against ngspice (an independent circuit simulator) on random arrays."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim.iv import IVLaw, LinearIV, SinhIV
from xbarlab.sim.netlist import crossbar_netlist, ngspice_path, run_ngspice
from xbarlab.sim.solver import CrossbarSolver, DeviceLaw, Terminals, WireCircuit, Wires

pytestmark = [
    pytest.mark.ngspice,
    pytest.mark.skipif(ngspice_path() is None, reason="ngspice binary not installed"),
]

SIDES = [("start", "end"), ("both", "start"), ("end", "both")]


def _random_case(
    seed: int, shape: tuple[int, int]
) -> tuple[np.ndarray, Wires]:
    rng = np.random.default_rng(seed)
    m, n = shape
    g = rng.uniform(50e-6, 600e-6, shape)
    wires = Wires.build(
        shape,
        rng.uniform(0.5, 20.0, (m, n + 1)),
        rng.uniform(0.5, 20.0, (m + 1, n)),
        float(rng.uniform(0.0, 50.0)),
        float(rng.uniform(0.0, 50.0)),
    )
    return g, wires


def _solvers(wires: Wires) -> list[CrossbarSolver]:
    """Every engine that applies: auto (compiled line kernel for single cases), direct, and
    the line engine compiled and in numpy."""
    out = [CrossbarSolver(wires), CrossbarSolver(wires, engine="direct")]
    if wires.all_positive:
        out += [CrossbarSolver(wires, engine="lines"),
                CrossbarSolver(wires, engine="lines", compiled=False)]
    return out


def _check(wires: Wires, g: np.ndarray, t: Terminals, iv: IVLaw, rtol: float) -> None:
    refs = [run_ngspice(crossbar_netlist(wires, g, t, iv, case=b)) for b in range(t.batch)]
    for solver in _solvers(wires):
        sol = solver.solve(g, t, iv)
        for b, ref in enumerate(refs):
            v_scale = max(np.abs(ref.v_row).max(), np.abs(ref.v_col).max())
            assert np.abs(sol.v_row[b] - ref.v_row).max() <= rtol * v_scale
            assert np.abs(sol.v_col[b] - ref.v_col).max() <= rtol * v_scale
            known = ~np.isnan(ref.i_pad)
            i_scale = np.abs(ref.i_pad[known]).max()
            assert np.abs(sol.i_pad[b][known] - ref.i_pad[known]).max() <= rtol * i_scale


@pytest.mark.parametrize("scheme", list(BiasScheme))
@pytest.mark.parametrize(("iv", "rtol"), [(LinearIV(), 1e-6), (SinhIV(), 1e-6)])
def test_every_bias_scheme_matches_ngspice(scheme: BiasScheme, iv: IVLaw, rtol: float) -> None:
    shape = (5, 4)
    g, wires = _random_case(2 * list(BiasScheme).index(scheme) + int(iv.linear), shape)
    v = 2.0 if not iv.linear else 0.3  # a programming-size pulse for the nonlinear law
    for k, (row_side, col_side) in enumerate(SIDES):
        circ = WireCircuit(row_drive=row_side, col_drive=col_side)  # type: ignore[arg-type]
        cell = (k % shape[0], (2 * k + 1) % shape[1])
        row_v, col_v = line_biases(shape, cell, v, scheme)
        _check(wires, g, circ.terminals(row_v[None], col_v[None]), iv, rtol)


@pytest.mark.parametrize(("iv", "rtol"), [(LinearIV(), 1e-6), (SinhIV(0.5, 2.0), 1e-6)])
def test_mvm_batch_with_random_inputs_matches_ngspice(iv: IVLaw, rtol: float) -> None:
    shape = (4, 6)
    g, wires = _random_case(7, shape)
    rng = np.random.default_rng(3)
    t = Terminals.build(
        shape, row_start=rng.uniform(-0.5, 0.5, (3, 4)), col_end=np.zeros((3, 6))
    )
    _check(wires, g, t, iv, rtol)


def test_zero_resistances_merge_and_fix_nodes_like_ngspice() -> None:
    # zero column wires (each column one node), zero terminal resistances (fixed nodes),
    # a few zero row segments; some rows floating
    shape = (4, 5)
    rng = np.random.default_rng(11)
    g = rng.uniform(50e-6, 600e-6, shape)
    r_row = rng.uniform(0.5, 5.0, (4, 6))
    r_row[:, 2] = 0.0
    r_row[:, 0] = 0.0
    wires = Wires.build(shape, r_row, 0.0, 0.0, 0.0)
    row_v = np.array([[0.4, np.nan, -0.2, np.nan]])
    t = Terminals.build(shape, row_start=row_v, col_end=np.zeros((1, 5)))
    _check(wires, g, t, LinearIV(), 1e-6)
    _check(wires, g, t, SinhIV(), 1e-5)


def test_zero_terminal_resistance_holds_pads_on_the_frontal_path() -> None:
    # pads with zero terminal and end-segment resistance are fixed nodes; internal segments
    # stay resistive, so nothing merges and the multifrontal engine handles it
    shape = (6, 5)
    rng = np.random.default_rng(12)
    g = rng.uniform(50e-6, 600e-6, shape)
    r_row = rng.uniform(0.5, 5.0, (6, 6))
    r_col = rng.uniform(0.5, 5.0, (7, 5))
    r_row[:, 0] = 0.0
    r_col[-1, :] = 0.0
    wires = Wires.build(shape, r_row, r_col, 0.0, 0.0)
    t = Terminals.build(
        shape, row_start=rng.uniform(-0.4, 0.4, (2, 6)), col_end=np.zeros((2, 5))
    )
    solver = CrossbarSolver(wires, engine="direct")
    solver.solve(g, t)
    driven = ~np.isnan(t.stacked()[0])
    engine = solver.direct_engine(driven)
    assert engine.fixed.any() and engine.taps_are_nodes  # fixed nodes, frontal path
    _check(wires, g, t, LinearIV(), 1e-6)
    _check(wires, g, t, SinhIV(), 1e-5)


def test_a_larger_array_with_a_deep_elimination_tree_matches_ngspice() -> None:
    shape = (24, 20)
    g, wires = _random_case(21, shape)
    rng = np.random.default_rng(4)
    row_v = rng.uniform(-0.3, 0.3, (2, 24))
    row_v[1, ::3] = np.nan  # some rows floating in the second case
    t = Terminals.build(shape, row_start=row_v, col_end=np.zeros((2, 20)))
    _check(wires, g, t, LinearIV(), 1e-6)


@pytest.mark.parametrize("r_sense", [0.001, 0.01])
@pytest.mark.parametrize("scheme", [BiasScheme.GROUNDED, BiasScheme.HALF])
def test_tiny_sense_resistance_terminal_currents_match_ngspice(
    r_sense: float, scheme: BiasScheme
) -> None:
    # a column terminal current is y_sense times a node-voltage difference: with 1 mohm the
    # line engine must not turn a small node error into a 1000x larger current error
    shape = (6, 5)
    g = np.random.default_rng(5).uniform(50e-6, 600e-6, shape)
    wires = Wires.build(shape, 1.0, 1.0, 10.0, r_sense)
    row_v, col_v = line_biases(shape, (2, 3), 0.2 if scheme is BiasScheme.GROUNDED else 1.5,
                               scheme)
    _check(wires, g, WireCircuit().terminals(row_v[None], col_v[None]), LinearIV(), 1e-6)


@pytest.mark.parametrize("r_wire", [0.01, 0.1])
def test_sinh_devices_on_low_resistance_wires_converge_and_match_ngspice(r_wire: float) -> None:
    # Newton's tolerance must allow for rounding in the wire currents (a 0.01 ohm segment
    # carries 100 S x V): no false NonConvergenceError
    shape = (5, 6)
    g = np.random.default_rng(8).uniform(50e-6, 600e-6, shape)
    wires = Wires.build(shape, r_wire, r_wire, 10.0, 10.0)
    row_v, col_v = line_biases(shape, (1, 4), 2.0, BiasScheme.HALF)
    _check(wires, g, WireCircuit().terminals(row_v[None], col_v[None]), SinhIV(), 1e-6)


def test_single_cell_operations_in_sequence_match_ngspice() -> None:
    # reads and pulses one after another on the warm-started compiled path, the devices
    # changing in between: each answer against ngspice on the state it was solved for
    shape = (6, 6)
    rng = np.random.default_rng(9)
    g = rng.uniform(50e-6, 600e-6, shape)
    wires = Wires.build(shape, 1.0, 1.0, 10.0, 10.0)
    circ = WireCircuit()
    for iv in (LinearIV(), SinhIV()):
        solver = CrossbarSolver(wires)
        for k in range(4):
            cell = (k % 6, (3 * k + 1) % 6)
            for scheme, v in ((BiasScheme.GROUNDED, 0.2), (BiasScheme.HALF, 1.2 + 0.1 * k)):
                row_v, col_v = line_biases(shape, cell, v, scheme)
                t = circ.terminals(row_v[None], col_v[None])
                sol = solver.solve(g, t, iv)
                ref = run_ngspice(crossbar_netlist(wires, g, t, iv, case=0))
                known = ~np.isnan(ref.i_pad)
                i_scale = np.abs(ref.i_pad[known]).max()
                assert np.abs(sol.i_pad[0][known] - ref.i_pad[known]).max() <= 1e-6 * i_scale
                v_scale = np.abs(ref.v_row).max()
                assert np.abs(sol.v_dev[0] - (ref.v_row - ref.v_col)).max() <= 1e-6 * v_scale
                g[cell] *= 1.05  # the pulse moved the device
                g[cell[0], :] *= 0.999  # and disturbed its row


@pytest.mark.parametrize("r_sense", [10.0, 0.001])
def test_the_column_path_matches_ngspice(r_sense: float) -> None:
    # a verify read's column current and a pulse's device voltages from the reduced
    # single-cell path (`CrossbarSolver.column_one`), state after state, against ngspice;
    # 1 mohm sense: the column current comes from the tap residual correction
    shape = (6, 7)
    rng = np.random.default_rng(11)
    g = rng.uniform(50e-6, 600e-6, shape)
    wires = Wires.build(shape, 1.0, 1.0, 10.0, r_sense)
    circ = WireCircuit(nonlinear=False)
    solver = CrossbarSolver(wires)
    for k in range(4):
        cell = (k % 6, (2 * k + 3) % 7)
        state = g.copy()
        state.flags.writeable = False
        law = DeviceLaw.of_iv(state, LinearIV())
        for scheme, v in ((BiasScheme.GROUNDED, 0.2), (BiasScheme.HALF, 1.3 - 2.6 * (k % 2))):
            row_v, col_v = line_biases(shape, cell, v, scheme)
            t = circ.terminals(row_v[None], col_v[None])
            ref = run_ngspice(crossbar_netlist(wires, state, t, LinearIV(), case=0))
            v_dev = np.empty(shape)
            got = solver.column_one(circ._pad_volts(row_v[None], col_v[None]), law, cell[1],
                                    v_dev)
            assert got is not None
            known = ~np.isnan(ref.i_pad)
            i_scale = np.abs(ref.i_pad[known]).max()
            m, n = shape
            want = -np.nansum([ref.i_pad[2 * m + cell[1]], ref.i_pad[2 * m + n + cell[1]]])
            assert abs(got - want) <= 1e-6 * i_scale
            v_scale = np.abs(ref.v_row).max()
            assert np.abs(v_dev - (ref.v_row - ref.v_col)).max() <= 1e-6 * v_scale
        g[cell] *= 1.05  # the pulse moved the device
        g[cell[0], :] *= 0.999  # and disturbed its row
