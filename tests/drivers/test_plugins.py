"""Instrument plugins: a lab's package adds an instrument kind through the entry-point group
``xbarlab.instruments`` without touching xbarlab. The package here is a real distribution
(a ``.dist-info`` with ``entry_points.txt``) made in a temporary folder on ``sys.path``."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.emulators.benches import K2600_707B, SIM, bench_config, emulated, run, sim_backend
from xbarlab.bench.config import BenchConfig
from xbarlab.bench.kinds import GROUP, PluginError, plugin_kind, plugin_kinds, refresh_plugins
from xbarlab.cli.main import app
from xbarlab.config import ConfigError, validate_config
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.registry import describe_drivers, open_bench
from xbarlab.drivers.transports import TranscriptTransport
from xbarlab.protocols.read_map import read_map

LAB_MODULE = '''
"""A lab's driver package: its 2450 (xbarlab's SCPI driver, its own name and identity
check), a board kind whose driver is incomplete, and an entry point that is not a kind."""
from xbarlab.bench.kinds import DriverContext, InstrumentKind
from xbarlab.drivers.keithley2450 import Keithley2450


class LabSmu(Keithley2450):
    """The lab's SMU: xbarlab's 2450 driver with a lab-specific label."""


def make(ctx: DriverContext) -> LabSmu:
    return LabSmu(ctx.transport, ctx.name)


def make_emulator(name, load=None, serial="0"):
    from xbarlab.drivers.emulators.smu_2450 import Smu2450
    return Smu2450(name, load, serial=serial)


class HalfBoard:
    name = "half"
    def connect(self, expect=None):
        return "HALF"


KIND = InstrumentKind(role="smu", driver=make, emulator=make_emulator,
                      description="the lab's Keithley 2450")
HALF = InstrumentKind(role="board", driver=lambda ctx: HalfBoard(), link="serial")
NOT_A_KIND = {"role": "smu"}
'''


@pytest.fixture
def lab_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "labdrivers_xbl.py").write_text(LAB_MODULE)
    info = tmp_path / "labdrivers_xbl-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labdrivers-xbl\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{GROUP}]
        lab2450 = labdrivers_xbl:KIND
        halfboard = labdrivers_xbl:HALF
        notakind = labdrivers_xbl:NOT_A_KIND
        broken = labdrivers_xbl_missing:KIND
        keithley2450 = labdrivers_xbl:KIND
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh_plugins()
    yield tmp_path
    refresh_plugins()


def _with_bias(driver: str) -> dict:
    insts = dict(K2600_707B["instruments"])
    insts["bias_rows"] = {"driver": driver, "address": "-", "identity": "MODEL 2450"}
    return {**K2600_707B, "instruments": insts}


def test_plugins_are_found_and_bad_ones_reported(lab_package: Path) -> None:
    kinds = plugin_kinds()
    assert plugin_kind("lab2450").role == "smu"
    assert plugin_kind("lab2450").source == "labdrivers_xbl:KIND"
    assert "lab2450" in describe_drivers()
    assert isinstance(kinds["notakind"], PluginError)
    assert "not an InstrumentKind" in str(kinds["notakind"])
    assert isinstance(kinds["broken"], PluginError) and "failed to load" in str(kinds["broken"])
    assert "built-in" in str(kinds["keithley2450"])  # a plugin cannot replace a built-in
    assert plugin_kind("pymeasure_keithley2450").role == "smu"  # xbarlab's own entry point


def test_bench_config_accepts_a_plugin_kind(lab_package: Path) -> None:
    cfg = bench_config(_with_bias("lab2450"))
    assert cfg.instruments["bias_rows"].driver == "lab2450"


def test_unknown_driver_is_one_clear_line(lab_package: Path, tmp_path: Path) -> None:
    data = _with_bias("nope")
    with pytest.raises(ConfigError, match=r"unknown driver 'nope'.*lab2450"):
        validate_config(data, BenchConfig)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["bench", "check", str(path), "--dry-run"])
    assert res.exit_code == 2, res.output
    assert "unknown driver 'nope'" in res.output and "Traceback" not in res.output
    assert "keithley2450" in res.output and "lab2450" in res.output


def test_a_plugin_of_the_wrong_role_cannot_be_an_smu(lab_package: Path) -> None:
    with pytest.raises(ConfigError, match="is not an SMU"):
        validate_config(_with_bias("halfboard"), BenchConfig)


def test_a_driver_that_lacks_its_roles_methods_is_refused(lab_package: Path) -> None:
    cfg = validate_config({"name": "b", "rows": 2, "cols": 2, "roles": {"board": "b"},
                           "instruments": {"b": {"driver": "halfboard", "address": "-",
                                                 "identity": "HALF"}}}, BenchConfig)
    with pytest.raises(PluginError, match=r"is not a Board: it lacks .*configure"):
        open_bench(cfg, lambda name, c: TranscriptTransport([]))


def test_plugin_smu_on_the_emulated_bench_reads_what_the_simulator_reads(
        lab_package: Path) -> None:
    """The plugin's driver and its emulator: a whole read map under V/2 through them."""
    cfg = bench_config(_with_bias("lab2450"))
    with emulated(cfg, SIM, timeout=5.0) as (emu, bench):
        assert type(bench.drivers["bias_row"]).__name__ == "LabSmu"
        got, _ = run(bench.crossbar, cfg, read_map((8, 8), 0.2, BiasScheme.HALF))
        bench.close()
        assert emu.safe, emu.unsafe()
    ref, _ = run(sim_backend(cfg), cfg, read_map((8, 8), 0.2, BiasScheme.HALF))
    assert got.ok, got.reason
    np.testing.assert_allclose(got.value, ref.value, rtol=1e-6)
