"""The PyMeasure Keithley 2450 as xbarlab's SMU role: limits before PyMeasure, the SCPI it
sends against xbarlab's 2450 emulator (2450 Reference Manual command set), whole runs on an
emulated bench compared with the simulator and with xbarlab's own 2450 driver."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pymeasure")

from tests.emulators.benches import LIMITS, SIM, bench_config, emulated, run, sim_backend
from xbarlab.bench.kinds import DriverContext
from xbarlab.config import PatternTarget, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.base import SettingError
from xbarlab.drivers.emulators.server import TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.limits import SmuLimits
from xbarlab.drivers.pymeasure_adapter import PyMeasureSmu, make_driver
from xbarlab.drivers.transports import VisaTransport
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import write_verify_array

LINK_TIMEOUT = 5.0  # s: emulators answer in ms, but a loaded 2-core machine can stall them


class Recorder:
    """A stand-in PyMeasure instrument that records every member used (nothing may be used
    when a check refuses)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "calls":
            self.calls.append((name, value))
        object.__setattr__(self, name, value)

    def write(self, line: str) -> None:
        self.calls.append(("write", line))

    def ask(self, line: str) -> str:
        self.calls.append(("ask", line))
        return '0,"No error"' if "ERR" in line else "0"

    def enable_source(self) -> None:
        self.calls.append(("enable_source", None))

    def disable_source(self) -> None:
        self.calls.append(("disable_source", None))

    source_enabled = False


@pytest.mark.parametrize("volts", [3.0000001, -3.5, 210.0, math.nan, math.inf])
def test_levels_beyond_the_bench_limit_never_reach_pymeasure(volts: float) -> None:
    inst = Recorder()
    smu = PyMeasureSmu(inst, "pm", v_max=3.0)
    with pytest.raises(SettingError):
        smu.set_voltage(volts)
    smu.compliance = 1e-3
    with pytest.raises(SettingError):
        smu.arm_pulse(volts, 1e-3)
    assert inst.calls == []


def test_rounding_of_pymeasure_format_cannot_pass_a_limit() -> None:
    # PyMeasure sends source levels with %g (6 digits): 1.2345675 would go out as 1.23457
    inst = Recorder()
    smu = PyMeasureSmu(inst, "pm", v_max=1.2345678)
    with pytest.raises(SettingError, match=r"would be sent as 1\.23457"):
        smu.set_voltage(1.2345677)
    assert inst.calls == []
    smu.set_voltage(1.23456)
    assert inst.calls == [("source_voltage", 1.23456)]


def test_compliance_is_refused_not_clamped() -> None:
    # PyMeasure's compliance_current uses truncated_range: 2 A would become 1.05 A silently
    inst = Recorder()
    smu = PyMeasureSmu(inst, "pm", v_max=3.0)
    for bad in (2.0, 0.0, -1e-3):
        with pytest.raises(SettingError):
            smu.configure(bad, 3.0, 1.0)
    with pytest.raises(SettingError):
        smu.configure(1e-3, 3.0, 50.0)  # nplc
    assert inst.calls == []


def test_no_output_or_pulse_before_configure() -> None:
    inst = Recorder()
    smu = PyMeasureSmu(inst, "pm", v_max=3.0)
    with pytest.raises(Exception, match="configure"):
        smu.enable()
    with pytest.raises(Exception, match="configure"):
        smu.arm_pulse(1.0, 1e-3)
    assert inst.calls == []


@pytest.fixture
def emulated_2450() -> Any:
    emu = Smu2450("pm")
    srv = TcpServer(emu, 0)
    srv.start()
    try:
        yield emu, srv.address
    finally:
        srv.stop()


def test_scpi_pymeasure_sends_is_the_2450s(emulated_2450: Any) -> None:
    """Configure, levels, output, read and a pulse through PyMeasure's driver over pyvisa-py to
    the emulator: every line it sent is a 2450 command (the emulator's error queue stays
    empty: an unknown header is -113), and the emulator's state is what was asked."""
    emu, address = emulated_2450
    link = VisaTransport(address, timeout=LINK_TIMEOUT)
    ctx = DriverContext(name="pm", channel="", address=address, visa_library="@py",
                        timeout=2.0, transport=link, v_max=3.0, compliance=1e-3, shape=(1, 1),
                        limits=SmuLimits(v_max=3.0, i_max=1e-3, width_max=2e-3))
    smu = make_driver(ctx)
    try:
        assert "MODEL 2450" in smu.connect("MODEL 2450")
        smu.configure(1e-3, 3.0, 0.5)
        assert smu.output_on is False
        assert emu.channel.limit == pytest.approx(1e-3)
        assert emu.protection_name == "PROT5" and emu.nplc == 0.5 and emu.ascii_digits == 16
        smu.set_voltage(0.2)
        smu.enable()
        m = smu.measure()  # a query: the emulator has executed every line before it
        assert emu.channel.output and emu.channel.level == pytest.approx(0.2)
        assert m.voltage == 0.2 and m.compliance is False and m.current == 0.0  # open circuit
        smu.pulse(1.5, 2e-3)
        assert smu.errors() == []
        assert emu.channel.output and emu.channel.level == 0.0
        smu.safe_state()
        assert emu.safe and smu.output_on is False
        sent = [line for line in emu.received if line != ":SYST:ERR?"]
        assert ":SOUR:VOLT:LEV 0.2" in sent and "OUTPUT ON" in sent and ":READ?" in sent
        assert ":SOUR:VOLT:ILIM 0.001" in sent
        assert emu.queue.entries == []
    finally:
        smu.close()


def _bench(drive_driver: str) -> dict[str, Any]:
    return {
        "name": "pymeasure-8x8", "rows": 8, "cols": 8, "settle": 0.0,
        "instruments": {
            "drive": {"driver": drive_driver, "address": "-", "identity": "MODEL 2450"},
            "sense": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
            "bias": {"driver": drive_driver, "address": "-", "identity": "MODEL 2450"},
            "matrix": {"driver": "keithley707b", "address": "-", "identity": "Model 707B"},
        },
        "roles": {"drive": "drive", "sense": "sense", "bias_row": "bias", "matrix": "matrix"},
        "pins": {"slot": 1, "col_slot": 2, "rows": list(range(1, 9)),
                 "cols": list(range(1, 9)), "drive": "A", "sense": "B", "bias_row": "C",
                 "bias_col": None},
        "limits": {**LIMITS, "pulse_width_max": 2e-3},
    }


WV = WriteVerifyParams(width=1e-3, tolerance=0.1, step=0.05, set_start=0.6, reset_start=-0.6,
                       max_pulses=40, max_pulses_at_limit=5)


def test_write_verify_through_pymeasure_matches_xbarlab_driver_and_simulator() -> None:
    """The same write-verify on the emulated bench with the PyMeasure driver as drive and bias
    SMU, with xbarlab's own 2450 driver there, and on the simulator: same operations, same
    final map, the bench safe afterwards."""
    targets = target_map(PatternTarget(), (8, 8))
    results = {}
    for driver in ("pymeasure_keithley2450", "keithley2450"):
        cfg = bench_config(_bench(driver))
        with emulated(cfg, SIM, timeout=LINK_TIMEOUT) as (emu, bench):
            got, _ = run(bench.crossbar, cfg, write_verify_array(targets, WV))
            bench.close()
            assert emu.safe, emu.unsafe()
            assert emu.violations == [] and emu.server_errors == []
        assert got.ok, got.reason
        results[driver] = got.value
    cfg = bench_config(_bench("keithley2450"))
    ref, _ = run(sim_backend(cfg), cfg, write_verify_array(targets, WV))
    pm, own = results["pymeasure_keithley2450"], results["keithley2450"]
    assert pm.n_pulses == own.n_pulses == ref.value.n_pulses > 64
    np.testing.assert_allclose(pm.final, own.final, rtol=1e-9)
    np.testing.assert_allclose(pm.final, ref.value.final, rtol=1e-6)


def test_read_map_through_pymeasure_bias() -> None:
    cfg = bench_config(_bench("pymeasure_keithley2450"))
    with emulated(cfg, SIM, timeout=LINK_TIMEOUT) as (emu, bench):
        got, _ = run(bench.crossbar, cfg, read_map((8, 8), 0.2, BiasScheme.HALF))
        bench.close()
        assert emu.safe
    assert got.ok, got.reason
    ref, _ = run(sim_backend(cfg), cfg, read_map((8, 8), 0.2, BiasScheme.HALF))
    np.testing.assert_allclose(got.value, ref.value, rtol=1e-6)
    assert np.all(got.value > 0)


@pytest.mark.parametrize("kind", ["garbage", "no_reply", "error", "drop", "trip"])
def test_faults_on_the_pymeasure_smu_stop_the_run_and_leave_the_bench_safe(kind: str) -> None:
    """A fault on the PyMeasure drive SMU mid-run (a reply garbled or withheld, an instrument
    error, a dropped link, a compliance trip): the run stops or logs it, the bench ends in its
    safe state (the safe state reopens a dropped link once)."""
    from xbarlab.documents import RunStatus
    from xbarlab.drivers.emulators.faults import FaultPlan

    cfg = bench_config(_bench("pymeasure_keithley2450"))
    plan = FaultPlan()
    plan.add(kind, match=":READ?" if kind != "drop" else "", after=40,
             queries=kind in ("garbage", "no_reply"))
    targets = target_map(PatternTarget(), (8, 8))
    with emulated(cfg, SIM, faults={"drive": plan}, timeout=2.0) as (emu, bench):
        got, docs = run(bench.crossbar, cfg, write_verify_array(targets, WV))
        bench.close()
        assert emu.safe, emu.unsafe()
        assert emu.server_errors == []
    assert plan.log, "the fault never fired"
    if kind == "trip":  # a compliance trip is a measurement flag, logged; the run goes on
        from xbarlab.documents import Event
        assert any(isinstance(d, Event) and d.compliance.any() for d in docs)
    else:
        assert got.status is RunStatus.FAILED, (kind, got.reason)


def test_bench_check_reads_the_pymeasure_smus_identity() -> None:
    from xbarlab.drivers.emulators.bench import EmulatedBench
    from xbarlab.drivers.registry import check_identities

    cfg = bench_config(_bench("pymeasure_keithley2450"))
    with EmulatedBench(cfg, SIM) as emu:
        reports = {r.name: r for r in check_identities(emu.config(timeout=LINK_TIMEOUT))}
        sent = list(emu.instruments["drive"].received)
    assert all(r.ok for r in reports.values()), reports
    assert "MODEL 2450" in (reports["drive"].identity or "")
    assert sent == ["*IDN?"]  # bench check sends nothing else


def test_bench_smu_limits_bound_compliance_pulses_and_widths() -> None:
    from xbarlab.drivers.limits import SmuLimits

    inst = Recorder()
    limits = SmuLimits(v_max=3.0, i_max=1e-3, width_min=1e-3, width_max=2e-3,
                       pulse_v_min=-2.0, pulse_v_max=1.5)
    smu = PyMeasureSmu(inst, "pm", v_max=3.0, limits=limits)
    with pytest.raises(SettingError):
        smu.configure(2e-3, 3.0, 1.0)  # above the bench compliance
    smu.compliance = 1e-3
    for volts, width in ((1.6, 1e-3), (-2.1, 1e-3), (1.0, 3e-3)):
        with pytest.raises(SettingError):
            smu.arm_pulse(volts, width)
    assert inst.calls == []
