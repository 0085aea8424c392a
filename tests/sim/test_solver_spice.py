"""The crossbar solver against ngspice (an independent circuit simulator) on random arrays."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim.iv import IVLaw, LinearIV, SinhIV
from xbarlab.sim.netlist import crossbar_netlist, ngspice_path, run_ngspice
from xbarlab.sim.solver import CrossbarSolver, Terminals, WireCircuit, Wires

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


def _check(wires: Wires, g: np.ndarray, t: Terminals, iv: IVLaw, rtol: float) -> None:
    for engine in ("auto", "direct"):
        sol = CrossbarSolver(wires, engine=engine).solve(g, t, iv)  # type: ignore[arg-type]
        for b in range(t.batch):
            ref = run_ngspice(crossbar_netlist(wires, g, t, iv, case=b))
            v_scale = max(np.abs(ref.v_row).max(), np.abs(ref.v_col).max())
            assert np.abs(sol.v_row[b] - ref.v_row).max() <= rtol * v_scale
            assert np.abs(sol.v_col[b] - ref.v_col).max() <= rtol * v_scale
            known = ~np.isnan(ref.i_pad)
            i_scale = np.abs(ref.i_pad[known]).max()
            assert np.abs(sol.i_pad[b][known] - ref.i_pad[known]).max() <= rtol * i_scale


@pytest.mark.parametrize("scheme", list(BiasScheme))
@pytest.mark.parametrize(("iv", "rtol"), [(LinearIV(), 1e-6), (SinhIV(), 1e-5)])
def test_every_bias_scheme_matches_ngspice(scheme: BiasScheme, iv: IVLaw, rtol: float) -> None:
    shape = (5, 4)
    g, wires = _random_case(2 * list(BiasScheme).index(scheme) + int(iv.linear), shape)
    v = 2.0 if not iv.linear else 0.3  # a programming-size pulse for the nonlinear law
    for k, (row_side, col_side) in enumerate(SIDES):
        circ = WireCircuit(row_drive=row_side, col_drive=col_side)  # type: ignore[arg-type]
        cell = (k % shape[0], (2 * k + 1) % shape[1])
        row_v, col_v = line_biases(shape, cell, v, scheme)
        _check(wires, g, circ.terminals(row_v[None], col_v[None]), iv, rtol)


@pytest.mark.parametrize(("iv", "rtol"), [(LinearIV(), 1e-6), (SinhIV(0.5, 2.0), 1e-5)])
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
