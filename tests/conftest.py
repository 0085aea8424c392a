"""Root conftest: command-line options pytest must know before collection; hypothesis profile."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure reproduces); locally, HYPOTHESIS_PROFILE=dev
# explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--visa-address", action="append", default=[], metavar="DRIVER=ADDRESS",
        help="opt-in hardware tests on a real instrument, e.g. "
             "keithley2450=TCPIP::192.168.0.10::INSTR (repeatable; see tests/drivers/"
             "test_hardware.py)",
    )
