"""The multifrontal Cholesky against dense linear algebra on crossbar-shaped SPD matrices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarlab.sim.solver_fronts import FrontalPlan, grid_fronts


def crossbar_matrix(
    m: int, n: int, rng: np.random.Generator, *, anchor: float = 0.1
) -> tuple[sp.coo_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """A random nodal matrix on the crossbar graph (row-wire nodes 0..MN-1, column-wire nodes
    MN..2MN-1), SPD: random wire and device conductances, every row start tied to ground.
    Returns the matrix (duplicates unsummed) and each node's cell and layer."""
    mn = m * n
    idx = np.arange(mn).reshape(m, n)
    a = [idx[:, :-1].ravel(), mn + idx[:-1, :].ravel(), idx.ravel()]
    b = [idx[:, 1:].ravel(), mn + idx[1:, :].ravel(), mn + idx.ravel()]
    y = [rng.uniform(0.05, 2.0, x.size) for x in a[:2]] + [rng.uniform(1e-4, 5e-4, mn)]
    aa, bb, yy = np.concatenate(a), np.concatenate(b), np.concatenate(y)
    rows = np.concatenate([aa, bb, aa, bb, idx[:, 0]])
    cols = np.concatenate([aa, bb, bb, aa, idx[:, 0]])
    vals = np.concatenate([yy, yy, -yy, -yy, np.full(m, anchor)])
    node = np.arange(2 * mn)
    site = node % mn
    return sp.coo_matrix((vals, (rows, cols)), (2 * mn, 2 * mn)), site // n, site % n, node < mn


def plan_for(m: int, n: int, rng: np.random.Generator, leaf: int = 4) -> tuple[
    FrontalPlan, sp.coo_matrix
]:
    k, si, sj, layer = crossbar_matrix(m, n, rng)
    return FrontalPlan(grid_fronts(si, sj, layer, leaf), 2 * m * n, k.row, k.col), k


@pytest.mark.parametrize(("m", "n", "leaf"), [(1, 1, 4), (1, 9, 4), (9, 1, 2), (13, 7, 4),
                                              (16, 16, 4), (20, 33, 8)])
def test_solution_matches_dense_solve(m: int, n: int, leaf: int) -> None:
    rng = np.random.default_rng(m * 100 + n)
    plan, k = plan_for(m, n, rng, leaf)
    b = rng.normal(size=(2 * m * n, 5))
    x = plan.factor(k.data).solve(b)
    ref = np.linalg.solve(k.toarray(), b)
    assert np.abs(x - ref).max() <= 1e-9 * np.abs(ref).max()


def test_a_few_nonzero_rhs_rows_skip_most_fronts_and_stay_exact() -> None:
    rng = np.random.default_rng(5)
    m, n = 24, 24
    plan, k = plan_for(m, n, rng)
    b = np.zeros((2 * m * n, 3))
    b[np.arange(m) * n, :] = rng.normal(size=(m, 3))  # inputs at the row starts only
    active = plan.active_fronts(plan.pos[np.arange(m) * n])
    assert 0 < active.sum() < 0.5 * active.size  # most of the tree is skipped
    x = plan.factor(k.data).solve(b)
    assert np.abs(x - np.linalg.solve(k.toarray(), b)).max() <= 1e-9 * np.abs(x).max()


def test_rows_and_out_address_a_larger_node_array() -> None:
    rng = np.random.default_rng(8)
    m, n = 6, 5
    plan, k = plan_for(m, n, rng)
    nodes = rng.permutation(2 * m * n + 7)[: 2 * m * n]  # unknown i lives in row nodes[i]
    big = rng.normal(size=(2 * m * n + 7, 4))
    out = np.full(big.shape, 42.0)
    plan.factor(k.data).solve(big, rows=nodes, out=out)
    ref = np.linalg.solve(k.toarray(), big[nodes])
    assert np.abs(out[nodes] - ref).max() <= 1e-9 * np.abs(ref).max()
    untouched = np.setdiff1d(np.arange(big.shape[0]), nodes)
    assert np.all(out[untouched] == 42.0)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 2**31),
       leaf=st.sampled_from([1, 2, 4, 16]))
def test_any_shape_and_leaf_size_solve_exactly(m: int, n: int, seed: int, leaf: int) -> None:
    rng = np.random.default_rng(seed)
    plan, k = plan_for(m, n, rng, leaf)
    b = rng.normal(size=(2 * m * n, 2))
    x = plan.factor(k.data).solve(b)
    ref = np.linalg.solve(k.toarray(), b)
    assert np.abs(x - ref).max() <= 1e-9 * np.abs(ref).max()


def test_fronts_form_a_valid_elimination_tree() -> None:
    rng = np.random.default_rng(1)
    m, n = 16, 12
    _, si, sj, layer = crossbar_matrix(m, n, rng)
    fronts = grid_fronts(si, sj, layer)
    assert np.array_equal(np.sort(np.concatenate(fronts)), np.arange(2 * m * n))
    plan, _ = plan_for(m, n, rng)
    for g in plan.groups:  # a front only updates later (ancestor) nodes
        for t, upd in zip(g.fronts, g.upd, strict=True):
            assert np.all(upd >= plan.starts[t + 1])
            if upd.size:
                assert plan.owner[upd[0]] == plan.parent[t]
            if plan.parent[t] >= 0:
                assert plan.height[plan.parent[t]] > plan.height[t]


def test_not_positive_definite_is_refused() -> None:
    rng = np.random.default_rng(2)
    plan, k = plan_for(5, 5, rng)
    vals = k.data.copy()
    vals[-5:] = -50.0  # the row-start anchors made strongly negative
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        plan.factor(vals)


def test_fronts_missing_or_repeating_an_unknown_are_refused() -> None:
    k = sp.identity(4, format="coo")
    with pytest.raises(ValueError, match="exactly once"):
        FrontalPlan([np.array([0, 1]), np.array([1, 2, 3])], 4, k.row, k.col)
    with pytest.raises(ValueError, match="exactly once"):
        FrontalPlan([np.array([0, 1])], 4, k.row, k.col)
