"""Terminal currents without node voltages (`pad_currents`, `WireCircuit.sense`): the pad
multiport and superposition routes against full solves and ngspice."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.biasing import line_biases
from xbarlab.crossbar import BiasScheme
from xbarlab.sim.devices import make_device_array
from xbarlab.sim.iv import LinearIV
from xbarlab.sim.netlist import crossbar_netlist, ngspice_path, run_ngspice
from xbarlab.sim.solver import CircuitError, CrossbarSolver, Terminals, WireCircuit, Wires

SIDES = [("start", "end"), ("both", "start"), ("end", "both")]


def read_map_biases(
    shape: tuple[int, int], scheme: BiasScheme, v: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    cells = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
    pairs = [line_biases(shape, c, v, scheme) for c in cells]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def random_wires(rng: np.random.Generator, shape: tuple[int, int], *, fixed: bool = False) -> Wires:
    m, n = shape
    r_row = rng.uniform(0.5, 8.0, (m, n + 1))
    r_col = rng.uniform(0.5, 8.0, (m + 1, n))
    if fixed:  # zero terminal and end-segment resistance: pads hold their tap nodes
        r_row[:, [0, -1]] = 0.0
        r_col[[0, -1], :] = 0.0
        return Wires.build(shape, r_row, r_col, 0.0, 0.0)
    return Wires.build(shape, r_row, r_col, float(rng.uniform(1, 30)), float(rng.uniform(0, 30)))


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("scheme", list(BiasScheme))
def test_line_currents_equal_the_full_solve(scheme: BiasScheme, fixed: bool) -> None:
    shape = (7, 6)
    rng = np.random.default_rng(list(BiasScheme).index(scheme) + 10 * fixed)
    wires = random_wires(rng, shape, fixed=fixed)
    g = rng.uniform(20e-6, 600e-6, shape)
    row_v, col_v = read_map_biases(shape, scheme)
    for row_side, col_side in SIDES:
        circ = WireCircuit(row_drive=row_side, col_drive=col_side)  # type: ignore[arg-type]
        t = circ.terminals(row_v, col_v)
        full = CrossbarSolver(wires).solve(g, t).i_pad
        fast = CrossbarSolver(wires).pad_currents(g, t)
        assert np.abs(fast - full).max() <= 1e-9 * np.abs(full).max()


def test_an_isolated_floating_line_is_refused_by_both_routes() -> None:
    shape = (5, 5)
    rng = np.random.default_rng(3)
    wires = random_wires(rng, shape)
    g = rng.uniform(20e-6, 600e-6, shape)
    g[2, :] = 0.0  # row 2 reaches nothing through its devices: undefined when floating
    row_v, col_v = read_map_biases(shape, BiasScheme.FLOATING)
    t = WireCircuit().terminals(row_v, col_v)
    with pytest.raises(CircuitError, match="row 2"):
        CrossbarSolver(wires).solve(g, t)
    with pytest.raises(CircuitError, match="row 2"):
        CrossbarSolver(wires).pad_currents(g, t)


def test_sim_crossbar_reads_equal_per_cell_solves() -> None:
    from xbarlab.sim.crossbar import SimCrossbar

    rng = np.random.default_rng(5)
    devices = make_device_array("simple", (8, 8), rng, noise=False)
    circ = WireCircuit(r_wire_row=2.0, r_wire_col=2.0, r_source=20.0, nonlinear=False)
    xb = SimCrossbar(devices, circ, seed=1)
    for scheme in BiasScheme:
        whole = xb.read(None, 0.2, scheme).currents
        one_by_one = []
        for i in range(8):
            for j in range(8):
                row_v, col_v = line_biases((8, 8), (i, j), 0.2, scheme)
                one_by_one.append(circ.solve(devices, row_v[None], col_v[None]).i_cols[0, j])
        assert np.allclose(whole, one_by_one, rtol=1e-9, atol=0.0)


@pytest.mark.ngspice
@pytest.mark.skipif(ngspice_path() is None, reason="ngspice binary not installed")
def test_floating_read_currents_match_ngspice() -> None:
    shape = (6, 5)
    rng = np.random.default_rng(9)
    wires = random_wires(rng, shape)
    g = rng.uniform(20e-6, 600e-6, shape)
    row_v, col_v = read_map_biases(shape, BiasScheme.FLOATING)
    t = WireCircuit(row_drive="both").terminals(row_v, col_v)
    fast = CrossbarSolver(wires).pad_currents(g, t)
    for b in (0, 7, 29):
        case = Terminals(t.row_start[b : b + 1], t.row_end[b : b + 1],
                         t.col_start[b : b + 1], t.col_end[b : b + 1])
        ref = run_ngspice(crossbar_netlist(wires, g, case, LinearIV(), case=0))
        known = ~np.isnan(ref.i_pad)
        scale = np.abs(ref.i_pad[known]).max()
        assert np.abs(fast[b][known] - ref.i_pad[known]).max() <= 1e-6 * scale


def test_a_low_rank_batch_equals_its_cases_solved_one_by_one() -> None:
    # a V/2 read map: 42 cases whose pad voltages span far fewer dimensions, solved once as
    # a batch (superposition of a basis) and once case by case
    shape = (7, 6)
    rng = np.random.default_rng(21)
    wires = random_wires(rng, shape)
    g = rng.uniform(20e-6, 600e-6, shape)
    row_v, col_v = read_map_biases(shape, BiasScheme.HALF)
    t = WireCircuit(row_drive="both").terminals(row_v, col_v)
    batch = CrossbarSolver(wires).solve(g, t)
    for b in range(t.batch):
        one = CrossbarSolver(wires).solve(
            g, Terminals(t.row_start[b : b + 1], t.row_end[b : b + 1],
                         t.col_start[b : b + 1], t.col_end[b : b + 1])
        )
        for name in ("v_row", "v_col", "i_dev", "i_pad"):
            got, ref = getattr(batch, name)[b], getattr(one, name)[0]
            assert np.abs(got - ref).max() <= 1e-9 * np.abs(ref).max(), name
