"""The grid's symbolic analysis by templates against a brute-force construction per front."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sim.solutions import assert_same_solution
from tests.sim.test_solver_fronts import crossbar_matrix
from xbarlab.sim import solver_network
from xbarlab.sim.solver import CrossbarSolver, Terminals, Wires
from xbarlab.sim.solver_fronts import FrontalPlan, grid_fronts
from xbarlab.sim.solver_grid import grid_classes

SHAPES = [(1, 1, 4), (1, 9, 4), (9, 1, 2), (13, 7, 4), (16, 16, 4), (20, 33, 8), (31, 17, 2),
          (7, 3, 16), (5, 5, 1), (12, 40, 4)]


def brute_update_sets(fronts: list[np.ndarray], adj: np.ndarray) -> list[set[int]]:
    """Supernodal symbolic elimination on a dense pattern, front by front in the given
    order: a front's update set is every later node adjacent to it in the filled graph;
    eliminating it joins that set into a clique."""
    a = adj.copy()
    done = np.zeros(a.shape[0], dtype=bool)
    out = []
    for f in fronts:
        done[f] = True
        upd = np.flatnonzero(a[f].any(axis=0) & ~done)
        a[np.ix_(upd, upd)] = True
        out.append(set(upd.tolist()))
    return out


def template_fronts(m: int, n: int, leaf: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(eliminated node ids, update node ids, height) of every front, from the templates."""
    out = []
    for c in grid_classes(m, n, leaf):
        for b in c.base(n):
            out.append((b + c.elim, b + c.struct, c.height))
    return out


@pytest.mark.parametrize(("m", "n", "leaf"), SHAPES)
def test_templates_give_the_dissection_fronts(m: int, n: int, leaf: int) -> None:
    _, si, sj, layer = crossbar_matrix(m, n, np.random.default_rng(0))
    want = {frozenset(f.tolist()) for f in grid_fronts(si, sj, layer, leaf)}
    got = [frozenset(f.tolist()) for f, _, _ in template_fronts(m, n, leaf)]
    assert len(got) == len(want) and set(got) == want


@pytest.mark.parametrize(("m", "n", "leaf"), SHAPES)
def test_translated_update_sets_match_brute_force_elimination(m: int, n: int, leaf: int) -> None:
    k, _, _, _ = crossbar_matrix(m, n, np.random.default_rng(1))
    adj = (k.toarray() != 0)
    fronts = sorted(template_fronts(m, n, leaf), key=lambda x: x[2])  # children first
    brute = brute_update_sets([f for f, _, _ in fronts], adj)
    for (f, upd, _), ref in zip(fronts, brute, strict=True):
        assert set(upd.tolist()) == ref, f"front {sorted(f.tolist())}"


def test_classes_are_few_and_fronts_stay_in_their_boxes() -> None:
    m, n = 64, 48
    classes = grid_classes(m, n)
    nfront = sum(c.i0.size for c in classes)
    assert len(classes) * 10 < nfront  # the work is per class, not per front
    for c in classes:
        for b in c.base(n):
            site = (b + np.concatenate([c.elim, c.struct])) % (m * n)
            di, dj = site // n - b // n, site % n - b % n
            assert di.min() >= -1 and di.max() <= c.h and dj.min() >= -1 and dj.max() <= c.w


@pytest.mark.parametrize(("m", "n", "leaf"), SHAPES)
def test_grid_plan_solves_exactly_and_agrees_with_the_general_plan(
    m: int, n: int, leaf: int
) -> None:
    rng = np.random.default_rng(m * 31 + n)
    k, si, sj, layer = crossbar_matrix(m, n, rng)
    grid = FrontalPlan.for_grid(m, n, k.row, k.col, leaf)
    general = FrontalPlan(grid_fronts(si, sj, layer, leaf), 2 * m * n, k.row, k.col)
    b = rng.normal(size=(2 * m * n, 3))
    ref = np.linalg.solve(k.toarray(), b)
    for plan in (grid, general):
        x = plan.factor(k.data).solve(b)
        assert np.abs(x - ref).max() <= 1e-12 * np.abs(ref).max() * max(1.0, m * n / 100)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 14), n=st.integers(1, 14), seed=st.integers(0, 2**31),
       leaf=st.sampled_from([1, 2, 3, 4, 8, 16]))
def test_any_shape_grid_plan_matches_brute_force(m: int, n: int, seed: int, leaf: int) -> None:
    rng = np.random.default_rng(seed)
    k, _, _, _ = crossbar_matrix(m, n, rng)
    plan = FrontalPlan.for_grid(m, n, k.row, k.col, leaf)
    fronts = [plan.order[plan.starts[t] : plan.starts[t + 1]] for t in range(plan.parent.size)]
    brute = brute_update_sets(fronts, k.toarray() != 0)
    for g in plan.groups:
        for t, upd in zip(g.fronts, g.upd, strict=True):
            assert set(plan.order[upd].tolist()) == brute[t]
            if plan.parent[t] >= 0:  # the parent's front holds every update node
                assert plan.owner[upd.min()] == plan.parent[t]
    b = rng.normal(size=(2 * m * n, 2))
    x = plan.factor(k.data).solve(b)
    ref = np.linalg.solve(k.toarray(), b)
    assert np.abs(x - ref).max() <= 1e-10 * np.abs(ref).max()


def test_matrix_entries_outside_the_grid_pattern_are_refused_or_exact() -> None:
    m, n = 4, 4
    k, _, _, _ = crossbar_matrix(m, n, np.random.default_rng(3))
    extra = sp.coo_matrix(([1.0], ([0], [2 * m * n - 1])), k.shape)  # far corner coupling
    with pytest.raises(ValueError, match="grid"):
        FrontalPlan.for_grid(m, n, np.concatenate([k.row, extra.row]),
                             np.concatenate([k.col, extra.col]))


@pytest.mark.parametrize("fixed_starts", [False, True])
def test_crossbar_solver_same_answer_with_templates_or_general_analysis(
    fixed_starts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the solver: the template analysis (no fixed nodes) and the general one give
    the same node voltages; with zero-resistance driven pads (fixed nodes) the general one
    is used either way."""
    rng = np.random.default_rng(9)
    m, n = 11, 14
    r_row = rng.uniform(0.5, 2.0, (m, n + 1))
    if fixed_starts:
        r_row[:, 0] = 0.0  # with r_source = 0: the row starts are held at their drivers
    wires = Wires.build((m, n), r_row, rng.uniform(0.5, 2.0, (m + 1, n)), 0.0, 5.0)
    g = rng.uniform(50e-6, 500e-6, (m, n))
    t = Terminals.build((m, n), row_start=rng.uniform(0, 0.3, (3, m)), col_end=np.zeros((3, n)))
    sols = []
    for templates in (True, False):
        monkeypatch.setattr(solver_network, "USE_GRID_TEMPLATES", templates)
        solver_network.forget_symbolic_analyses()
        sols.append(CrossbarSolver(wires, engine="direct").solve(g, t))
    solver_network.forget_symbolic_analyses()
    a, b = sols
    assert_same_solution(a, b)
