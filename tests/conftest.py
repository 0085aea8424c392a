"""Root conftest: command-line options pytest must know before collection; hypothesis profile;
Ctrl-C as a user has it."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure reproduces); locally, HYPOTHESIS_PROFILE=dev
# explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A suite started as a background job of a script (`pytest ... &`) inherits SIGINT ignored,
# and so would every process it starts; the tests of Ctrl-C need it as a user at a terminal
# has it (Python's KeyboardInterrupt, which child processes get back as the default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# A supervisor whose session ended unsafe keeps trying dead links for 10 minutes; the emulators
# of the tests are gone for good, and their ports are soon another test's: a few seconds.
os.environ.setdefault("XBARLAB_SAFETY_RETRY_S", "3")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--visa-address", action="append", default=[], metavar="DRIVER=ADDRESS",
        help="opt-in hardware tests on a real instrument, e.g. "
             "keithley2450=TCPIP::192.168.0.10::INSTR (repeatable; see tests/drivers/"
             "test_hardware.py)",
    )
