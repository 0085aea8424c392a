"""The digits MLP: split, tiling, mapping, hardware-aware training, MVM on simulated arrays."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.nn.digits import (
    SIZES,
    HardwareNoise,
    load_digits_split,
    load_npz,
    logits_numpy,
    noisy_accuracy,
    save_npz,
    train_digits,
)
from xbarlab.nn.digits_chip import (
    ArrayState,
    ChipConfig,
    calibrate_outputs,
    chip_layout,
    deconvolve,
    fix_pairs,
    gain_map,
    layer_targets,
    model_reads,
    mvm,
)
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.devices import FixedDevices


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return load_digits_split()


def test_split_is_fixed_stratified_and_disjoint(data) -> None:  # type: ignore[no-untyped-def]
    again = load_digits_split()
    np.testing.assert_array_equal(data.x_test, again.x_test)
    np.testing.assert_array_equal(data.y_cal, again.y_cal)
    n = len(data.x_train) + len(data.x_cal) + len(data.x_test)
    assert n == 1797
    assert len(data.x_test) == pytest.approx(0.30 * n, abs=2)
    assert len(data.x_cal) == pytest.approx(0.15 * n, abs=2)
    # every class in every split in about the same share
    for y in (data.y_train, data.y_cal, data.y_test):
        share = np.bincount(y, minlength=10) / len(y)
        assert np.all(np.abs(share - 0.1) < 0.015)
    # no image in two splits
    rows = {tuple(r) for r in data.x_test}
    assert not rows & {tuple(r) for r in data.x_train}
    other = load_digits_split(seed=7)
    assert not np.array_equal(other.y_test, data.y_test)


def test_inputs_are_scaled_and_the_constant_pixel_is_gone(data) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    full = load_digits().data
    assert np.all(full[:, 0] == 0)  # the dropped pixel is zero in every image
    assert data.x_train.shape[1] == SIZES[0] == 63
    assert 0 not in data.kept_pixels
    x = np.concatenate([data.x_train, data.x_cal, data.x_test])
    assert x.min() == 0.0 and x.max() == 1.0


def test_each_layer_is_one_64x64_array() -> None:
    layout = chip_layout(SIZES, ChipConfig())
    assert [p.matrix_shape for p in layout] == [(64, 64), (33, 20)]
    assert [len(p.tiles) for p in layout] == [1, 1]
    with pytest.raises(ValueError, match="needs 2 arrays"):
        chip_layout((64, 32, 10), ChipConfig())  # 65 rows: no longer one array


def test_mapping_round_trip(data) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    cfg = ChipConfig()
    layout = chip_layout(SIZES, cfg)
    for p in layout:
        w, b = rng.normal(size=(p.n_out, p.n_in)), rng.normal(size=p.n_out)
        t, sw, sb = layer_targets(p, w, b, cfg)
        assert t.shape == (64, 64)
        assert t.min() >= cfg.g_min * (1 - 1e-12) and t.max() <= cfg.g_max * (1 + 1e-12)
        w2, b2 = p.params(t[: p.matrix_shape[0], : p.matrix_shape[1]], sw, sb)
        np.testing.assert_allclose(w2, w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b2, b, rtol=1e-12, atol=1e-12)


def test_npz_round_trip(tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    params = [(rng.normal(size=(32, 63)), rng.normal(size=32)),
              (rng.normal(size=(10, 32)), rng.normal(size=10))]
    path = save_npz(tmp_path / "net.npz", params)
    back = load_npz(path)
    for (w, b), (w2, b2) in zip(params, back, strict=True):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    with np.load(path) as f:
        assert str(f["activation"]) == "sigmoid"
        assert str(f["dataset"]) == "xbarlab.cli.digits:eval_set"


def test_hardware_aware_training_is_more_robust(data) -> None:  # type: ignore[no-untyped-def]
    """Same seed, same small budget: the network trained under 10 % tuning noise and 4 %
    stuck devices keeps clearly more accuracy under that noise than the regular one."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    x, y = data.x_train[:400], data.y_train[:400]
    noise = HardwareNoise(tuning=0.10, stuck_low=0.02, stuck_high=0.02)
    reg = train_digits(x, y, epochs=300, seed=3, batch=400, lr=0.05)
    hwa = train_digits(x, y, epochs=300, seed=3, hw=noise, batch=400, lr=0.05)
    acc_reg = noisy_accuracy(data.x_test, data.y_test, reg.params, noise, draws=10, seed=5)
    acc_hwa = noisy_accuracy(data.x_test, data.y_test, hwa.params, noise, draws=10, seed=5)
    nominal = np.mean(np.argmax(logits_numpy(data.x_test, reg.params), 1) == data.y_test)
    assert nominal > 0.85  # both trained to something real
    assert acc_hwa.mean() > acc_reg.mean() + 0.03


def _ideal_state(g: np.ndarray, placement, sw: float, sb: float) -> ArrayState:  # type: ignore[no-untyped-def]
    xbar = SimCrossbar(FixedDevices(g), IdealCircuit(), seed=0)
    shape = g.shape
    return ArrayState(xbar, RunEngine(xbar, BenchLimits()), placement, g.copy(), sw, sb,
                      g.copy(), np.zeros(shape, dtype=bool))


def test_mvm_on_an_ideal_array_equals_the_software_product(data) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    cfg = ChipConfig(r_wire=0.0)
    layout = chip_layout(SIZES, cfg)
    params = [(rng.normal(size=(p.n_out, p.n_in)), rng.normal(size=p.n_out)) for p in layout]
    h = data.x_test[:50]
    for p, (w, b) in zip(layout, params, strict=True):
        t, sw, sb = layer_targets(p, w, b, cfg)
        z = mvm(_ideal_state(t, p, sw, sb), h, cfg)
        np.testing.assert_allclose(z, h @ w.T + b, rtol=1e-9, atol=1e-9)
        h = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(z, logits_numpy(data.x_test[:50], params), rtol=1e-9, atol=1e-9)


def test_wired_reads_deconvolve_to_the_cells_conductances() -> None:
    rng = np.random.default_rng(4)
    cfg = ChipConfig(size=16, r_wire=2.0)
    g = rng.uniform(100e-6, 500e-6, (16, 16))
    reads = model_reads(cfg, g, 0.2)
    assert np.max(np.abs(reads / g - 1)) > 0.02  # the wires do distort the reads
    np.testing.assert_allclose(deconvolve(cfg, reads, 0.2), g, rtol=1e-3)
    # wire-free: every cell gets its row's voltage
    ideal = ChipConfig(size=16, r_wire=0.0)
    v = rng.uniform(0, 0.2, (5, 16))
    np.testing.assert_allclose(gain_map(ideal, g, v), 1.0)
    wired = gain_map(cfg, g, v)
    assert np.all(wired < 1.0) and wired[0, -1] < wired[0, 0]  # drop grows along the row


def test_pair_fix_restores_the_difference_of_a_stuck_pair() -> None:
    cfg = ChipConfig(size=8)
    p = chip_layout((3, 2, 4), cfg)[0]  # 4 x 4 matrix on an 8 x 8 array
    t = np.full((8, 8), cfg.g_min)
    t[0, 0], t[0, 1] = 400e-6, 100e-6  # weight +300 uS
    state = _ideal_state(t, p, 1.0, 1.0)
    state.estimate[0, 1] = 250e-6  # the negative device is stuck at 250 uS
    state.failed[0, 1] = True
    cells = fix_pairs(state, cfg)
    assert cells == [(0, 0)]
    assert state.targets[0, 0] - state.estimate[0, 1] == pytest.approx(300e-6)


def test_output_calibration_undoes_a_gain_and_offset(data) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    cfg = ChipConfig(r_wire=0.0)
    p = chip_layout(SIZES, cfg)[1]
    w, b = rng.normal(size=(p.n_out, p.n_in)), rng.normal(size=p.n_out)
    t, sw, sb = layer_targets(p, w, b, cfg)
    h = rng.uniform(0, 1, (200, p.n_in))
    ref = h @ w.T + b
    # an array whose weights are compressed to 30 % around a common level (as disturb does)
    state = _ideal_state(cfg.g_min + 0.3 * (t - cfg.g_min) + 80e-6, p, sw, sb)
    raw = mvm(state, h, cfg)
    assert np.abs(raw - ref).mean() > 0.3 * np.abs(ref).mean()
    calibrate_outputs(state, raw, ref)
    np.testing.assert_allclose(mvm(state, h, cfg), ref, atol=1e-9)
    np.testing.assert_allclose(state.out_gain, 1 / 0.3, rtol=1e-9)


@pytest.mark.slow
def test_one_small_chip_end_to_end(data) -> None:  # type: ignore[no-untyped-def]
    """The whole chip flow at toy scale (7-3-3 net, 8 x 8 wired arrays): programming, MVM
    before compensation, calibration, layer 2 re-fit and reprogramming, report."""
    from xbarlab.nn.digits import DigitsData
    from xbarlab.nn.digits_study import run_chip

    n = 300
    px = slice(26, 33)
    small = DigitsData(data.x_train[:n, px], data.y_train[:n] % 3, data.x_cal[:100, px],
                       data.y_cal[:100] % 3, data.x_test[:100, px], data.y_test[:100] % 3,
                       data.kept_pixels[px])
    net = train_digits(small.x_train, small.y_train, epochs=100, sizes=(7, 3, 3), batch=300,
                       lr=0.05)
    cfg = ChipConfig(size=8, r_wire=0.5, tolerance=0.05)
    seen: list[str] = []
    rep = run_chip(net.params, small, cfg, refit_epochs=20, progress=seen.append)
    assert seen[0] == "layer 1: programming 48 devices"  # (7 + 1) rows x 3 pairs
    assert seen[-1].startswith("after compensation")
    assert 0.0 <= rep.before <= 1.0 and 0.0 <= rep.after <= 1.0
    assert rep.software > 0.45  # 3 classes: above chance
    assert rep.pulses_before > 50 and rep.seconds > 0
    assert len(rep.tuning_error) == 2 and all(0 <= e < 1 for e in rep.tuning_error)
    assert rep.extra["failed_devices"][0] <= 48


def test_cli_refuses_bad_input_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from xbarlab.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["digits", "--r-wire", "-1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    f = tmp_path / "file"
    f.write_text("x")
    res = runner.invoke(app, ["digits", "--out", str(f)])
    assert res.exit_code == 2 and "is a file" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_program_network_finds_the_digits_split() -> None:
    pytest.importorskip("xbarlab.network")
    from xbarlab.network.datasets import load_dataset
    from xbarlab.nn.digits import DATASET

    e = load_dataset(DATASET)
    d = load_digits_split()
    assert e.x_cal.shape == (len(d.x_train) + len(d.x_cal), 63)
    np.testing.assert_array_equal(e.x_test, d.x_test)
