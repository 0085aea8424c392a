"""VISA plumbing through real pyvisa: pyvisa-sim instruments and pyvisa-py sockets."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from xbarlab.drivers.base import ReplyError
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.transports import TransportError, TransportTimeout, VisaTransport

SIM = Path(__file__).parent / "sim" / "instruments.yaml"
LIB = f"{SIM}@sim"


def sim(address: str, timeout: float = 0.5) -> VisaTransport:
    return VisaTransport(address, visa_library=LIB, timeout=timeout)


def test_2450_through_pyvisa_sim() -> None:
    t = sim("TCPIP::10.0.0.3::INSTR")
    k = Keithley2450(t, "smu")
    assert "MODEL 2450" in k.connect("MODEL 2450")
    k.configure(compliance=1e-4, v_protect=3.0, nplc=0.5)
    assert float(t.query(":SOUR:VOLT:ILIM?")) == pytest.approx(1e-4)  # the setter was accepted
    assert float(t.query(":SENS:CURR:NPLC?")) == pytest.approx(0.5)
    k.set_voltage(0.2)
    assert float(t.query(":SOUR:VOLT?")) == pytest.approx(0.2)
    k.enable()
    m = k.measure()
    assert (m.voltage, m.current, m.compliance) == (0.2, 1.5e-5, False)
    assert k.errors() == []
    k.safe_state()
    assert float(t.query(":SOUR:VOLT?")) == 0.0
    k.close()


def test_b2900_through_pyvisa_sim() -> None:
    t = sim("TCPIP::10.0.0.7::INSTR")
    b = KeysightB2900Channel(t, 1, "b29")
    assert "B2902A" in b.connect("B2902A")
    b.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    assert float(t.query(":SOUR1:VOLT:RANG?")) == 20.0  # the range covering 3 V
    assert float(t.query(":SENS1:CURR:PROT?")) == pytest.approx(1e-3)
    b.enable()
    m = b.measure()  # a binary block with a newline byte inside, read whole through pyvisa
    assert (m.current, m.compliance) == (3.2687716957239224e-05, True)
    assert struct.pack(">d", m.current) == b"?\x01#Eg\n\x1b\x7f"  # the bytes the YAML sends
    assert b.errors() == []
    b.safe_state()
    b.close()


def test_707b_through_pyvisa_sim() -> None:
    m = Keithley707B(sim("TCPIP::10.0.0.5::INSTR"), "mtx")
    m.connect("707B")
    m.configure()
    assert m.closed() == set() and m.errors() == []
    m.close()


def test_truncated_reply_through_pyvisa_is_a_clear_error() -> None:
    # the "broken" 2450 answers :READ? with the voltage only (a truncated reply)
    t = sim("TCPIP::10.0.0.9::INSTR")
    k = Keithley2450(t, "smu9")
    k.connect("MODEL 2450")
    with pytest.raises(ReplyError, match=r"smu9.*:READ\? \"defbuffer1\".*2 values"):
        k.measure()
    with pytest.raises(ReplyError, match=r"smu9.*SYST:ERR.*ERROR"):
        k.errors()  # an unknown query: pyvisa-sim answers ERROR
    k.close()


def test_no_reply_times_out_within_the_timeout() -> None:
    t = sim("TCPIP::10.0.0.3::INSTR", timeout=0.3)
    t.open()
    t0 = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"10.0.0.3.*0.3 s"):
        t.query(":OUTP OFF")  # a write-only command: no reply ever comes
    assert time.monotonic() - t0 < 2.0
    t.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_closed_tcp_port_errors_quickly() -> None:
    t = VisaTransport(f"TCPIP::127.0.0.1::{_closed_port()}::SOCKET", timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(TransportError, match=r"127.0.0.1"):
        t.open()
        t.query("*IDN?")
    assert time.monotonic() - t0 < 3.0


def test_silent_tcp_instrument_times_out_within_the_timeout() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    conns: list[socket.socket] = []
    th = threading.Thread(target=lambda: conns.append(srv.accept()[0]), daemon=True)
    th.start()
    t = VisaTransport(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=0.3)
    k = Keithley2450(t, "smu")
    t0 = time.monotonic()
    try:
        with pytest.raises(TransportTimeout, match=r"smu.*\*IDN\?"):
            k.connect("MODEL 2450")
        assert time.monotonic() - t0 < 2.0
    finally:
        t.close()
        for c in conns:
            c.close()
        srv.close()


def test_tcp_socket_round_trip() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve() -> None:
        c, _ = srv.accept()
        with c:
            data = b""
            while b"\n" not in data:
                data += c.recv(64)
            assert data == b"*IDN?\n"
            c.sendall(b"KEITHLEY INSTRUMENTS,MODEL 2450,1,1\n")
            c.recv(64)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = VisaTransport(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=1.0)
    try:
        assert Keithley2450(t, "smu").connect("MODEL 2450").startswith("KEITHLEY")
    finally:
        t.close()
        srv.close()


def test_an_open_that_blocks_is_abandoned_within_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # VXI-11 opens to a silent host block far beyond the I/O timeout in pyvisa-py; the
    # transport gives up after its timeout and closes the late resource when it arrives.
    import pyvisa

    closed = threading.Event()

    class SlowResource:
        def close(self) -> None:
            closed.set()

    class SlowRM:
        def __init__(self, lib: str) -> None:
            pass

        def open_resource(self, address: str, **kw: object) -> SlowResource:
            time.sleep(1.0)
            return SlowResource()

        def close(self) -> None:
            pass

    monkeypatch.setattr(pyvisa, "ResourceManager", SlowRM)
    t = VisaTransport("TCPIP::192.0.2.1::INSTR", timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"192\.0\.2\.1.*no answer within 0\.2 s"):
        t.open()
    assert time.monotonic() - t0 < 0.8
    assert closed.wait(3.0)


class _Abort(Exception):
    """Stands for an abort raised by a signal handler while an I/O call waits."""


class _AbortingResource:
    def write(self, line: str) -> None:
        raise _Abort("SIGTERM received")

    def query(self, line: str) -> str:
        raise _Abort("SIGTERM received")


def test_an_abort_inside_an_io_call_is_not_rewrapped_as_a_link_error() -> None:
    t = VisaTransport("TCPIP::127.0.0.1::1::SOCKET")
    t._res = _AbortingResource()
    with pytest.raises(_Abort):
        t.query("*IDN?")
    with pytest.raises(_Abort):
        t.write(":OUTP OFF")
    t._res = None


def test_link_failures_are_still_transport_errors() -> None:
    class Broken:
        def query(self, line: str) -> str:
            raise ConnectionResetError("reset by peer")

    t = VisaTransport("TCPIP::127.0.0.1::1::SOCKET")
    t._res = Broken()
    with pytest.raises(TransportError, match=r"reset by peer"):
        t.query("*IDN?")
    t._res = None
