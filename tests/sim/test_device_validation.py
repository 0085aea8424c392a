"""The tio2-o921c SimCrossbar against the Sherbrooke lab: write-verify with the lab's settings,
disturb under V/2 in column-major order, stuck devices (figures: tio2-sherbrooke-2023)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Plan, Read
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import WriteVerifyOutcome, programming_order, write_verify
from xbarlab.sim.circuit import IdealCircuit
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import StatisticalPreset, load_compact_preset, load_statistical_preset
from xbarlab.sim.tio2 import TiO2Devices

DEVICE = "tio2-o921c"
LAB = load_statistical_preset("tio2-sherbrooke-2023")
N_ARRAYS = 8


def lab_params(lab: StatisticalPreset) -> WriteVerifyParams:
    """The write-verify settings of the lab's measurements (dead_xbar_*.csv headers)."""
    b = lab.bench
    assert b is not None
    return WriteVerifyParams(
        v_read=b.v_read, set_start=b.set_start, set_max=b.set_max, reset_start=b.reset_start,
        reset_min=b.reset_min, step=b.step, width=b.width, tolerance=b.tolerance,
        pulse_scheme=BiasScheme.HALF, read_scheme=BiasScheme.GROUNDED,
    )


def program_and_track(
    targets: np.ndarray, params: WriteVerifyParams, order: str
) -> Plan:
    """Write-verify every cell in `order`; after each: one fresh read of it and a full map."""
    shape = targets.shape
    outcomes: list[WriteVerifyOutcome] = []
    fresh: list[float] = []
    maps = [(yield from read_map(shape, params.v_read, params.read_scheme))]
    for cell in programming_order(shape, order):
        outcomes.append((yield from write_verify(cell, float(targets[cell]), params)))
        r = yield Read((cell,), params.v_read, params.read_scheme, tag="after")
        fresh.append(float(r.conductances[0]))
        maps.append((yield from read_map(shape, params.v_read, params.read_scheme)))
    return outcomes, fresh, np.array(maps)


@dataclass
class ArrayRun:
    order: list[tuple[int, int]]
    targets: np.ndarray
    outcomes: list[WriteVerifyOutcome]
    fresh: np.ndarray  # read right after each cell converged, in programming order
    maps: np.ndarray  # (1 + cells, M, N): before, then after each cell
    stuck: np.ndarray  # (M, N)


@pytest.fixture(scope="module")
def lab_runs() -> list[ArrayRun]:
    params = lab_params(LAB)
    runs = []
    for seed in range(N_ARRAYS):
        xbar = build_sim_crossbar(SimConfig(rows=8, cols=8, device=DEVICE, seed=seed))
        assert isinstance(xbar.devices, TiO2Devices)
        targets = np.random.default_rng(100 + seed).uniform(
            LAB.window.g_min, LAB.window.g_max, (8, 8)
        )
        res = RunEngine(xbar, BenchLimits()).run(
            program_and_track(targets, params, "column-major"), protocol="validation", seed=seed
        ).raise_for_status()
        outcomes, fresh, maps = res.value
        runs.append(ArrayRun(programming_order((8, 8), "column-major"), targets, outcomes,
                             np.array(fresh), maps, xbar.devices.stuck))
    return runs


def test_write_verify_converges_in_tens_of_pulses_with_the_lab_settings(
    lab_runs: list[ArrayRun],
) -> None:
    healthy = [o for run in lab_runs for o in run.outcomes if run.stuck[o.cell] == 0]
    converged = np.mean([o.converged for o in healthy])
    pulses = np.array([o.n_pulses for o in healthy])
    assert converged >= 0.99
    assert np.median(pulses) <= 50 and np.percentile(pulses, 90) <= 100


def test_tuning_error_std_matches_the_published_fit(lab_runs: list[ArrayRun]) -> None:
    # One programming pass samples each device's systematic offset once, so across devices
    # the spread is the published tuning std combined with the offset std.
    err, target = [], []
    for run in lab_runs:
        for i, o in enumerate(run.outcomes):
            if run.stuck[o.cell] == 0 and o.converged:
                err.append((run.fresh[i] - o.target) / o.target * 100)
                target.append(o.target)
    e, t = np.array(err), np.array(target)
    for lo, hi in ((100e-6, 233e-6), (233e-6, 367e-6), (367e-6, 500e-6)):
        m = (t >= lo) & (t < hi)
        g_mid = (lo + hi) / 2
        published = np.hypot(LAB.tuning.std_pct(g_mid), LAB.offset.std_pct)
        assert m.sum() > 100
        assert e[m].std() == pytest.approx(published, rel=0.2), (lo, hi)


def _disturb_by_k(runs: list[ArrayRun], k_max: int) -> dict[int, np.ndarray]:
    """G change of each healthy device after k later programmings, clipped at +-40 uS like
    the lab data."""
    out: dict[int, list[float]] = {k: [] for k in range(1, k_max + 1)}
    for run in runs:
        for i, cell in enumerate(run.order):
            if run.stuck[cell]:
                continue
            g_done = run.maps[i + 1][cell]
            for k in range(1, k_max + 1):
                if i + 1 + k < len(run.maps):
                    out[k].append(run.maps[i + 1 + k][cell] - g_done)
    clip = LAB.disturb.clip
    return {k: np.clip(np.array(v), -clip, clip) for k, v in out.items()}


def test_column_major_v_half_disturb_matches_the_measured_statistics(
    lab_runs: list[ArrayRun],
) -> None:
    d = _disturb_by_k(lab_runs, 30)
    measured_std = dict(zip(LAB.disturb.k, LAB.disturb.std, strict=True))
    for k in range(1, 31):
        assert d[k].mean() < 0, k
        assert 0.5 <= d[k].std() / measured_std[k] <= 2.0, (k, d[k].std(), measured_std[k])
    early = np.mean([d[k].std() for k in (1, 2, 3)])
    late = np.mean([d[k].std() for k in range(21, 31)])
    assert late > 1.5 * early


def test_stuck_devices_ignore_write_verify() -> None:
    p = load_compact_preset(DEVICE).model_copy(
        update={"stuck": load_compact_preset(DEVICE).stuck.model_copy(
            update={"lrs_rate": 0.5, "hrs_rate": 0.5})}
    )
    dev = TiO2Devices((4, 4), p, np.random.default_rng(0))
    xbar = SimCrossbar(dev, IdealCircuit(), seed=1)
    before = dev.g.copy()
    targets = np.full((4, 4), 300e-6)
    params = lab_params(LAB).model_copy(update={"max_pulses": 60})
    res = RunEngine(xbar, BenchLimits()).run(
        program_and_track(targets, params, "row-major"), protocol="stuck"
    ).raise_for_status()
    outcomes, _, _ = res.value
    assert not any(o.converged for o in outcomes)
    assert all(o.n_pulses == 60 for o in outcomes)
    np.testing.assert_array_equal(dev.g, before)


def test_stuck_rates_and_levels_match_the_preset() -> None:
    xbar = build_sim_crossbar(SimConfig(rows=120, cols=120, device=DEVICE, seed=11))
    assert isinstance(xbar.devices, TiO2Devices)
    stuck = xbar.devices.stuck
    # read the stuck cells and a sample of healthy ones (reading all 14 400 is slow)
    picked = np.argwhere(stuck > 0).tolist() + np.argwhere(stuck == 0)[::50].tolist()
    r = xbar.read([tuple(c) for c in picked], 0.2, BiasScheme.GROUNDED)
    g = np.full(stuck.shape, np.nan)
    g[tuple(np.array(picked).T)] = r.conductances
    n = stuck.size
    s = LAB.stuck
    for state, rate in ((1, s.lrs_rate), (2, s.hrs_rate)):
        count = int((stuck == state).sum())
        assert abs(count - rate * n) < 4 * np.sqrt(n * rate * (1 - rate)), state
    lrs = g[stuck == 1]
    assert lrs.mean() == pytest.approx(s.lrs_mean, abs=4 * s.lrs_std / np.sqrt(lrs.size))
    assert lrs.std() == pytest.approx(s.lrs_std, rel=0.25)
    hrs = np.sort(g[stuck == 2])
    assert hrs.min() >= s.hrs_low * 0.99 and hrs.max() <= s.hrs_high * 1.01
    # Kolmogorov-Smirnov distance to U(hrs_low, hrs_high), 1 % critical value
    cdf = (hrs - s.hrs_low) / (s.hrs_high - s.hrs_low)
    ecdf = np.arange(1, hrs.size + 1) / hrs.size
    assert np.max(np.abs(ecdf - cdf)) < 1.63 / np.sqrt(hrs.size)
    healthy = g[(stuck == 0) & np.isfinite(g)]
    assert healthy.min() >= 0.99 * 100e-6 and healthy.max() <= 1.01 * 500e-6
