"""The B2900 data output format (B2900 SCPI Command Reference, "Data Output Format" and
:FORMat): the emulator answers measurement data as the instrument does (ASCII ``+1.234568E-05``
with 7 significant digits by default; an IEEE 488.2 block of IEEE-754 values after
``:FORM:DATA REAL,32|REAL,64``, in the byte order of ``:FORM:BORD``), and the driver, which asks
for REAL,64, reads the simulator's current to the last bit through real pyvisa-py sockets.
Replies are decoded here with `struct` from the manual's layout, not with the code under test."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.emulators.benches import B2900_707B, bench_config, emulated, run
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import RunStatus
from xbarlab.drivers.base import ReplyError
from xbarlab.drivers.emulators.faults import FaultPlan
from xbarlab.drivers.emulators.server import TcpServer
from xbarlab.drivers.emulators.smu_b2900 import SmuB2900
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.transports import (
    CallbackTransport,
    MalformedBlock,
    TransportTimeout,
    VisaTransport,
)
from xbarlab.messages import Plan, Read

I_TRUE = -1.2345678901234567e-05  # A: more digits than the ASCII format carries


class ManyDigitsLoad:
    """An output that is on drives `I_TRUE` (per volt of level, so channels differ)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        return (I_TRUE * ch.level if ch.output else 0.0), False

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        return I_TRUE * volts, False

    def changed(self, ch: SmuChannel) -> None:
        return None


def _on(emu: SmuB2900, ch: int = 1, level: float = 1.0) -> None:
    for line in (f":SOUR{ch}:VOLT {level}", f":OUTP{ch} ON"):
        assert emu.handle(line) is None
    assert emu.handle(":SYST:ERR?") == '+0,"No error"'


def _errors(emu: SmuB2900) -> list[str]:
    out = []
    while (reply := emu.handle(":SYST:ERR?")) != '+0,"No error"':
        assert isinstance(reply, str)
        out.append(reply.split(",")[0])
    return out


# -- the emulator's formats ----------------------------------------------------------------------
def test_ascii_is_the_default_and_has_seven_digits() -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    _on(emu)
    assert emu.handle(":FORM:DATA?") == "ASC" and emu.handle(":FORM:BORD?") == "NORM"
    reply = emu.handle(":MEAS:CURR? (@1)")
    assert reply == "-1.234568E-05"  # the manual's form: sign, d.dddddd, E, sign, 2 digits
    assert float(reply) != I_TRUE  # the ASCII format rounds: why the driver asks for REAL,64
    assert emu.handle(":SOUR1:VOLT?") == "+1.000000E+00"  # NR3 settings stay text


@pytest.mark.parametrize(("order", "big"), [("NORM", True), ("NORMAL", True), ("SWAP", False),
                                            ("swapped", False)])
def test_real64_block_in_either_byte_order(order: str, big: bool) -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    _on(emu)
    emu.handle(":FORM:DATA REAL,64")
    emu.handle(f":FORM:BORD {order}")
    reply = emu.handle(":MEAS:CURR? (@1)")
    assert isinstance(reply, bytes) and reply[:3] == b"#18" and len(reply) == 11
    (i,) = struct.unpack(">d" if big else "<d", reply[3:])
    assert i == I_TRUE  # every bit of the simulated current
    assert emu.handle(":FORM:DATA?") == "REAL,64"
    assert emu.handle(":FORM:BORD?") == ("NORM" if big else "SWAP")
    assert _errors(emu) == []


def test_two_channels_in_one_block_and_real32() -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    _on(emu, 1, 1.0)
    _on(emu, 2, 2.0)
    emu.handle(":FORM REAL,64")  # [:DATA] is optional
    reply = emu.handle(":MEAS:CURR? (@1,2)")
    assert isinstance(reply, bytes) and reply[:4] == b"#216"
    assert struct.unpack(">2d", reply[4:]) == (I_TRUE, 2 * I_TRUE)
    emu.handle(":FORM:DATA REAL,32")
    for line in (":SOUR1:VOLT:TRIG 1", ":INIT (@1)"):  # DC shape: INIT sources the level
        assert emu.handle(line) is None
    reply = emu.handle(":FETC:SCAL:CURR? (@1)")
    assert isinstance(reply, bytes) and reply[:3] == b"#14"
    (i,) = struct.unpack(">f", reply[3:])
    assert i == pytest.approx(I_TRUE, rel=1e-7) and i != I_TRUE  # single precision


def test_reset_and_bad_format_parameters() -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    emu.handle(":FORM:DATA REAL,64")
    emu.handle(":FORM:BORD SWAP")
    emu.handle("*RST")
    assert emu.handle(":FORM:DATA?") == "ASC" and emu.handle(":FORM:BORD?") == "NORM"
    for line in (":FORM:DATA REAL,48", ":FORM:DATA REAL", ":FORM:DATA ASC,64",
                 ":FORM:DATA HEX", ":FORM:BORD BIG"):
        emu.handle(line)
    assert _errors(emu) == ["-224", "-109", "-108", "-224", "-224"]
    assert emu.handle(":FORM:DATA?") == "ASC"  # nothing refused was applied


def test_a_block_and_text_in_one_message() -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    _on(emu)
    emu.handle(":FORM:DATA REAL,64")
    reply = emu.handle(":MEAS:CURR? (@1);:SENS1:CURR:PROT:TRIP?")
    assert reply == b"#18" + struct.pack(">d", I_TRUE) + b";0"


# -- the driver on the emulator ------------------------------------------------------------------
def test_driver_reads_full_precision_through_a_callback() -> None:
    emu = SmuB2900("b", ManyDigitsLoad())
    b = KeysightB2900Channel(CallbackTransport(lambda line, q: emu.handle(line)), 2, "b29.2")
    b.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    assert emu.handle(":FORM:DATA?") == "REAL,64"
    b.set_voltage(0.7)
    b.enable()
    m = b.measure()
    assert m.current == I_TRUE * 0.7 and not m.compliance
    p = b.pulse(1.5, 2e-4)
    assert p.current == I_TRUE * 1.5
    assert b.errors() == []
    b.safe_state()
    assert emu.safe


@pytest.fixture
def served() -> Iterator[tuple[SmuB2900, FaultPlan, TcpServer]]:
    emu = SmuB2900("b", ManyDigitsLoad())
    plan = FaultPlan()
    with TcpServer(emu, faults=plan) as srv:
        yield emu, plan, srv


def _driver(srv: TcpServer) -> KeysightB2900Channel:
    b = KeysightB2900Channel(VisaTransport(srv.address, timeout=1.0), 1, "b29.1")
    b.connect("B2902A")
    b.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    b.set_voltage(0.3)
    b.enable()
    return b


def test_driver_over_pyvisa_sockets_reads_every_bit(served: Any) -> None:
    emu, _, srv = served
    b = _driver(srv)
    currents = []
    for v in (0.3, -0.2, 0.1):
        b.set_voltage(v)
        currents.append(b.measure().current)
    np.testing.assert_allclose(currents, [I_TRUE * v for v in (0.3, -0.2, 0.1)], rtol=1e-12,
                               atol=0)
    assert b.errors() == []
    b.safe_state()
    b.close()
    assert emu.safe


@pytest.mark.parametrize(("kind", "error"), [("truncate", TransportTimeout),
                                             ("garbage", MalformedBlock),
                                             ("no_reply", TransportTimeout)])
def test_a_bad_block_stops_and_the_safe_state_still_comes(served: Any, kind: Any,
                                                          error: type[Exception]) -> None:
    """A block cut short or replaced is an error naming instrument and command; the link,
    now out of step, is closed, and the safe state reopens it and confirms the output off."""
    emu, plan, srv = served
    b = _driver(srv)
    plan.add(kind, match=":MEAS:CURR?")
    with pytest.raises(error, match=r"b29\.1.*MEAS:CURR"):
        b.measure()
    assert emu.channels[1].smu.output  # still on: only the safe state may be trusted now
    b.safe_state()
    assert emu.safe and not b.output_on
    assert b.errors() == []
    b.close()


def test_no_data_is_not_a_reading() -> None:
    """The binary "no data" (NaN, the manual's counterpart of ASCII +9.91E+37) is refused."""
    emu = SmuB2900("b", ManyDigitsLoad())
    b = KeysightB2900Channel(CallbackTransport(
        lambda line, q: b"#18" + struct.pack(">d", float("nan")) if "MEAS" in line
        else emu.handle(line)), 1, "b29.1")
    b.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    with pytest.raises(ReplyError, match=r"b29\.1.*no data"):
        b.measure()


# -- the emulated bench --------------------------------------------------------------------------
B29_CFG = bench_config(B2900_707B)


def _reads() -> Plan:
    for cell in ((0, 0), (1, 1), (2, 3)):
        yield Read((cell,), 0.2, BiasScheme.GROUNDED)


@pytest.mark.parametrize("kind", ["truncate", "garbage"])
def test_bench_run_with_a_bad_block_fails_and_ends_safe(kind: Any) -> None:
    plan = FaultPlan()
    plan.add(kind, match=":MEAS:CURR? (@2)", after=2)  # the sense channel's second reading
    with emulated(B29_CFG, faults={"b29": plan}, timeout=1.0) as (emu, bench):
        result, _docs = run(bench.crossbar, B29_CFG, _reads())
        bench.close()
        safe, unsafe = emu.safe, emu.unsafe()
        assert emu.server_errors == []
    assert plan.log, "the fault never fired"
    # the reason names the bad block even where a later step met the link it closed
    assert result.status is RunStatus.FAILED and ":MEAS:CURR? (@2)" in result.reason, \
        result.reason
    assert safe, unsafe
