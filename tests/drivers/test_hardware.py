"""Opt-in hardware tests: ``pytest tests/drivers/test_hardware.py --visa-address
keithley2450=TCPIP::192.168.0.10::INSTR`` (repeatable; drivers: keithley2450, keithley2600,
keysight_b2900, keithley707b). Skipped without the option.

They never switch an output on: identity, error queue, configuration with the default bench
limits (compliance, protection), then the safe state. Leave nothing connected to the terminals.
"""

from __future__ import annotations

import pytest

from xbarlab.bench.roles import SourceMeter, SwitchMatrix
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.transports import VisaTransport
from xbarlab.limits import BenchLimits

MAKERS = {
    "keithley2450": lambda t: Keithley2450(t, "hw2450"),
    "keithley2600": lambda t: Keithley2600Channel(t, "a", "hw2600.a"),
    "keysight_b2900": lambda t: KeysightB2900Channel(t, 1, "hwB2900.1"),
    "keithley707b": lambda t: Keithley707B(t, "hw707b"),
}


def _targets(config: pytest.Config) -> list[tuple[str, str]]:
    out = []
    for item in config.getoption("--visa-address"):
        driver, sep, address = item.partition("=")
        if not sep or driver not in MAKERS:
            raise pytest.UsageError(f"--visa-address {item!r}: use DRIVER=ADDRESS with DRIVER in "
                                    f"{sorted(MAKERS)}")
        out.append((driver, address))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        targets = _targets(metafunc.config)
        metafunc.parametrize("target", targets or [pytest.param(
            None, marks=pytest.mark.skip(reason="no --visa-address given"))])


@pytest.mark.hardware
def test_identity_configuration_and_safe_state(target: tuple[str, str]) -> None:
    driver, address = target
    inst = MAKERS[driver](VisaTransport(address, timeout=5.0))
    try:
        assert inst.connect()
        assert isinstance(inst.errors(), list)
        lim = BenchLimits()
        if isinstance(inst, SourceMeter):
            inst.configure(compliance=lim.compliance, v_protect=lim.v_max, nplc=1.0)
            assert not inst.output_on
        elif isinstance(inst, SwitchMatrix):
            inst.configure()
            assert inst.closed() == set()
        assert inst.errors() == []
        inst.safe_state()
    finally:
        inst.close()
