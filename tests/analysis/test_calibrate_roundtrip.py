"""Round trip: write-verify logs simulated from known TiO2 parameters are calibrated back.

Three truths: the shipped preset and two with the switching parameters perturbed by up to
+-40 %; every log is a 32 x 32 ISPP write-verify session with noise on (read noise,
cycle-to-cycle jitter and relative noise, device-to-device spread, stuck devices); the
calibration always starts from the shipped preset (it does not know the truth).

What is reachable, measured here (and asserted): the voltage scale t within 10 % (the steps
and the half-select disturb of the final read map together) and the rate at the median pulse
amplitude within 10 % whenever the steps span several amplitudes (15 % when they are all at
one and t comes from the disturb alone); the prefactor `a` is the rate extrapolated to 0 V
(a = s(V)/(exp(V/t) - 1)), so a few % on t become tens of % on a: asserted within 3 of its
reported standard errors, not within 10 %. The device-to-device log-rate spread is asserted
within 35 % of the truth (the per-device bound shift adds spread the model attributes to
the rate); the read noise at the window's middle within 15 %; exactly the simulator's stuck
cells are found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.analysis.simlogs import SimLog, perturbed_preset, simulate_write_verify
from xbarlab.analysis.calibrate import Calibration, calibrate, stuck_cells, write_preset
from xbarlab.config import PatternTarget, SimConfig
from xbarlab.log.reader import LogReader
from xbarlab.protocols.patterns import target_map
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import CompactPreset, load_preset, load_preset_file
from xbarlab.sim.tio2 import read_factor, switching_rate

TRUTHS = {
    "shipped": {},
    "faster-set": {"set.a": 1.4, "set.t": 0.7, "reset.a": 0.6, "reset.t": 1.3},
    "faster-reset": {"set.a": 0.65, "set.t": 1.35, "reset.a": 1.35, "reset.t": 0.65},
}
SEEDS = {"shipped": 2, "faster-set": 3, "faster-reset": 4}
pytestmark = pytest.mark.slow  # three 32 x 32 sessions simulated and fitted (~15 s CPU each)


@pytest.fixture(scope="module", params=list(TRUTHS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[CompactPreset, SimLog, Calibration]:
    d = tmp_path_factory.mktemp(request.param)
    if TRUTHS[request.param]:
        device = str(perturbed_preset(d / "truth.yaml", TRUTHS[request.param]))
    else:
        device = "tio2-o921c"
    truth = load_preset(device)
    log = simulate_write_verify(d / "wv.h5", device, seed=SEEDS[request.param], shape=(32, 32))
    return truth, log, calibrate([log.path], base="tio2-o921c", name="fitted")


def _fitted(cal: Calibration) -> dict[str, tuple[float, float]]:
    return {e.name: (e.value, e.stderr) for e in cal.estimates}


def test_switching_rates(case: tuple[CompactPreset, SimLog, Calibration]) -> None:
    truth, _, cal = case
    fitted = _fitted(cal)
    for fit in cal.rate_fits:
        pol_name = "set" if fit.setting else "reset"
        pol = getattr(truth, pol_name)
        true_rate = float(switching_rate(pol, np.asarray(fit.v_ref)))
        t, _ = fitted[f"{pol_name}.t"]
        a, a_se = fitted[f"{pol_name}.a"]
        print(f"{truth.name} {pol_name} ({fit.t_source}): t {t / pol.t - 1:+.1%}, "
              f"rate@{fit.v_ref:.2f} V {fit.rate_ref / true_rate - 1:+.1%}, "
              f"a {a / pol.a - 1:+.1%} (se {a_se / a:.0%})")
        assert t == pytest.approx(pol.t, rel=0.10), pol_name
        assert abs(np.log(a / pol.a)) < 3 * a_se / a, (pol_name, a, pol.a, a_se)
        if fit.t_source == "disturb":
            # steps all at one amplitude: t from the disturb alone, the rate there within
            # 15 % (measured -11 % on the faster-reset truth, seed 4)
            assert fit.rate_ref == pytest.approx(true_rate, rel=0.15), pol_name
            continue
        assert fit.rate_ref == pytest.approx(true_rate, rel=0.10), pol_name
        assert "disturb" in fit.t_source  # a write-verify log holds its read map
    # the shipped preset's ISPP ramps span amplitudes on both polarities
    if truth.name == "tio2-o921c":
        assert all(f.t_fitted for f in cal.rate_fits) and len(cal.rate_fits) == 2


def test_spread_noise_and_stuck(case: tuple[CompactPreset, SimLog, Calibration]) -> None:
    truth, log, cal = case
    fitted = _fitted(cal)
    d2d, _ = fitted["variability.d2d_rate"]
    assert d2d == pytest.approx(truth.variability.d2d_rate, rel=0.35)
    k = read_factor(truth.iv.a, truth.iv.b, truth.v_read)
    r_mid = k / 250e-6
    slope, _ = fitted["read_noise.slope_pct_per_ohm"]
    intercept, _ = fitted["read_noise.intercept_pct"]
    rn = truth.read_noise
    assert slope * r_mid + intercept == pytest.approx(
        rn.slope_pct_per_ohm * r_mid + rn.intercept_pct, rel=0.15)
    # exactly the simulator's stuck cells are found (none of its slow healthy ones), and the
    # fractions split them at the LRS/HRS boundary
    found = stuck_cells(cal.logs[0]).reshape(log.stuck.shape)
    np.testing.assert_array_equal(found, log.stuck > 0)
    n = log.stuck.size
    assert fitted["stuck.lrs_rate"][0] == pytest.approx(np.sum(log.stuck == 1) / n)
    assert fitted["stuck.hrs_rate"][0] == pytest.approx(np.sum(log.stuck == 2) / n)


def test_written_preset_drives_the_simulator(
    case: tuple[CompactPreset, SimLog, Calibration], tmp_path: Path
) -> None:
    _, _, cal = case
    out = write_preset(cal, tmp_path / "my-device.yaml")
    preset = load_preset_file(out)
    assert isinstance(preset, CompactPreset)
    assert preset.set.a == pytest.approx(_fitted(cal)["set.a"][0])
    block = preset.calibration
    assert block is not None and block["logs"][0]["run_id"]
    assert set(block["fitted"]) & set(block["kept"]) == set()
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
    case: tuple[CompactPreset, SimLog, Calibration], tmp_path: Path
) -> None:
    """New sessions of the same devices (the simulator's device draws are its seed; seeds
    other than the calibration's), run on the truth and on the calibrated preset: pulses per
    cell and final errors |G - target| / target at the final read map (after every later
    cell's half-select disturb) are compared by two-sample KS tests, pooled over two
    16 x 16 sessions (one session's final errors hinge on where its few stuck cells sit:
    each pulses its row and column 25 times at the cap)."""
    truth, log, cal = case
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
