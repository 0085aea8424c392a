"""One digits chip, end to end: program, score before compensation, compensate, score again.

Before compensation: both layers programmed with the software network's targets
(`xbarlab.nn.digits_chip`: compensated write-verify, `passes` over the cells found off
target), test accuracy through the arrays' MVM.

Chip-in-the-loop compensation (non-test data only; test points are only scored):
0. (optional, `pair_fix`) where a device is stuck or far off its target, its partner is
   re-targeted so that the pair's difference is the intended weight; only those partners are
   reprogrammed (with the disturb that really causes);
1. layer 1's outputs get a per-output gain and offset (digital periphery), fitted by least
   squares so that its MVM outputs on the training and calibration images match the software
   pre-activations (half-select disturb compresses the programmed window towards its middle:
   a gain, mostly);
2. layer 2 re-fit: the training and calibration images run through layer 1's MVM, and layer 2
   is re-trained (hardware-aware: tuning noise, stuck devices, the per-cell gains of the second
   array's wired MVM at its measured state) on the hidden activations the chip really produces,
   so that it absorbs what programming did to layer 1 (disturb, wires, stuck devices);
3. if the re-fitted layer 2 is expected to do better on the calibration images than the chip
   as programmed, the layer 2 cells whose target moved are reprogrammed and its outputs
   calibrated as in 1 against the re-fitted layer on the chip's hidden activations; else the
   chip is left as it was (calibration 1 dropped).

Figures: test accuracy (software, before, after), per-layer tuning error (|G - target| /
target over the programmed devices, G the simulator's true state, before compensation), the
weight import error (mean |w_chip - w| / max|w| per layer, w_chip from the true conductances),
pulses and time (wall and process CPU) of the chip's simulation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from xbarlab.crossbar import FloatArray
from xbarlab.limits import BenchLimits
from xbarlab.nn.digits import DigitsData, HardwareNoise, accuracy, logits_numpy, train_digits
from xbarlab.nn.digits_chip import (
    ArrayState,
    ChipConfig,
    calibrate_outputs,
    chip_layout,
    fix_pairs,
    gain_map,
    initial_estimate,
    mvm,
    mvm_voltages,
    new_array,
    off_target,
    program_cells,
    retarget,
    tile_cells,
)

Params = list[tuple[FloatArray, FloatArray]]
Progress = Callable[[str], None]


@dataclass
class ChipReport:
    software: float
    before: float
    after: float
    tuning_error: list[float]  # per layer, mean relative |G - target|, before compensation
    tuning_error_after: list[float]
    import_error: list[float]  # per layer, mean |dw| / max|w|, before compensation
    import_error_after: list[float]
    pulses_before: int
    pulses_compensation: int
    seconds: float  # wall time of the chip's simulation (programming, reads, MVMs, re-fit)
    cpu_seconds: float
    seconds_compensation: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))))


def program_layer(state: ArrayState, cfg: ChipConfig, cells: list[tuple[int, int]] | None = None
                  ) -> None:
    """Program `cells` (default: the whole tile), then `cfg.passes - 1` passes over those of
    them found off target."""
    if np.isnan(state.estimate).all():
        initial_estimate(state, cfg)
    cells = cells if cells is not None else tile_cells(state, cfg)
    program_cells(state, cfg, cells)
    for _ in range(cfg.passes - 1):
        mine = set(cells)
        off = [c for c in off_target(state, cfg) if c in mine]
        if not off:
            break
        program_cells(state, cfg, off)


def _true_params(state: ArrayState) -> tuple[FloatArray, FloatArray]:
    g = state.xbar.g[: state.rows, : state.cols]
    w, b = state.placement.params(g, state.scale_w, state.scale_b)
    return np.asarray(w), np.asarray(b)


def _errors(state: ArrayState, w: FloatArray, b: FloatArray) -> tuple[float, float]:
    t = state.targets[: state.rows, : state.cols]
    g = state.xbar.g[: state.rows, : state.cols]
    tw, tb = _true_params(state)
    full = max(float(np.abs(w).max()), 1e-12)
    imp = float(np.mean(np.abs(np.concatenate([(tw - w).ravel(), (tb - b).ravel()]))) / full)
    return float(np.mean(np.abs(g - t) / t)), imp


def chip_logits(arrays: list[ArrayState], x: FloatArray, cfg: ChipConfig) -> FloatArray:
    h = x
    for i, a in enumerate(arrays):
        z = mvm(a, h, cfg)
        h = _sigmoid(z) if i < len(arrays) - 1 else z
    return h


def run_chip(params: Params, data: DigitsData, cfg: ChipConfig, *, refit_epochs: int = 150,
             refit_noise: HardwareNoise | None = None, progress: Progress | None = None,
             limits: BenchLimits | None = None, pair_fix: bool = False) -> ChipReport:
    """Program `params` on one simulated chip and compensate (see the module docstring)."""
    say = progress or (lambda _msg: None)
    limits = limits or BenchLimits()
    t0, c0 = time.perf_counter(), time.process_time()
    sizes = (params[0][0].shape[1], *(w.shape[0] for w, _ in params))
    layout = chip_layout(sizes, cfg)
    arrays = []
    for i, (placement, (w, b)) in enumerate(zip(layout, params, strict=True)):
        say(f"layer {i + 1}: programming {placement.n_devices} devices")
        a = new_array(cfg, i, placement, w, b, limits)
        program_layer(a, cfg)
        arrays.append(a)
    software = accuracy(logits_numpy(data.x_test, params), data.y_test)
    before = accuracy(chip_logits(arrays, data.x_test, cfg), data.y_test)
    errs = [_errors(a, w, b) for a, (w, b) in zip(arrays, params, strict=True)]
    digital_before = accuracy(logits_numpy(data.x_test, [_true_params(a) for a in arrays]),
                              data.y_test)
    mixed_before = accuracy(logits_numpy(data.x_test, [_true_params(arrays[0]), params[1]]),
                            data.y_test)
    pulses_before = sum(a.n_pulses for a in arrays)
    say(f"before compensation: {before:.1%} (software {software:.1%})")
    t1 = time.perf_counter()

    a1, a2 = arrays
    x_fit = np.concatenate([data.x_train, data.x_cal])
    y_fit = np.concatenate([data.y_train, data.y_cal])
    if pair_fix:
        cells = fix_pairs(a1, cfg)
        say(f"layer 1: pair fix on {len(cells)} devices")
        if cells:
            program_layer(a1, cfg, cells)
    cal_before = accuracy(chip_logits(arrays, data.x_cal, cfg), data.y_cal)
    # 1. layer 1's outputs calibrated against the software pre-activations (non-test data)
    w1, b1 = params[0]
    calibrate_outputs(a1, mvm(a1, x_fit, cfg), x_fit @ w1.T + b1)
    # 2. layer 2 re-fit on the hidden activations the chip produces
    h_fit = _sigmoid(mvm(a1, x_fit, cfg))
    v_rows, _ = mvm_voltages(h_fit, cfg.size, a2.scale_b / a2.scale_w, cfg.v_read)
    gains = gain_map(cfg, a2.estimate, v_rows)[: a2.rows, : a2.cols]
    noise = refit_noise or HardwareNoise(tuning=2 * cfg.tolerance)
    noise = HardwareNoise(**{**asdict(noise), "gains": (gains,)})
    say("layer 2: re-fit on the chip's hidden activations")
    w2, b2 = params[1]
    refit = train_digits(h_fit, y_fit, hw=noise, epochs=refit_epochs, sizes=(sizes[1], sizes[2]),
                         init=[(w2, b2)], lr=0.005)
    nw2, nb2 = refit.params[0]
    h_cal = _sigmoid(mvm(a1, data.x_cal, cfg))
    expected = accuracy(h_cal @ nw2.T + nb2, data.y_cal)
    applied = expected > cal_before
    if applied:
        # 3. layer 2 reprogrammed where its targets moved, its outputs calibrated
        cells = retarget(a2, nw2, nb2, cfg)
        say(f"layer 2: reprogramming {len(cells)} devices")
        if cells:
            program_layer(a2, cfg, cells)
        if pair_fix:
            cells = fix_pairs(a2, cfg)
            if cells:
                program_layer(a2, cfg, cells)
        calibrate_outputs(a2, mvm(a2, h_fit, cfg), h_fit @ nw2.T + nb2)
    else:  # no gain expected on the calibration images: the chip is left as it was
        say(f"no gain expected (calibration {cal_before:.1%}, re-fit {expected:.1%}): "
            "chip left as programmed")
        a1.out_gain = a1.out_offset = None
        nw2, nb2 = params[1]
    h_test = _sigmoid(mvm(a1, data.x_test, cfg))
    ceiling = accuracy(h_test @ nw2.T + nb2, data.y_test)  # re-fitted layer 2, digital
    after = accuracy(chip_logits(arrays, data.x_test, cfg), data.y_test)
    new_params = [params[0], (nw2, nb2)]
    errs_after = [_errors(a, w, b) for a, (w, b) in zip(arrays, new_params, strict=True)]
    say(f"after compensation: {after:.1%}")
    seconds = time.perf_counter() - t0
    return ChipReport(
        software, before, after, [e[0] for e in errs], [e[0] for e in errs_after],
        [e[1] for e in errs], [e[1] for e in errs_after], pulses_before,
        sum(a.n_pulses for a in arrays) - pulses_before, seconds, time.process_time() - c0,
        time.perf_counter() - t1,
        {"refit_digital_layer2": ceiling, "calibration_before": cal_before,
         "refit_expected_calibration": expected, "compensation_applied": applied,
         "digital_true_g_before": digital_before,
         "digital_true_layer1_only_before": mixed_before,
         "digital_true_g_after": accuracy(
             logits_numpy(data.x_test, [_true_params(a) for a in arrays]), data.y_test),
         "failed_devices": [int(a.failed.sum()) for a in arrays]},
    )
