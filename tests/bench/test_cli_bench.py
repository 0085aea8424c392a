"""`xbarlab bench check`: dry run, bad configs, identities through pyvisa-sim, unreachable."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml
from typer.testing import CliRunner

from xbarlab.bench.config import BenchConfig
from xbarlab.cli.main import app
from xbarlab.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bench" / "two_smu_707b.yaml"
SIM = ROOT / "tests" / "drivers" / "sim" / "instruments.yaml"
runner = CliRunner()


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE, BenchConfig)
    assert (cfg.rows, cfg.cols) == (8, 8) and cfg.roles.drive == "smu.a"


def test_board_example_is_valid() -> None:
    res = runner.invoke(app, ["bench", "check", str(EXAMPLE.with_name("serial_board.yaml")),
                              "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "serial_board" in res.output


def test_dry_run_reports_limits_and_pin_map() -> None:
    res = runner.invoke(app, ["bench", "check", str(EXAMPLE), "--dry-run"])
    assert res.exit_code == 0, res.output
    for text in ("pulse_width_max", "1 mA", "row 7", "col 0", "Model 2636B", "dry run"):
        assert text in res.output


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "bench.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["limits"]["compliance"] = 5.0
    data["roles"]["sense"] = "smu.c"
    res = runner.invoke(app, ["bench", "check", str(_write(tmp_path, data)), "--dry-run"])
    assert res.exit_code == 2
    assert "limits.compliance" in res.output and "bench.yaml" in res.output


def test_pin_map_size_mismatch_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["pins"]["rows"] = [1, 2, 3]
    res = runner.invoke(app, ["bench", "check", str(_write(tmp_path, data)), "--dry-run"])
    assert res.exit_code == 2 and "3 rows x 8" in res.output


def _sim_bench(identity_2450: str = "MODEL 2450") -> dict:
    lib = f"{SIM}@sim"
    return {
        "name": "sim", "rows": 2, "cols": 2,
        "instruments": {
            "smu": {"driver": "keithley2600", "address": "TCPIP::10.0.0.2::INSTR",
                    "identity": "Model 2636B", "visa_library": lib},
            "bias": {"driver": "keithley2450", "address": "TCPIP::10.0.0.3::INSTR",
                     "identity": identity_2450, "visa_library": lib},
            "mtx": {"driver": "keithley707b", "address": "TCPIP::10.0.0.5::INSTR",
                    "identity": "Model 707B", "visa_library": lib},
        },
        "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "bias", "matrix": "mtx"},
        "pins": {"rows": [1, 2], "cols": [3, 4], "bias_col": None},
    }


def test_identities_through_pyvisa_sim(tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", "check", str(_write(tmp_path, _sim_bench()))])
    assert res.exit_code == 0, res.output
    assert "expected identity" in res.output


def test_identity_mismatch_fails_the_check(tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", "check",
                              str(_write(tmp_path, _sim_bench("MODEL 2460")))])
    assert res.exit_code == 1
    assert "failed the check: bias" in res.output


def test_unreachable_instrument_is_reported(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    data = _sim_bench()
    data["instruments"]["mtx"].update(address=f"TCPIP::127.0.0.1::{port}::SOCKET",
                                      visa_library="@py", timeout=0.5)
    res = runner.invoke(app, ["bench", "check", str(_write(tmp_path, data))])
    assert res.exit_code == 1
    assert "failed the check: mtx" in res.output


def test_look_alike_identities_are_warned_about(tmp_path: Path) -> None:
    """Two 2450s that both expect "MODEL 2450" pass the check with their addresses swapped
    (the row-bias SMU would bias the columns): the check says so; the example names each one's
    serial number and gets no warning."""
    res = runner.invoke(app, ["bench", "check", str(EXAMPLE), "--dry-run"])
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    data = yaml.safe_load(EXAMPLE.read_text())
    for name in ("bias_rows", "bias_cols"):
        data["instruments"][name]["identity"] = "MODEL 2450"
    res = runner.invoke(app, ["bench", "check", str(_write(tmp_path, data)), "--dry-run"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "warning: bias_cols and bias_rows both expect the identity 'MODEL 2450'" in text


def test_serial_numbers_catch_swapped_addresses() -> None:
    """On the emulated example bench (the emulators answer the example's serial numbers), the
    two 2450s' addresses swapped fail the check for both."""
    from xbarlab.drivers.emulators.bench import EmulatedBench
    from xbarlab.drivers.registry import check_identities

    cfg = load_config(EXAMPLE, BenchConfig)
    with EmulatedBench(cfg) as emu:
        live = emu.config(timeout=5.0)
        assert all(r.ok for r in check_identities(live))
        rows, cols = live.instruments["bias_rows"], live.instruments["bias_cols"]
        swapped = live.model_copy(update={"instruments": {
            **live.instruments, "bias_rows": rows.model_copy(update={"address": cols.address}),
            "bias_cols": cols.model_copy(update={"address": rows.address})}})
        reports = {r.name: r for r in check_identities(swapped)}
    assert not reports["bias_rows"].ok and not reports["bias_cols"].ok
    assert reports["smu"].ok and reports["matrix"].ok
