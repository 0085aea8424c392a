"""Root conftest: only the command-line options pytest must know before collection."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--visa-address", action="append", default=[], metavar="DRIVER=ADDRESS",
        help="opt-in hardware tests on a real instrument, e.g. "
             "keithley2450=TCPIP::192.168.0.10::INSTR (repeatable; see tests/drivers/"
             "test_hardware.py)",
    )
