"""The paper's split repeats its test points; the de-duplicated split does not."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.nn.data import MoonsData, load_moons, make_matched_moons, reference_dir
from xbarlab.nn.dedup import DUPLICATE_TOL, dedup_split, duplicate_report


def leaky(seed: int = 0) -> MoonsData:
    """A matched make_moons draw whose test set copies 30 training and 10 validation points,
    one of them with a 1e-8 perturbation (within the duplicate tolerance)."""
    d = make_matched_moons(seed)
    x_test, y_test = d.x_test.copy(), d.y_test.copy()
    x_test[:30], y_test[:30] = d.x_train[:30], d.y_train[:30]
    x_test[30:40], y_test[30:40] = d.x_val[:10], d.y_val[:10]
    x_test[0] += 1e-8
    return MoonsData(d.x_train, d.y_train, x_test, y_test, d.x_val, d.y_val, d.source)


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[:, None, :] - b[None, :, :]).max(axis=-1).min())


def test_report_counts_the_copies() -> None:
    r = duplicate_report(leaky())
    assert (r.test_in_train, r.test_in_val, r.test_clean) == (30, 10, 160)
    assert r.n_rows == 1200 and r.n_distinct == 1160 and r.val_in_train == 0


def test_dedup_split_has_a_clean_stratified_test_set() -> None:
    d = dedup_split(leaky(), n_test=200, seed=3)
    seen = np.concatenate([d.x_train, d.x_val])
    assert _min_distance(d.x_test, seen) > DUPLICATE_TOL
    assert len(d.x_test) == 200 and len(d.x_train) + len(d.x_val) + 200 == 1160
    assert abs(d.y_test.mean() - 0.5) < 0.02
    r = duplicate_report(d)
    assert r.test_in_train == r.test_in_val == 0 and r.n_distinct == r.n_rows
    assert not np.array_equal(d.x_test, dedup_split(leaky(), seed=4).x_test)  # seeded


def test_bad_test_size() -> None:
    with pytest.raises(ValueError, match="n_test"):
        dedup_split(leaky(), n_test=5000)


@pytest.mark.skipif(not (reference_dir() / "half_moons.csv").is_file(),
                    reason="the paper's data is not available")
def test_the_papers_split_repeats_every_test_point() -> None:
    data = load_moons("paper")
    r = duplicate_report(data)
    assert r.test_clean == 0 and r.test_in_train + r.test_in_val == len(data.x_test)
    assert r.n_distinct == 1000
    d = dedup_split(data)
    assert _min_distance(d.x_test, np.concatenate([d.x_train, d.x_val])) > DUPLICATE_TOL
