"""Transfer by programming simulated crossbars, and inference through their MVM."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xbarlab.config import SimConfig
from xbarlab.crossbar import MvmResult
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.nn.crossbar_transfer import (
    CrossbarTransferConfig,
    ProgrammedLayer,
    ProgrammedNetwork,
    ProgrammedTile,
    calibrate_statistics,
    evaluate_crossbar_transfers,
    layer_mvm,
    program_network,
    share_95_at,
    sim_factory,
)
from xbarlab.nn.mapping import place_layer
from xbarlab.nn.metrics import mlp_logits
from xbarlab.nn.transfer import TransferModel


def small_net(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, 3, (3, 2)), rng.normal(0, 1, 3)),
            (rng.normal(0, 2, (1, 3)), rng.normal(0, 0.5, 1))]


class ExactArray:
    """A crossbar stub holding exact conductances: MVM is I = V G (columns at 0 V)."""

    def __init__(self, g: np.ndarray) -> None:
        self.g = g

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape

    def mvm(self, v_rows: np.ndarray) -> MvmResult:
        v = np.atleast_2d(v_rows)
        return MvmResult(v, v @ self.g, np.zeros((len(v), self.g.shape[1]), bool))

    def describe(self) -> dict[str, Any]:
        return {"backend": "exact-stub"}

    def safe_state(self) -> None:
        pass


@pytest.mark.parametrize("array_shape", [(4, 4), (8, 8), (3, 5)])
def test_mvm_encoding_computes_the_layer_exactly(array_shape: tuple[int, int]) -> None:
    # reference: y = W x + b, computed directly; the layer is mapped, tiled and run on exact
    # arrays with inputs on rows, a bias row at its own voltage and pairs subtracted
    rng = np.random.default_rng(1)
    w, b = rng.normal(0, 2, (5, 4)), rng.normal(0, 5, 5)  # bias scale > weight scale
    p = place_layer(4, 5, array_shape)
    g, sw, sb = p.matrix(w, b, 100e-6, 500e-6)
    tiles = []
    for t in p.tiles:
        arr = np.zeros(array_shape)
        arr[: t.rows, : t.cols] = p.tile_targets(g, t)
        xb = ExactArray(arr)
        tiles.append(ProgrammedTile(xb, RunEngine(xb, BenchLimits()), None))  # type: ignore[arg-type]
    layer = ProgrammedLayer(p, tiles, sw, sb, g, g)
    x = rng.random((7, 4))
    assert layer_mvm(layer, x, 0.2) == pytest.approx(x @ w.T + b, rel=1e-9, abs=1e-9)


def test_programming_and_mvm_agree_with_read_back_on_linear_devices() -> None:
    # linear devices, ideal wires, no noise: the MVM path and the read path must agree
    cfg = CrossbarTransferConfig(
        sim=SimConfig(rows=4, cols=4, device="simple", noise=False), passes=2)
    params = small_net()
    prog = program_network(params, cfg, sim_factory(cfg, 0))
    ok, total = prog.n_converged
    assert ok == total == 3 * 6 + 4 * 2  # (inputs + bias row) x 2 outputs per layer
    back = prog.read_back_params()
    for (w, b), (w2, b2) in zip(params, back, strict=True):
        # 1 % write-verify tolerance on conductances of up to 500 uS -> weight error bounded
        scale = np.abs(w).max()
        assert np.abs(w2 - w).max() <= 0.03 * scale
        assert np.abs(b2 - b).max() <= 0.03 * np.abs(b).max()
    x = np.random.default_rng(2).random((20, 2))
    assert prog.logits(x) == pytest.approx(mlp_logits(x, back, dtype=np.float64)[0], rel=1e-9,
                                           abs=1e-9)


def test_crossbar_evaluation_on_tio2_devices() -> None:
    cfg = CrossbarTransferConfig(sim=SimConfig(rows=8, cols=8, device="tio2-o921c"))
    rng = np.random.default_rng(3)
    x = rng.random((40, 2))
    params = small_net(1)
    y = (mlp_logits(x, params, dtype=np.float64)[0] > 0).astype(float)  # nominal is perfect
    ev = evaluate_crossbar_transfers(params, cfg, x, y, 2, seed=1)
    assert ev.mvm.n_transfers == 2 and ev.mvm.acc_nominal == 1.0
    assert 0.5 < ev.mvm.acc_mean <= 1.0
    assert len(ev.n_pulses) == 2 and min(ev.n_pulses) > 0
    assert ev.converged_share > 0.8


def test_chips_in_worker_processes_give_the_same_result() -> None:
    cfg = CrossbarTransferConfig(sim=SimConfig(rows=4, cols=8, device="simple"))
    rng = np.random.default_rng(3)
    x = rng.random((30, 2))
    params = small_net(2)
    y = (mlp_logits(x, params, dtype=np.float64)[0] > 0).astype(float)
    one = evaluate_crossbar_transfers(params, cfg, x, y, 4, seed=2)
    two = evaluate_crossbar_transfers(params, cfg, x, y, 4, seed=2, workers=2)
    assert one.mvm.correct is not None and two.mvm.correct is not None
    assert np.array_equal(one.mvm.correct, two.mvm.correct)
    assert one.n_pulses == two.n_pulses and np.array_equal(one.rel_error, two.rel_error)


def test_mvm_inputs_above_the_read_limit_are_refused_by_the_engine() -> None:
    cfg = CrossbarTransferConfig(sim=SimConfig(rows=4, cols=4, device="simple", noise=False),
                                 v_read=0.8)  # MVM inputs above the bench read limit (0.5 V)
    prog = program_network(small_net(), cfg.model_copy(update={"v_read": 0.2}),
                           sim_factory(cfg, 0))
    bad = ProgrammedNetwork(prog.layers, 0.8)
    with pytest.raises(RuntimeError, match="refused"):
        bad.logits(np.full((1, 2), 1.0))


def test_calibrated_statistics_are_a_usable_preset() -> None:
    cfg = CrossbarTransferConfig(sim=SimConfig(rows=8, cols=8, device="tio2-o921c"))
    base = TransferModel.from_preset().stats
    st = calibrate_statistics(cfg, base, (3, 8), n_arrays=3)
    assert st.window == base.window and st.stuck == base.stuck
    assert st.disturb.k[0] >= 1 and len(st.disturb.k) > 5
    assert st.tuning.std_pct(100e-6) > 0 and st.tuning.std_pct(500e-6) > 0
    tm = TransferModel(st)
    g = np.full(24, 300e-6)
    from xbarlab.nn.transfer import transfer

    out = transfer(tm, g, np.arange(24), 50, np.random.default_rng(0))
    assert np.all(np.isfinite(out))


def test_share_at_n_transfers() -> None:
    # a point right in 19 of 20 transfers is >= 95 % at n = 20 but not in a group of 10
    c = np.ones((20, 2), bool)
    c[3, 0] = False
    assert share_95_at(c, 20) == pytest.approx(1.0)
    assert share_95_at(c, 10) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least"):
        share_95_at(c, 40)
