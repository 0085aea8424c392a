"""Configuration loading: valid files load, bad ones fail with file, field and range."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbarlab.config import ConfigError, SessionConfig, WriteVerifyParams, load_config
from xbarlab.crossbar import BiasScheme
from xbarlab.limits import BenchLimits, LimitViolation
from xbarlab.messages import Mvm, Pulse, Read

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_load() -> None:
    files = sorted(EXAMPLES.glob("session-*.yaml"))
    assert files, "examples/ must hold session configs"
    for f in files:
        load_config(f, SessionConfig)


def test_yaml_values_reach_the_model(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "seed: 3\nsim: {rows: 8, cols: 4}\nprotocol:\n  kind: write_verify_array\n"
        "  params: {tolerance: 0.02, pulse_scheme: v/3}\n"
    )
    cfg = load_config(f, SessionConfig)
    assert (cfg.sim.rows, cfg.sim.cols, cfg.seed) == (8, 4, 3)
    assert cfg.protocol.params.pulse_scheme is BiasScheme.THIRD  # type: ignore[union-attr]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("sim:\n  rows: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML \(line \d+"):
        load_config(f, SessionConfig)


def test_out_of_range_value_names_field_and_range(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("protocol:\n  kind: write_verify_array\n  params: {tolerance: 1.5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, SessionConfig)
    msg = str(info.value)
    assert "s.yaml" in msg and "protocol.write_verify_array.params.tolerance" in msg
    assert "less than 1" in msg


def test_unknown_field_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("sim: {rowz: 8}\n")
    with pytest.raises(ConfigError, match=r"sim\.rowz"):
        load_config(f, SessionConfig)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/x.yaml", SessionConfig)


def test_inconsistent_write_verify_ramp() -> None:
    with pytest.raises(ValueError, match="set_start"):
        WriteVerifyParams(set_start=2.0, set_max=1.5)


def test_limits_refuse_and_never_clamp() -> None:
    lim = BenchLimits(pulse_v_max=2.0, pulse_v_min=-2.5, read_v_max=0.3, pulse_width_max=1e-5)
    lim.check(Pulse((0, 0), 2.0, 1e-6))
    lim.check(Pulse((0, 0), -2.5, 1e-5))
    for bad in (Pulse((0, 0), 2.0001, 1e-6), Pulse((0, 0), -2.6, 1e-6),
                Pulse((0, 0), 1.0, 2e-5), Pulse((0, 0), float("nan"), 1e-6),
                Read(None, 0.31), Read(None, 0.0), Mvm([0.1, -0.35])):
        with pytest.raises(LimitViolation):
            lim.check(bad)
    with pytest.raises(ValueError, match="v_max"):
        BenchLimits(v_max=2.0, pulse_v_max=2.5)


@pytest.mark.parametrize("field", [
    ("limits", "pulse_width_max"), ("limits", "compliance"), ("protocol", "target", "g_high"),
    ("protocol", "params", "v_read"), ("protocol", "params", "set_max"),
    ("protocol", "params", "step"), ("protocol", "params", "width"), ("sim", "r_wire_row"),
])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_a_number_is_bad_input(tmp_path: Path, field: tuple[str, ...],
                                                   bad: float) -> None:
    """YAML's .nan and .inf are floats: a bench limit of .inf is no limit, and a target or a
    step of .inf made the estimate print numpy warnings and exit 0 or 1. Every config value
    must be a finite number: one line naming the field, exit 2."""
    import yaml

    from xbarlab.cli.protocols import load_session

    data = yaml.safe_load((EXAMPLES / "session-write-verify.yaml").read_text())
    node = data
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = bad
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"{field[-1]}: Input should be a finite number"):
        load_session("write_verify_array", path, None)
