"""Batched inference, the paper's metric, and the data set."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.nn.data import PAPER_SPLIT, load_moons, make_matched_moons, reference_dir
from xbarlab.nn.metrics import PAPER_BINS, cdf_curve, correct_matrix, mlp_logits, summarize

torch = pytest.importorskip("torch")


def test_batched_inference_matches_torch() -> None:
    rng = np.random.default_rng(0)
    n, x = 7, rng.random((30, 2))
    params = [(rng.normal(size=(n, 8, 2)), rng.normal(size=(n, 8))),
              (rng.normal(size=(n, 1, 8)), rng.normal(size=(n, 1)))]
    got = mlp_logits(x, params, dtype=np.float64)
    for i in range(n):  # reference: torch's own layers, one network at a time
        xt = torch.as_tensor(x)
        h = torch.sigmoid(torch.nn.functional.linear(
            xt, torch.as_tensor(params[0][0][i]), torch.as_tensor(params[0][1][i])))
        ref = torch.nn.functional.linear(
            h, torch.as_tensor(params[1][0][i]), torch.as_tensor(params[1][1][i]))[:, 0]
        assert got[i] == pytest.approx(ref.numpy(), rel=1e-10, abs=1e-12)
    shared = mlp_logits(x, [(w[0], b[0]) for w, b in params])
    assert shared[0] == pytest.approx(got[0], rel=1e-4, abs=1e-5)  # float32 default


def test_metric_on_a_constructed_correctness_matrix() -> None:
    # 100 transfers x 4 points right in 100, 96, 94 and 30 of them
    correct = np.zeros((100, 4), dtype=bool)
    for p, k in enumerate((100, 96, 94, 30)):
        correct[:k, p] = True
    m = summarize(correct)
    assert m.share_95 == pytest.approx(0.5)
    assert m.bins == pytest.approx([0.5, 0.25, 0, 0, 0, 0, 0.25])
    assert len(m.bins) == len(PAPER_BINS)
    assert m.acc_mean == pytest.approx((100 + 96 + 94 + 30) / 400)
    assert m.acc_min == pytest.approx(0.25)  # transfers 96..99 get only the first point
    t, share = cdf_curve(m.point_fraction)
    assert share[0] == 1.0 and share[np.searchsorted(t, 0.95)] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="non-empty"):
        summarize(np.zeros((0, 3), bool))


def test_correct_matrix_uses_the_logit_sign() -> None:
    assert correct_matrix(np.array([[2.0, -1.0, 0.5]]), np.array([1, 0, 0])).tolist() == [
        [True, True, False]]


def test_matched_moons_have_the_paper_sizes_and_scaling() -> None:
    pytest.importorskip("sklearn")
    d = make_matched_moons(seed=1)
    assert (len(d.y_train), len(d.y_test), len(d.y_val)) == tuple(PAPER_SPLIT.values())
    for x in (d.x_train, d.x_test, d.x_val):
        assert x.min() >= 0 and x.max() <= 1
    assert "make_moons" in d.source and "0.16" in d.source


@pytest.mark.skipif(not (reference_dir() / "half_moons.csv").is_file(),
                    reason="reference data absent")
def test_paper_split_is_used_when_present() -> None:
    d = load_moons()
    assert d.source.startswith("paper split")
    assert (len(d.y_train), len(d.y_test), len(d.y_val)) == (875, 200, 125)
    assert set(np.unique(d.y_test)) == {0.0, 1.0}


def test_missing_reference_falls_back_or_refuses(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sklearn")
    monkeypatch.setenv("XBARLAB_REFERENCE_DIR", str(tmp_path))
    assert "make_moons" in load_moons().source
    with pytest.raises(FileNotFoundError, match="half-moons"):
        load_moons("paper")
