"""`compensate: tracked` in a session config: the CLI's plan is the tracked write-verify, aimed
through the session's circuit model, and it lands the true conductances where the gains-only
compensation does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from xbarlab.analysis.physics_checks import circuit_gains, circuit_tracking
from xbarlab.cli.main import app
from xbarlab.config import SessionConfig
from xbarlab.engine import RunEngine
from xbarlab.log.reader import LogReader
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.registry import plan_for
from xbarlab.protocols.tracked import TrackedOutcome
from xbarlab.sessions import build_backend

N = 16


def _session(compensate: bool | str) -> dict:
    return {
        "backend": "sim", "seed": 2,
        "sim": {"rows": N, "cols": N, "device": "tio2-o921c", "fidelity": "wires",
                "r_wire_row": 1.0, "r_wire_col": 1.0, "r_source": 10.0, "r_sense": 10.0,
                "seed": 4},
        "protocol": {"kind": "write_verify_array", "compensate": compensate,
                     "target": {"pattern": "gradient", "g_low": 150e-6, "g_high": 400e-6},
                     "params": {"width": 1e-7, "tolerance": 0.01, "max_pulses": 300}},
    }


def _true_share(compensate: bool | str) -> tuple[float, object]:
    cfg = SessionConfig.model_validate(_session(compensate))
    xbar = build_backend(cfg)
    plan = plan_for(cfg.protocol, xbar.shape, None, circuit_gains(cfg), circuit_tracking(cfg))
    result = RunEngine(xbar, cfg.limits, []).run(plan, protocol="t")
    targets = target_map(cfg.protocol.target, xbar.shape)  # type: ignore[union-attr]
    g = xbar.g  # type: ignore[attr-defined]
    ok = np.abs(g / targets - 1) <= cfg.protocol.params.tolerance  # type: ignore[union-attr]
    return float(ok.mean()), result.value


def test_tracked_config_lands_true_conductances_where_gains_alone_do_not() -> None:
    tracked, outcome = _true_share("tracked")
    gains, _ = _true_share(True)
    assert isinstance(outcome, TrackedOutcome)
    assert tracked >= 0.9
    assert tracked > gains + 0.2, (tracked, gains)


def test_circuit_tracking_only_for_tracked_sessions() -> None:
    assert circuit_tracking(SessionConfig.model_validate(_session(True))) is None
    assert circuit_tracking(SessionConfig.model_validate(_session(False))) is None
    inputs = circuit_tracking(SessionConfig.model_validate(_session("tracked")))
    assert inputs is not None and inputs.law is not None
    assert (inputs.v_min, inputs.v_max) == (-3.0, 2.5)


EXAMPLE = Path(__file__).parents[2] / "examples" / "session-write-verify-wired.yaml"


def test_cli_runs_the_tracked_example_session_and_logs_it(tmp_path: Path) -> None:
    cfg = EXAMPLE
    out = tmp_path / "t.h5"
    res = CliRunner().invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out",
                                   str(out)])
    assert res.exit_code in (0, 3), res.output
    assert "Traceback" not in res.output
    with LogReader(out) as log:
        end = log.end
        assert end is not None and end.n_events > N * N


def test_an_unknown_compensation_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(_session("tracking")))
    res = CliRunner().invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out",
                                   str(tmp_path / "t.h5")])
    assert res.exit_code == 2
    assert "compensate" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "t.h5").exists()


def test_a_tracked_session_without_grounded_reads_is_refused_before_any_operation(
        tmp_path: Path) -> None:
    data = _session("tracked")
    data["protocol"]["params"]["read_scheme"] = "floating"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["run", "write_verify_array", "-c", str(cfg), "--out",
                                   str(tmp_path / "t.h5")])
    assert res.exit_code == 2
    assert "grounded" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "t.h5").exists()
