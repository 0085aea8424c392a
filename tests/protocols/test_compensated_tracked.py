"""Tracked write-verify on wired arrays: the device law against the simulator's closed form,
the circuit model against the simulated circuit, and the true conductances the plan lands
where the plain write-verify cannot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xbarlab.analysis.array_model import CircuitArrayModel
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.protocols.pulse_law import PulseLaw
from xbarlab.protocols.tracked import (
    TrackedOutcome,
    TrackedSettings,
    read_rows,
    write_verify_tracked,
)
from xbarlab.protocols.write_verify import programming_order, write_verify_array
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import load_compact_preset
from xbarlab.sim.tio2 import integrate_pulse, switching_bound, switching_rate

PRESET = load_compact_preset("tio2-o921c")
LAW = PulseLaw.of_preset(PRESET)
WIRED = SimConfig(rows=16, cols=16, fidelity="wires", r_wire_row=1.0, r_wire_col=1.0,
                  r_source=10.0, r_sense=10.0, seed=1)
PARAMS = WriteVerifyParams()


@pytest.mark.parametrize("v", [1.3, 1.8, -1.2, -2.0])
def test_law_is_the_simulators_closed_form(v: float) -> None:
    g = np.array([120e-6, 250e-6, 450e-6])
    k = LAW.k_read
    pol = PRESET.set if v > 0 else PRESET.reset
    for delta in (0.0, 0.07):
        v_eff = abs(v) - delta
        r = integrate_pulse(k / g, switching_bound(pol, v_eff), switching_rate(pol, v_eff),
                            1e-6, setting=v > 0)
        ref = k / np.clip(r, PRESET.r_on, PRESET.r_off)
        np.testing.assert_allclose(LAW.after(g, v, 1e-6, delta), ref, rtol=1e-12)


def test_voltage_and_offset_invert_the_law() -> None:
    for g, aim in ((150e-6, 300e-6), (400e-6, 200e-6), (250e-6, 255e-6)):
        for delta in (-0.05, 0.0, 0.1):
            v = LAW.voltage_for(g, aim, 1e-6, delta, 2.4)
            assert np.sign(v) == np.sign(aim - g)
            assert float(LAW.after(g, v, 1e-6, delta)) == pytest.approx(aim, rel=2e-3)
            got = LAW.offset_of(g, float(LAW.after(g, v, 1e-6, delta)), v, 1e-6)
            assert got == pytest.approx(delta, abs=3e-3)
    assert LAW.voltage_for(100e-6, 600e-6, 1e-6, 0.0, 1.0) == 1.0  # capped
    assert LAW.offset_of(200e-6, 190e-6, 1.5, 1e-6) is None  # SET that lowered G: noise


def test_model_reads_and_de_embeds_the_wired_array() -> None:
    cfg = WIRED.model_copy(update={"noise": False})
    xbar = build_sim_crossbar(cfg)
    model = CircuitArrayModel.of_sim(cfg, PARAMS.v_read)
    reads = np.array([xbar.read([(r, c)], PARAMS.v_read, BiasScheme.GROUNDED).conductances[0]
                      for r in range(16) for c in range(16)]).reshape(16, 16)
    assert np.abs(reads / xbar.g - 1).max() > 0.1  # the wires hide the devices
    np.testing.assert_allclose(model.read_map(xbar.g), reads, rtol=1e-9)
    assert model.read_cell(xbar.g, (3, 11)) == pytest.approx(reads[3, 11], rel=1e-9)
    res = RunEngine(xbar, BenchLimits(), []).run(read_rows((16, 16), PARAMS.v_read),
                                                 protocol="map")
    np.testing.assert_allclose(res.value, reads, rtol=1e-9)  # one row read = grounded reads
    est = model.de_embed(reads, np.full((16, 16), 300e-6))
    healthy = xbar.devices.stuck == 0  # type: ignore[attr-defined]
    np.testing.assert_allclose(est[healthy], xbar.g[healthy], rtol=1e-3)
    sol = xbar.circuit.solve(xbar.devices, *[x[None] for x in _half((5, 9), 1.0)])
    row, col = model.mate_voltages(xbar.g, (5, 9))
    np.testing.assert_allclose(row, sol.v_dev[0][5, :], rtol=1e-9)
    np.testing.assert_allclose(col, sol.v_dev[0][:, 9], rtol=1e-9)


def _half(cell: tuple[int, int], v: float) -> tuple[np.ndarray, np.ndarray]:
    from xbarlab.biasing import line_biases

    return line_biases((16, 16), cell, v, BiasScheme.HALF)


def test_tracked_lands_true_conductances_where_the_plain_plan_cannot() -> None:
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (16, 16))
    tol = PARAMS.tolerance
    plain = build_sim_crossbar(WIRED)
    first = programming_order((16, 16), "row-major")[:48]  # three rows: enough to see it
    res = RunEngine(plain, BenchLimits(), []).run(
        write_verify_array(targets, PARAMS, cells=first), protocol="plain")
    assert res.value.converged >= 45  # the reads say so ...
    idx = tuple(np.array(first).T)
    plain_ok = np.abs(plain.g[idx] / targets[idx] - 1) <= tol
    assert plain_ok.mean() < 0.1  # ... the devices do not
    xbar = build_sim_crossbar(WIRED)
    limits = BenchLimits()
    plan = write_verify_tracked(targets, PARAMS, CircuitArrayModel.of_sim(WIRED, PARAMS.v_read),
                                LAW, programming_order((16, 16), "row-major"),
                                limits.pulse_v_max, limits.pulse_v_min,
                                TrackedSettings(min_width=1e-7, passes=8))
    res = RunEngine(xbar, limits, []).run(plan, protocol="tracked")
    out = res.value
    assert isinstance(out, TrackedOutcome)
    true_ok = np.abs(xbar.g / targets - 1) <= tol
    healthy = xbar.devices.stuck == 0  # type: ignore[attr-defined]
    assert true_ok[healthy].mean() >= 0.95
    est_ok = np.abs(out.final / targets - 1) <= tol  # what the plan claims, from its last map
    assert (est_ok == true_ok).mean() >= 0.95
    assert res.status.value == out.verdict()[0]
    n_ops = sum(o.n_pulses for o in out.attempts)
    assert n_ops / targets.size < 10  # pulses per cell, every pass included


def test_tracked_runs_unchanged_on_an_emulated_bench() -> None:
    from tests.emulators.benches import BOARD, bench_config, emulated, operations, run

    sim = SimConfig(rows=8, cols=8, fidelity="wires", r_wire_row=2.0, r_wire_col=2.0,
                    r_source=20.0, r_sense=20.0, noise=False, seed=7)
    bench = bench_config(BOARD)
    targets = np.random.default_rng(3).uniform(150e-6, 400e-6, (8, 8))

    def plan() -> Any:
        return write_verify_tracked(
            targets, PARAMS, CircuitArrayModel.of_sim(sim, PARAMS.v_read), LAW,
            programming_order((8, 8), "row-major"), bench.limits.pulse_v_max,
            bench.limits.pulse_v_min, TrackedSettings(min_width=1e-7, passes=3))

    ref, ref_docs = run(build_sim_crossbar(sim, compliance=bench.limits.compliance), bench,
                        plan())
    with emulated(bench, sim) as (emu, opened):
        got, docs = run(opened.crossbar, bench, plan())
        opened.close()
        assert emu.safe, emu.unsafe()
        assert emu.violations == [] and emu.server_errors == []
    assert ref.ok and got.ok, (ref.reason, got.reason)
    ops, ref_ops = operations(docs), operations(ref_docs)
    assert len(ops) == len(ref_ops)
    for a, b in zip(ops, ref_ops, strict=True):  # amplitudes from reads equal to rounding
        assert a[:4] == b[:4] and a[-1:] == b[-1:]
        np.testing.assert_allclose(np.asarray(a[4 if len(a) > 3 else 2], dtype=float),
                                   np.asarray(b[4 if len(b) > 3 else 2], dtype=float),
                                   rtol=1e-9)
    np.testing.assert_allclose(got.value.final, ref.value.final, rtol=1e-9)
    assert np.mean(np.abs(got.value.final / targets - 1) <= PARAMS.tolerance) >= 0.9


def test_pass_disturb_follows_every_planned_pulse() -> None:
    """A later cell at its voltage cap needs several pulses; each moves a finished cell of its
    row by the law at half the voltage (V/2 mates), which the plan must sum up."""
    from xbarlab.protocols.disturb_plan import Offsets, pass_disturb

    est = np.full((2, 2), 200e-6)
    aims = est.copy()
    aims[0, 1] = 400e-6
    v, width = 1.5, 1e-6

    def pulse(cell: tuple[int, int], g: float, aim: float) -> tuple[float, float, float]:
        if abs(aim - g) < 1e-6:
            return 0.0, 0.0, g
        return v, width, float(LAW.after(g, v, width))

    def mates(cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        return np.full(2, 0.5), np.full(2, 0.5)

    cells = [(0, 0), (0, 1)]
    drifts = [pass_disturb(cells, est, aims, LAW, mates, pulse, Offsets((2, 2), 0.6), k)
              for k in (1, 4)]
    for k, drift in zip((1, 4), drifts, strict=True):
        g_b, g_a = 200e-6, 200e-6
        for _ in range(k):  # the reference: the law applied pulse by pulse
            if abs(400e-6 - g_b) < 1e-6:
                break
            g_a, g_b = float(LAW.after(g_a, v / 2, width)), float(LAW.after(g_b, v, width))
        assert drift[0, 0] == pytest.approx(g_a - 200e-6, rel=1e-12)
        assert drift[0, 1] == 0.0 and drift[1, 0] == 0.0 and drift[1, 1] == 0.0
    assert drifts[1][0, 0] > 1.5 * drifts[0][0, 0] > 0
