"""Simulation-based bias check of the switching rates a calibration reports.

The rate fit's standard error is statistical; what the step model misses (cycle-to-cycle
noise it averages approximately, jitter, the threshold spread it does not fit) biases the
rate by a few to ~10 % on steps that move G by ~20 %. That bias is measured on the
calibrated preset itself: the calibration's own write-verify session is re-run on it
(`calibrate_predict.simulate_session`, same targets, settings, order and array size), the
simulated log calibrated with the calibrated preset as base (so the I-V law and clip levels
are the simulation's own), and the rate at each polarity's median amplitude compared with the
preset's, whose truth is known there. The relative difference (the bias, with the refit's
own statistical error in it) enters the rate's standard error in quadrature, and a rate whose
standard error with the bias exceeds the determined rule is no longer called determined.
One more session simulated and calibrated: as long as the calibration itself (a CLI option).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_data import CalibrationInputError
from xbarlab.analysis.calibrate_determined import DETERMINED_REL_SE
from xbarlab.sim.presets import CompactPreset, load_preset_file
from xbarlab.sim.tio2 import switching_rate


def rate_bias(preset: Path, log: Path, seed: int = 1) -> dict[str, float]:
    """Per polarity ("set"/"reset"): the relative bias of the rate at v_ref that a
    calibration of `log`'s session re-run on `preset` shows against `preset`'s own rate."""
    from xbarlab.analysis.calibrate import calibrate

    truth = load_preset_file(preset)
    if not isinstance(truth, CompactPreset):
        raise CalibrationInputError(f"{preset}: not a compact preset")
    with tempfile.TemporaryDirectory(prefix="xbarlab-bias-") as tmp:
        from xbarlab.analysis.calibrate_predict import simulate_session

        sim = simulate_session(preset, log, Path(tmp) / "bias.h5", seed)
        refit = calibrate([sim], base=str(preset), name="bias-check")
    out = {}
    for r in refit.preset["calibration"].get("rate_at_median_amplitude", []):
        pol = getattr(truth, r["polarity"])
        out[r["polarity"]] = float(r["rate"] / float(switching_rate(pol, np.asarray(r["v_ref"])))
                                   - 1.0)
    return out


def apply_bias(rates: list[dict[str, Any]], bias: dict[str, float], warnings: list[str]
               ) -> None:
    """Add each polarity's bias to its rate entry (``bias_check``, ``rel_stderr_with_bias``)
    and withdraw "determined" where the standard error with the bias exceeds the rule."""
    for r in rates:
        b = bias.get(r["polarity"])
        if b is None:
            continue
        se = float(np.hypot(r["rel_stderr"], b))
        r["bias_check"] = b
        r["rel_stderr_with_bias"] = se
        if r.get("determined") and se > DETERMINED_REL_SE:
            r["determined"] = False
            warnings.append(f"rate {r['polarity']}: the bias check (its session re-run on the "
                            f"calibrated preset and recalibrated) shows a {b:+.1%} bias; std "
                            f"error with it {se:.1%}, above {DETERMINED_REL_SE:.1%}: not "
                            "determined")


def bias_check(cal: Any, preset: Path, seed: int = 1) -> dict[str, float]:
    """Run `rate_bias` on the first write-verify log of calibration `cal`
    (`calibrate.Calibration`, `preset` its written preset) and apply it to the rates in its
    preset document and its warnings; {} when no log is a write-verify session."""
    from xbarlab.analysis.calibrate_predict import session_outcomes

    block = cal.preset["calibration"]
    rates = block.get("rate_at_median_amplitude", [])
    if not rates:
        return {}
    for d in cal.logs:
        try:
            session_outcomes(Path(d.path))
        except CalibrationInputError:
            continue
        bias = rate_bias(preset, Path(d.path), seed)
        before = len(cal.warnings)
        apply_bias(rates, bias, cal.warnings)
        block["warnings"] = list(block.get("warnings", [])) + cal.warnings[before:]
        block["bias_check"] = {"log": str(d.path), "seed": seed, **bias}
        return bias
    return {}
