"""Round trip: logs simulated from known TiO2 parameters are calibrated back.

Three truths: the shipped preset and two with every parameter the logs measure perturbed by
up to +-40 % (switching rates and voltage scales, I-V nonlinearity, R_on / R_off, the
device-to-device rate spread, read noise, stuck fractions, retention drift and its spread).
Each truth's logs are those of the issue: a 32 x 32 ISPP write-verify session, a few I-V
sweeps, an endurance run of a few cells and a retention run of every cell, with noise on; the
calibration always starts from the shipped preset (it does not know the truth).

Asserted: every parameter reported as determined (standard error <= 10 %/3 of its value,
`calibrate_determined`) lies within 10 % of the truth; every rate at the steps' median
amplitude reported as determined too; what is written but not determined (a prefactor `a`
derived from the rate at v_ref, fits with larger standard errors) within 3 of its standard
errors; what is kept from the base is said so and the written preset holds the base's value;
exactly the simulator's stuck cells are found; a held-out session is predicted.

Measured on the way (README): where a polarity's steps each move G by ~20 % (t ~ 0.16-0.18
V: the plus truth's SET, the minus truth's RESET) the step model is 7-10 % off in the rate;
the disagreement of the small and the large steps puts that in the standard error, so those
rates are written as estimated, not reported as determined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.analysis.simlogs import (
    SimLog,
    perturbed_preset,
    simulate_endurance,
    simulate_iv_sweeps,
    simulate_retention,
    simulate_write_verify,
)
from xbarlab.analysis.calibrate import (
    Calibration,
    calibrate,
    clip_reads,
    stuck_cells,
    write_preset,
)
from xbarlab.analysis.calibrate_determined import DETERMINED_REL_SE
from xbarlab.config import PatternTarget, SimConfig
from xbarlab.log.reader import LogReader
from xbarlab.protocols.patterns import target_map
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import CompactPreset, load_preset, load_preset_file
from xbarlab.sim.tio2 import switching_rate

TRUTHS = {
    "shipped": {},
    "plus": {"set.a": 1.4, "set.t": 0.7, "reset.a": 0.6, "reset.t": 1.3, "iv.b": 1.3,
             "r_on": 0.75, "r_off": 1.3, "variability.d2d_rate": 1.4,
             "read_noise.slope_pct_per_ohm": 0.6, "read_noise.intercept_pct": 1.4,
             "stuck.lrs_rate": 1.4, "stuck.hrs_rate": 0.6,
             "retention.drift_per_decade": 1.4, "retention.d2d_log_std": 0.7},
    "minus": {"set.a": 0.65, "set.t": 1.35, "reset.a": 1.35, "reset.t": 0.65, "iv.b": 0.7,
              "r_on": 1.3, "r_off": 0.9, "variability.d2d_rate": 0.6,
              "read_noise.slope_pct_per_ohm": 1.4, "read_noise.intercept_pct": 0.6,
              "stuck.lrs_rate": 0.6, "stuck.hrs_rate": 1.4,
              "retention.drift_per_decade": 0.6, "retention.d2d_log_std": 1.35},
}
SEEDS = {"shipped": 2, "plus": 3, "minus": 4}
pytestmark = pytest.mark.slow  # three sets of logs simulated and fitted (~15-25 s CPU each)


@pytest.fixture(scope="module", params=list(TRUTHS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[CompactPreset, SimLog, Calibration, str]:
    d = tmp_path_factory.mktemp(request.param)
    if TRUTHS[request.param]:
        device = str(perturbed_preset(d / "truth.yaml", TRUTHS[request.param]))
    else:
        device = "tio2-o921c"
    truth = load_preset(device)
    seed = SEEDS[request.param]
    log = simulate_write_verify(d / "wv.h5", device, seed=seed, shape=(32, 32))
    more = [simulate_iv_sweeps(d / "iv.h5", device, seed=seed).path,
            simulate_endurance(d / "end.h5", device, seed=seed).path,
            simulate_retention(d / "ret.h5", device, seed=seed).path]
    cal = calibrate([log.path, *more], base="tio2-o921c", name="fitted")
    assert isinstance(truth, CompactPreset)
    return truth, log, cal, request.param


def load_preset_file_doc(cal: Calibration) -> CompactPreset:
    """The calibrated preset, validated (as `--device` would load it)."""
    return CompactPreset.model_validate(cal.preset)


def _value(p: CompactPreset, name: str) -> float:
    obj: object = p
    for part in name.split("."):
        obj = getattr(obj, part)
    return float(obj)  # type: ignore[arg-type]


def test_determined_parameters_within_10_percent(
    case: tuple[CompactPreset, SimLog, Calibration, str]
) -> None:
    truth, _, cal, which = case
    errors = {e.name: e.value / _value(truth, e.name) - 1 for e in cal.estimates}
    for e in cal.estimates:
        assert e.stderr <= DETERMINED_REL_SE * abs(e.value), e
    rates = cal.preset["calibration"]["rate_at_median_amplitude"]
    for r in rates:
        if r["determined"]:
            pol = getattr(truth, r["polarity"])
            errors[f"rate {r['polarity']}"] = r["rate"] / float(
                switching_rate(pol, np.asarray(r["v_ref"]))) - 1
    print(which, {k: f"{v:+.1%}" for k, v in errors.items()})
    # what every such set of logs determines
    assert {"iv.b", "r_on", "r_off", "retention.drift_per_decade"} <= set(errors), errors
    assert any(k.startswith("rate ") for k in errors), cal.warnings
    bad = {k: v for k, v in errors.items() if abs(v) > 0.10}
    assert not bad, bad


def test_window_standard_errors_cover_the_errors(
    case: tuple[CompactPreset, SimLog, Calibration, str]
) -> None:
    """R_on, R_off (and iv.b, whose error reaches them through the read factor) lie within 3
    of their standard errors of the truth (they were 0.02 %, against errors up to 0.2 %)."""
    truth, _, cal, which = case
    fitted = {e.name: e for e in cal.estimates}
    for name in ("iv.b", "r_on", "r_off"):
        e = fitted[name]
        err = e.value / _value(truth, name) - 1
        print(which, f"{name}: {err:+.3%}, std error {e.stderr / e.value:.3%}")
        assert abs(err) < 3 * e.stderr / e.value, (name, err, e.stderr / e.value)


def test_estimated_and_kept(case: tuple[CompactPreset, SimLog, Calibration, str],
                          tmp_path: Path) -> None:
    """What is written but not determined within 3 standard errors; what is kept is kept
    from the base, warned about, and the written preset holds the base's value."""
    truth, _, cal, _ = case
    for e in cal.estimated:
        z = abs(np.log(e.value / _value(truth, e.name))) / (e.stderr / abs(e.value))
        print(f"{e.name}: {e.value / _value(truth, e.name) - 1:+.1%}, z {z:.2f}")
        assert z < 3, e
    block = cal.preset["calibration"]
    assert not set(block["fitted"]) & set(block["kept"])
    assert not set(block["estimated"]) & (set(block["kept"]) | set(block["fitted"]))
    base = load_preset("tio2-o921c")
    out = load_preset_file(write_preset(cal, tmp_path / "p.yaml"))
    assert isinstance(out, CompactPreset) and isinstance(base, CompactPreset)
    for name in block["kept"]:
        if name in ("v_read", "initial", "window"):
            continue
        assert _value(out, name) == _value(base, name), name
    for name in ("read_noise.slope_pct_per_ohm", "stuck.lrs_rate"):  # too few to determine
        if name in block["kept"]:
            assert any(w.startswith(f"{name}: not determined") for w in cal.warnings)
    for name, entry in block["estimated"].items():
        assert _value(out, name) == pytest.approx(entry["value"])


def test_stuck_cells_found(case: tuple[CompactPreset, SimLog, Calibration, str]) -> None:
    """Exactly the simulator's stuck cells are found (none of its slow healthy ones, nor the
    healthy ones the minus truth's R_off, read 94 µS, pins below targets near 100 µS)."""
    _, log, cal, _ = case
    fitted = load_preset_file_doc(cal)
    found = stuck_cells(cal.logs[0], clip_reads(fitted)).reshape(log.stuck.shape)
    np.testing.assert_array_equal(found, log.stuck > 0)


def test_written_preset_drives_the_simulator(
    case: tuple[CompactPreset, SimLog, Calibration, str], tmp_path: Path
) -> None:
    _, _, cal, _ = case
    out = write_preset(cal, tmp_path / "my-device.yaml")
    preset = load_preset_file(out)
    assert isinstance(preset, CompactPreset)
    block = preset.calibration
    assert block is not None and block["logs"][0]["run_id"]
    assert "iv.a" in block["kept"]
    xbar = build_sim_crossbar(SimConfig(rows=4, cols=4, device=str(out), seed=1))
    assert xbar.shape == (4, 4)


def _per_cell(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pulses per cell, each cell's last read (S) and its final error |G - target| / target
    of a write-verify log (gradient target, as `simulate_write_verify` programs)."""
    with LogReader(path) as reader:
        m = reader.measurements()
        shape = reader.info.shape
    cell = m["row"].to_numpy() * shape[1] + m["col"].to_numpy()
    pulses = m[m["kind"] == "pulse"].groupby(cell[m["kind"] == "pulse"]).size()
    reads = m[m["kind"] == "read"]
    last = reads.groupby(cell[m["kind"] == "read"])["conductance"].last()
    target = target_map(PatternTarget(pattern="gradient"), (int(shape[0]), int(shape[1])))
    err = np.abs(last.to_numpy() / target.ravel()[last.index.to_numpy()] - 1)
    return pulses.reindex(last.index, fill_value=0).to_numpy(), last.to_numpy(), err


@pytest.mark.timeout(900)  # four 16 x 16 sessions; minutes on a loaded machine
def test_calibrated_preset_predicts_a_held_out_session(
    case: tuple[CompactPreset, SimLog, Calibration, str], tmp_path: Path
) -> None:
    """New sessions of the same devices (the simulator's device draws are its seed; seeds
    other than the calibration's), run on the truth and on the calibrated preset: pulses per
    cell and final errors |G - target| / target at the final read map (after every later
    cell's half-select disturb) are compared by two-sample KS tests, pooled over two
    16 x 16 sessions (one session's final errors hinge on where its few stuck cells sit:
    each pulses its row and column 25 times at the cap)."""
    truth, log, cal, _ = case
    fitted = write_preset(cal, tmp_path / "fitted.yaml")
    truth_device = truth.name if truth.name == "tio2-o921c" else str(log.path.parent /
                                                                        "truth.yaml")
    held, pred = [], []
    for seed in (40, 41):  # other seeds than the calibration's (2, 3, 4)
        h = simulate_write_verify(tmp_path / f"held{seed}.h5", truth_device, seed=seed,
                                  shape=(16, 16))
        q = simulate_write_verify(tmp_path / f"pred{seed}.h5", str(fitted), seed=seed,
                                  shape=(16, 16))
        held.append(_per_cell(h.path))
        pred.append(_per_cell(q.path))
    n_held, e_held = (np.concatenate([x[i] for x in held]) for i in (0, 2))
    n_pred, e_pred = (np.concatenate([x[i] for x in pred]) for i in (0, 2))
    p_n = stats.ks_2samp(n_held, n_pred).pvalue
    p_e = stats.ks_2samp(e_held, e_pred).pvalue
    print(f"{truth.name}: KS p pulses/cell {p_n:.3g}, final error {p_e:.3g}")
    assert p_n > 0.05, (np.mean(n_held), np.mean(n_pred))
    assert p_e > 0.05, (np.median(e_held), np.median(e_pred))
