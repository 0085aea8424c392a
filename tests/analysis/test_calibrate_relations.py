"""Round trip of the relations besides the switching steps: read I-V nonlinearity (iv.b),
the window clip levels (r_on, r_off) and retention drift, from logs simulated on 32 x 32
arrays (a few I-V sweeps, an endurance run of a few cells, a retention run of every cell) for
three truths, the calibration always starting from the shipped preset.

Asserted: every parameter these logs determine within 10 % of the truth; iv.a (which no
electrical measurement separates from the state resistance scale) and retention.t0 kept and
marked so in the written preset; the rates these logs barely constrain (I-V and endurance
steps of a dozen devices) are dropped as not determined, with a warning, when their standard
error exceeds their value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.analysis.simlogs import (
    perturbed_preset,
    simulate_endurance,
    simulate_iv_sweeps,
    simulate_retention,
)
from xbarlab.analysis.calibrate import Calibration, calibrate, write_preset
from xbarlab.analysis.calibrate_data import load_log
from xbarlab.analysis.calibrate_iv import fit_iv
from xbarlab.sim.presets import CompactPreset, load_preset, load_preset_file

TRUTHS = {
    "shipped": {},
    "plus": {"iv.b": 1.3, "r_on": 0.75, "r_off": 1.3, "retention.drift_per_decade": 1.4,
             "retention.d2d_log_std": 0.7},
    "minus": {"iv.b": 0.7, "r_on": 1.3, "r_off": 0.8, "retention.drift_per_decade": 0.6,
              "retention.d2d_log_std": 1.35},
}
DETERMINED = ["iv.b", "r_on", "r_off", "retention.drift_per_decade", "retention.d2d_log_std"]


def _truth_value(p: CompactPreset, name: str) -> float:
    obj: object = p
    for part in name.split("."):
        obj = getattr(obj, part)
    return float(obj)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=list(TRUTHS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[CompactPreset, Calibration, Path]:
    d = tmp_path_factory.mktemp(f"rel-{request.param}")
    device = (str(perturbed_preset(d / "truth.yaml", TRUTHS[request.param]))
              if TRUTHS[request.param] else "tio2-o921c")
    seed = 11 + list(TRUTHS).index(request.param)
    logs = [simulate_iv_sweeps(d / "iv.h5", device, seed=seed).path,
            simulate_endurance(d / "end.h5", device, seed=seed).path,
            simulate_retention(d / "ret.h5", device, seed=seed).path]
    return load_preset(device), calibrate(logs, base="tio2-o921c", name="fitted"), d


def test_determined_parameters_within_10_percent(
    case: tuple[CompactPreset, Calibration, Path]
) -> None:
    truth, cal, _ = case
    fitted = {e.name: e for e in cal.estimates}
    print(truth.name, {n: f"{fitted[n].value / _truth_value(truth, n) - 1:+.2%}"
                       for n in DETERMINED if n in fitted})
    for name in DETERMINED:
        true = _truth_value(truth, name)
        e = fitted[name]
        assert e.value == pytest.approx(true, rel=0.10), (name, e.value, true)
        assert 0 < e.stderr < 0.1 * true, (name, e.stderr)  # an uncertainty, and a small one


def test_undetermined_parameters_are_kept_and_marked(
    case: tuple[CompactPreset, Calibration, Path], tmp_path: Path
) -> None:
    _, cal, _ = case
    kept = cal.preset["calibration"]["kept"]
    assert {"iv.a", "retention.t0"} <= set(kept)
    # rates from a dozen devices' I-V and endurance steps: dropped when their standard error
    # exceeds the value, and then said so
    for pol in ("set", "reset"):
        if f"{pol}.a" in kept:
            assert any(w.startswith(f"{pol}.a: not determined") for w in cal.warnings)
    out = load_preset_file(write_preset(cal, tmp_path / "p.yaml"))
    assert isinstance(out, CompactPreset)
    base = load_preset("tio2-o921c")
    assert out.iv.a == base.iv.a
    raw = (tmp_path / "p.yaml").read_text(encoding="utf-8")
    assert "kept from tio2-o921c (no electrical measurement separates it" in raw
    assert out.iv.b == pytest.approx(cal.more.iv.b if cal.more.iv else np.nan)


def test_v2_sweeps_give_b_with_the_column_current_modelled(tmp_path: Path) -> None:
    """Under V/2 the column current is mostly the 31 half-selected cells': the model's
    per-leg sum of their conductances absorbs it (a few % off; without that term the fit
    would be far off)."""
    log = simulate_iv_sweeps(tmp_path / "iv2.h5", "tio2-o921c", seed=3, scheme="v/2")
    fit = fit_iv([load_log(log.path)], 1.0)
    assert fit is not None
    assert fit.b == pytest.approx(load_preset("tio2-o921c").iv.b, rel=0.05)


@pytest.mark.slow  # a 32 x 32 write-verify session besides the three short logs (~25 s CPU)
def test_all_logs_together(tmp_path: Path) -> None:
    """Every kind of log of one perturbed truth calibrated together: the rates are fitted
    through the fitted I-V law and clip levels, and their t also through the half-select
    disturb of the write-verify session's read map."""
    from tests.analysis.simlogs import simulate_write_verify
    from xbarlab.sim.tio2 import switching_rate

    factors = {**TRUTHS["plus"], "set.a": 1.3, "set.t": 0.8, "reset.a": 0.75, "reset.t": 1.2}
    device = str(perturbed_preset(tmp_path / "truth.yaml", factors))
    truth = load_preset(device)
    assert isinstance(truth, CompactPreset)
    logs = [simulate_write_verify(tmp_path / "wv.h5", device, seed=21, shape=(32, 32)).path,
            simulate_iv_sweeps(tmp_path / "iv.h5", device, seed=21).path,
            simulate_endurance(tmp_path / "end.h5", device, seed=21).path,
            simulate_retention(tmp_path / "ret.h5", device, seed=21).path]
    cal = calibrate(logs, base="tio2-o921c", name="fitted")
    fitted = {e.name: e for e in cal.estimates}
    # a polarity's (a, t) is reported only where its steps determine a (else kept from the
    # base and said so): what is reported must be right, and it must not be nothing
    pols = [q for q in ("set", "reset") if f"{q}.t" in fitted]
    assert pols, cal.warnings
    for q in {"set", "reset"} - set(pols):
        assert any(w.startswith(f"{q}.t: not determined") for w in cal.warnings), cal.warnings
    errors = {}
    for name in [*DETERMINED, *(f"{q}.t" for q in pols)]:
        errors[name] = fitted[name].value / _truth_value(truth, name) - 1
    for fit in cal.rate_fits:
        pol = truth.set if fit.setting else truth.reset
        true_rate = float(switching_rate(pol, np.asarray(fit.v_ref)))
        errors[f"rate@{fit.v_ref:.2f}V"] = fit.rate_ref / true_rate - 1
    a_err = {q: fitted[f"{q}.a"].value / _truth_value(truth, f"{q}.a") - 1 for q in pols}
    print({k: f"{v:+.1%}" for k, v in {**errors, **a_err}.items()})
    assert all(abs(v) < 0.10 for v in errors.values()), errors
    for q in pols:
        e = fitted[f"{q}.a"]
        assert abs(np.log1p(a_err[q])) < 3 * e.stderr / e.value, (q, e.value, e.stderr)
