"""`--estimate`: what a session will do to the array, predicted on the simulator; the physics
checks that refuse a session that cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.fakes import RecordingCrossbar
from xbarlab.analysis.estimate import Booking, estimate_session
from xbarlab.bench.config import OperationTiming
from xbarlab.cli.main import app
from xbarlab.config import SimConfig, WriteVerifyArrayProtocol, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.messages import Plan, Pulse, Read, Wait
from xbarlab.protocol_configs import ProtocolSession
from xbarlab.protocols.registry import plan_for
from xbarlab.sim.factory import build_sim_crossbar

runner = CliRunner()


def test_booking_counts_voltages_exposures_energy_and_time() -> None:
    def plan() -> Plan:
        yield Pulse((1, 1), 2.0, 1e-4, BiasScheme.HALF)
        yield Pulse((2, 3), -1.5, 2e-4, BiasScheme.GROUNDED)
        yield Read(((0, 0), (1, 1)), 0.2, BiasScheme.GROUNDED)
        yield Wait(0.05)

    book = Booking((4, 4), OperationTiming(read=0.01, pulse=0.02, mvm_row=0.0))
    RunEngine(RecordingCrossbar((4, 4)), BenchLimits(), [book]).run(plan(), protocol="t")
    expected_v = np.zeros((4, 4))
    expected_v[1, :] = expected_v[:, 1] = 1.0  # half-selected under V/2 at 2 V
    expected_v[1, 1] = 2.0
    expected_v[2, :] = 1.5  # the grounded scheme puts the full 1.5 V on the selected row
    expected_v[0, 0] = max(expected_v[0, 0], 0.2)
    np.testing.assert_allclose(book.v_max, expected_v)
    half = np.zeros((4, 4), dtype=int)
    half[1, :] += 1
    half[:, 1] += 1
    half[1, 1] = 0
    half[2, :] += 1
    half[2, 3] -= 1
    np.testing.assert_array_equal(book.half_selected, half)
    assert book.pulses.sum() == 2 and book.reads.sum() == 2 and book.reads[1, 1] == 1
    assert book.bench_time == pytest.approx(2 * 0.01 + 2 * 0.02 + 3e-4 + 0.05)
    assert book.status == "success"


def test_estimate_of_a_32x32_write_verify_predicts_the_run_within_10_percent() -> None:
    cfg = ProtocolSession(sim=SimConfig(rows=32, cols=32, seed=0))
    est = estimate_session(cfg)
    assert est.ok and est.seed != cfg.sim.seed  # another draw of the devices
    run_book = Booking((32, 32))
    xbar = build_sim_crossbar(cfg.sim, compliance=cfg.limits.compliance)
    result = RunEngine(xbar, cfg.limits, [run_book]).run(plan_for(cfg.protocol, (32, 32)),
                                                         protocol="write_verify_array")
    assert result.ok
    predicted, actual = int(est.booking.pulses.sum()), int(run_book.pulses.sum())
    assert abs(predicted - actual) <= 0.10 * actual, (predicted, actual)
    assert not np.array_equal(est.booking.pulses, run_book.pulses)  # not the same run
    assert est.booking.reads.sum() == pytest.approx(run_book.reads.sum(), rel=0.10)
    assert abs(est.booking.bench_time - run_book.bench_time) <= 0.10 * run_book.bench_time


def _v2_session(n: int) -> ProtocolSession:
    return ProtocolSession(sim=SimConfig(rows=n, cols=n, seed=0), protocol=WriteVerifyArrayProtocol(
        params=WriteVerifyParams(read_scheme=BiasScheme.HALF)))


def test_v2_verify_reads_on_64x64_are_refused_up_front() -> None:
    est = estimate_session(_v2_session(64))
    assert not est.ok and est.booking.status == "not simulated"
    assert "half-selected" in est.blocking[0] and "grounded" in est.blocking[0]
    assert est.booking.pulses.sum() == 0


def test_wired_64x64_with_a_50_ohm_source_is_refused() -> None:
    cfg = ProtocolSession(sim=SimConfig(rows=64, cols=64, fidelity="wires", r_wire_row=2.0,
                                        r_wire_col=2.0, r_source=50.0))
    est = estimate_session(cfg)
    assert any("line resistance" in b and "cannot be programmed" in b for b in est.blocking)
    # driven from both ends the far cells would see the start amplitude at the cap
    assert any("both ends" in b and "enough for the start amplitude" in b
               for b in est.blocking)


def test_cli_estimate_json_and_refused_run(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("sim: {rows: 64, cols: 64}\nprotocol: {kind: write_verify_array, params: "
                   "{read_scheme: v/2}}\n")
    res = runner.invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--estimate",
                              "--json"])
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["ok"] is False and data["blocking"]
    out = tmp_path / "x.h5"
    res = runner.invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "refused before any operation" in res.output
    assert not out.exists()


def test_cli_estimate_table(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("sim: {rows: 4, cols: 4}\nprotocol: {kind: endurance, cells: [[1, 1]], "
                   "cycles: 10, read_every: 5}\n")
    res = runner.invoke(app, ["run", "endurance", "-c", str(cfg), "--estimate"])
    assert res.exit_code == 0, res.output
    for text in ("pulses", "20 total", "bench time", "half-select exposures", "µJ"):
        assert text in res.output.replace("nJ", "µJ")


def test_estimate_of_a_bench_session_uses_its_array_and_its_limits() -> None:
    bench = Path(__file__).resolve().parents[2] / "examples" / "bench" / "two_smu_707b.yaml"
    cfg = ProtocolSession(backend="bench", bench=bench)  # sim section: 16 x 16 by default
    est = estimate_session(cfg)
    assert est.shape == (8, 8)  # the bench's array
    assert not est.ok and "outside the bench limits" in est.booking.reason  # 1 us < 100 us
    wide = cfg.model_copy(update={"protocol": WriteVerifyArrayProtocol(
        params=WriteVerifyParams(width=1e-4, set_start=0.8, reset_start=-0.8,
                                 tolerance=0.05))})
    est = estimate_session(wide)
    assert est.ok and est.booking.pulses.sum() > 64
    assert est.booking.timing.read == pytest.approx(0.03)


@pytest.mark.parametrize("compliance", [1e-3, 20e-3])
def test_estimate_predicts_the_compliance_hits_of_the_run(compliance: float) -> None:
    """The example session's 16 x 16 v/2 write-verify: at 1 mA every pulse hits the
    compliance (the selected column also collects its 15 half-selected cells, some 2 mA), and
    the estimate says so, close to what the run itself logs; at 20 mA nothing does."""
    from xbarlab.cli.session import ProtocolName, load_session

    example = Path(__file__).resolve().parents[2] / "examples" / "session-write-verify.yaml"
    session = load_session(example, ProtocolName.write_verify_array, None)
    limits = session.limits.model_copy(update={"compliance": compliance})
    cfg = ProtocolSession(sim=session.sim, limits=limits, protocol=session.protocol)
    est = estimate_session(cfg)
    run_book = Booking((16, 16))
    xbar = build_sim_crossbar(cfg.sim, compliance=compliance)
    RunEngine(xbar, limits, [run_book]).run(plan_for(cfg.protocol, (16, 16)),
                                            protocol="write_verify_array")
    b = est.booking
    warned = [w for w in est.warnings if "hit the current compliance" in w]
    if compliance < 2e-3:
        assert b.pulse_hits == b.pulses.sum() > 0 and warned
        assert run_book.pulse_hits == run_book.pulses.sum()  # what the run then does
    else:
        assert b.pulse_hits == run_book.pulse_hits == 0 and not warned
    assert b.read_hits == run_book.read_hits == 0
