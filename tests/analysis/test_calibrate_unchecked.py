"""Rates fitted through an I-V law and clip levels the logs never checked are not determined.

A write-verify log alone (no I-V sweep, no cycling into saturation) of a truth whose iv.b,
r_on and r_off differ from the base's by 30 % (the round trip's minus truth): the rate fit
sees every resistance through the base's read factor and clip, and its statistical standard
errors do not cover that (measured, 16 x 16, seed 4: set.t -23 % at a 3.0 % standard error,
which alone would pass the determined rule). The calibration writes such fits as estimated,
says why in their method and in a warning, and marks the rates at v_ref not determined.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.simlogs import perturbed_preset, simulate_write_verify
from tests.analysis.test_calibrate_roundtrip import SEEDS, TRUTHS
from xbarlab.analysis.calibrate import calibrate
from xbarlab.analysis.calibrate_data import Estimate
from xbarlab.analysis.calibrate_determined import DETERMINED_REL_SE
from xbarlab.analysis.calibrate_unchecked import RESTS_ON_LAW, flag_unchecked
from xbarlab.sim.presets import CompactPreset, load_preset


def _e(name: str, value: float = 1.0, rel: float = 0.01) -> Estimate:
    return Estimate(name, value, rel * value, 100, "1", "fit")


def test_flag_moves_only_what_rests_on_the_law() -> None:
    fits = [_e("set.t"), _e("reset.a"), _e("variability.d2d_rate"), _e("iv.b"),
            _e("read_noise.intercept_pct")]
    rates = [{"polarity": "set", "determined": True}, {"polarity": "reset", "determined": False}]
    warnings: list[str] = []
    det, est = flag_unchecked(fits, [], warnings, rates, "tio2-o921c")
    assert [e.name for e in det] == ["iv.b", "read_noise.intercept_pct"]
    assert {e.name for e in est} == {"set.t", "reset.a", "variability.d2d_rate"}
    for e in est:
        assert "r_on" in e.method and "r_off" in e.method and "iv.b" not in e.method
    assert rates[0]["determined"] is False and "r_on" in rates[0]["not_determined_because"]
    assert len(warnings) == 1 and warnings[0].startswith("set.t, reset.a")
    # iv.b, r_on and r_off all determined: nothing moves, nothing said
    law = [_e("iv.b"), _e("r_on"), _e("r_off")]
    rates = [{"polarity": "set", "determined": True}]
    det, est = flag_unchecked([*law, _e("set.t")], [], warnings, rates, "tio2-o921c")
    assert len(det) == 4 and not est and rates[0]["determined"] and len(warnings) == 1


@pytest.mark.slow  # one 16 x 16 session simulated and calibrated (~15 s CPU)
def test_write_verify_alone_does_not_determine_rates(tmp_path: Path) -> None:
    device = str(perturbed_preset(tmp_path / "truth.yaml", TRUTHS["minus"]))
    truth = load_preset(device)
    assert isinstance(truth, CompactPreset)
    log = simulate_write_verify(tmp_path / "wv.h5", device, seed=SEEDS["minus"],
                                shape=(16, 16)).path
    cal = calibrate([log])
    assert not {e.name for e in cal.estimates} & set(RESTS_ON_LAW)
    est = {e.name: e for e in cal.estimated}
    # the fit that would otherwise have been called determined, and is > 10 % off
    t = est["set.t"]
    assert t.stderr <= DETERMINED_REL_SE * t.value
    assert abs(t.value / truth.set.t - 1) > 0.10
    assert "iv.b" in t.method and "r_on" in t.method and "do not check" in t.method
    assert any("set.t" in w.split(":")[0] and "do not check" in w for w in cal.warnings)
    assert not any(r["determined"] for r in cal.preset["calibration"][
        "rate_at_median_amplitude"])
    assert "set.t" in cal.preset["calibration"]["estimated"]
