"""A dropped link on the safe-state path, through pyvisa-py sockets to emulated instruments: the
link is reopened once (within the timeout) and the safe state reaches the instrument; if the
instrument stays unreachable, the error says so and names it."""

from __future__ import annotations

import time

import pytest

from xbarlab.drivers.base import SafeStateFailed
from xbarlab.drivers.emulators.faults import FaultPlan
from xbarlab.drivers.emulators.server import TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.transports import TransportError, VisaTransport

TIMEOUT = 1.0  # s: a loaded 2-core machine can stall an emulator thread for some 100 ms


def _smu_on(plan: FaultPlan | None = None) -> tuple[TcpServer, Smu2450, Keithley2450]:
    emu = Smu2450("bias")
    srv = TcpServer(emu, faults=plan)
    srv.start()
    k = Keithley2450(VisaTransport(srv.address, timeout=TIMEOUT), "bias")
    k.connect("MODEL 2450")
    k.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    k.set_voltage(0.5)
    k.enable()
    assert k.query(":OUTP?") == "1"  # answered once every earlier line was executed
    assert emu.channel.output and not emu.safe
    return srv, emu, k


def test_reopen_gives_a_fresh_link_after_the_instrument_closed_it() -> None:
    plan = FaultPlan()
    plan.add("drop", match="*OPC?")
    with TcpServer(Smu2450("k"), faults=plan) as srv:
        t = VisaTransport(srv.address, timeout=TIMEOUT)
        t.open()
        try:
            with pytest.raises(TransportError):
                t.query("*OPC?")
            t.reopen()
            assert t.query("*OPC?") == "1"
        finally:
            t.close()


def test_closing_one_link_leaves_the_others_open() -> None:
    """pyvisa shares one ResourceManager per library: a transport must close only its own
    resource."""
    with TcpServer(Smu2450("a")) as sa, TcpServer(Smu2450("b")) as sb:
        ta, tb = VisaTransport(sa.address, timeout=TIMEOUT), VisaTransport(sb.address,
                                                                            timeout=TIMEOUT)
        ta.open()
        tb.open()
        try:
            ta.reopen()
            ta.close()
            assert tb.query("*OPC?") == "1"
        finally:
            ta.close()
            tb.close()


def test_safe_state_reaches_an_instrument_whose_link_dropped() -> None:
    plan = FaultPlan()
    plan.add("drop", match=":ABOR")  # the link closes as the safe state begins
    srv, emu, k = _smu_on(plan)
    try:
        k.safe_state()
        assert plan.log and emu.safe and not k.output_on
    finally:
        k.close()
        srv.stop()


def test_safe_state_to_an_unreachable_instrument_fails_clearly_and_in_bounded_time() -> None:
    srv, emu, k = _smu_on()
    srv.stop()  # the instrument is gone: the link is closed and nothing listens any more
    t0 = time.monotonic()
    try:
        with pytest.raises(SafeStateFailed, match=r"bias at TCPIP::127\.0\.0\.1::\d+::SOCKET: "
                           r"safe state failed \(TransportError.*\); (reopening the link "
                           r"failed too|after reopening the link it failed again).*refused"):
            k.safe_state()
    finally:
        k.close()
    assert time.monotonic() - t0 < 3 * TIMEOUT + 1.0
    assert k.output_on  # never confirmed off
    assert emu.channel.output  # and indeed not reached
