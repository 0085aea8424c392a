"""The paper's split repeats its test points; a de-duplicated split with a clean test set.

The paper's half-moons file holds 1200 rows but only 1000 distinct points: every one of its
200 test points is an exact copy of a training point (172) or a validation point (28), so a
network trained on that split has seen every test point (`duplicate_report` measures it).
`dedup_split` builds a split without that leak: the pool of all points is reduced to one
representative per group of duplicates (points closer than `DUPLICATE_TOL` in both features;
the closest distinct points of the paper's set are 4.8e-4 apart), a test set of `n_test`
representatives is drawn (stratified by label, seeded), and every other representative stays
in the split it came from (validation, else training). No test point is then within the
tolerance of any training or validation point. numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from xbarlab.crossbar import FloatArray
from xbarlab.nn.data import MoonsData

DUPLICATE_TOL = 1e-6  # features are in [0, 1]; the paper's values are float32 (7 digits)
DEDUP_TEST = 200


@dataclass(frozen=True)
class DuplicateReport:
    """Duplicates in a split (within `tol`, max-norm)."""

    n_rows: int
    n_distinct: int
    test_in_train: int  # test points with a copy in the training split
    test_in_val: int  # ... with a copy in the validation split only
    test_clean: int  # ... with no copy in either
    val_in_train: int
    tol: float

    def lines(self) -> list[str]:
        n_test = self.test_in_train + self.test_in_val + self.test_clean
        return [
            f"{self.n_rows} rows, {self.n_distinct} distinct points (duplicates within "
            f"{self.tol:g} in both features)",
            f"test points with a copy in training: {self.test_in_train} of {n_test}, in "
            f"validation only: {self.test_in_val}, with no copy: {self.test_clean}",
            f"validation points with a copy in training: {self.val_in_train}",
        ]


def _near(a: FloatArray, b: FloatArray, tol: float) -> np.ndarray:
    """(len(a),) True where a point of `a` has a point of `b` within `tol` (max-norm)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    d, _ = cKDTree(np.asarray(b, np.float64)).query(np.asarray(a, np.float64), p=np.inf)
    return np.asarray(d <= tol)


def duplicate_report(data: MoonsData, tol: float = DUPLICATE_TOL) -> DuplicateReport:
    """How often the splits of `data` repeat each other."""
    pool = np.concatenate([data.x_train, data.x_val, data.x_test])
    in_train = _near(data.x_test, data.x_train, tol)
    in_val = _near(data.x_test, data.x_val, tol) & ~in_train
    return DuplicateReport(
        n_rows=len(pool), n_distinct=int(_representatives(pool, tol).sum()),
        test_in_train=int(in_train.sum()), test_in_val=int(in_val.sum()),
        test_clean=int((~in_train & ~in_val).sum()),
        val_in_train=int(_near(data.x_val, data.x_train, tol).sum()), tol=tol,
    )


def _representatives(x: FloatArray, tol: float) -> np.ndarray:
    """(n,) True for the first point of every group of points chained within `tol`."""
    n = len(x)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for i, j in sorted(cKDTree(np.asarray(x, np.float64)).query_pairs(tol, p=np.inf)):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)  # the earliest point represents the group
    return np.array([root(i) == i for i in range(n)], dtype=bool)


def dedup_split(data: MoonsData, n_test: int = DEDUP_TEST, seed: int = 0,
                tol: float = DUPLICATE_TOL) -> MoonsData:
    """A split of the distinct points of `data` whose test set has no duplicate in training
    or validation (see the module docstring). Duplicates with conflicting labels keep the
    label of the first occurrence (training, then validation, then test order)."""
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    origin = np.repeat([0, 1, 2], [len(data.x_train), len(data.x_val), len(data.x_test)])
    keep = _representatives(x, tol)
    x, y, origin = x[keep], y[keep], origin[keep]
    if not 0 < n_test < len(x):
        raise ValueError(f"n_test must be in (0, {len(x)}) distinct points, got {n_test}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(x), dtype=bool)
    classes = np.unique(y)
    for i, c in enumerate(classes):  # stratified: each class in its share of the pool
        members = np.flatnonzero(y == c)
        k = (round(n_test * len(members) / len(x)) if i < len(classes) - 1
             else n_test - int(test.sum()))
        test[rng.choice(members, size=k, replace=False)] = True
    val = ~test & (origin == 1)
    train = ~test & ~val
    return MoonsData(
        x[train], y[train], x[test], y[test], x[val], y[val],
        source=f"{data.source}, de-duplicated (tol {tol:g}): {train.sum()} train / "
               f"{test.sum()} test / {val.sum()} validation distinct points, seed {seed}",
    )
