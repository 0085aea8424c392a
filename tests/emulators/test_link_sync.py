"""A reply that arrives after the timeout is never read as the answer to a later query, and
errors an earlier session left in an instrument's error queue do not stop the next session.

Real drivers over pyvisa-py sockets to the emulators; the late reply is the ``late`` fault
(the line is processed at once, its reply sent after a delay longer than the timeout).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from tests.emulators.benches import B2900_707B, K2600_707B, SIM, bench_config, run
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.base import ReplyError
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.emulators.board import Board
from xbarlab.drivers.emulators.faults import FaultPlan
from xbarlab.drivers.emulators.server import PtyServer, TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.emulators.smu_2600 import Smu2600
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.serial_board import SerialBoard
from xbarlab.drivers.transports import SerialTransport, TransportTimeout, VisaTransport
from xbarlab.messages import Plan, Read

TIMEOUT = 1.0  # s: a loaded 2-core machine can stall an emulator thread for some 100 ms


@dataclass
class Resistors:
    """Each channel into its own resistor: a reply names its channel by its value."""

    ohms: dict[str, float]
    lock: threading.RLock = field(default_factory=threading.RLock)

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        return (ch.level / self.ohms[ch.key] if ch.output else 0.0), False

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        return volts / self.ohms[ch.key], False

    def changed(self, ch: SmuChannel) -> None:
        return None


def test_late_reply_on_one_channel_never_answers_the_other() -> None:
    """The 2636B's two channels share one link: b's reply arrives late; a's next measurement
    must be a's current, not b's."""
    plan = FaultPlan()
    plan.add("late", match="print(smub.measure.i()", delay=1.5 * TIMEOUT)
    emu = Smu2600("smu", Resistors({"smu.a": 1e3, "smu.b": 1e5}))
    with TcpServer(emu, faults=plan) as srv:
        t = VisaTransport(srv.address, timeout=TIMEOUT)
        a = Keithley2600Channel(t, "a", "smu.a")
        b = Keithley2600Channel(t, "b", "smu.b")
        a.connect("2636B")
        b.identity = a.identity
        try:
            for k, v in ((a, 0.1), (b, 0.2)):
                k.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
                k.set_voltage(v)
                k.enable()
            with pytest.raises(TransportTimeout, match=r"smu\.b.*resynchronised"):
                b.measure()
            assert plan.log
            assert a.measure().current == pytest.approx(0.1 / 1e3)  # a's, not b's 2 uA
            assert b.measure().current == pytest.approx(0.2 / 1e5)
            a.safe_state()
            b.safe_state()
            assert emu.safe
        finally:
            t.close()


def test_late_reply_to_a_scpi_query_is_never_read_later() -> None:
    """The 2450: a late :READ? reply; the output-state check after it must get the real state,
    not the stale reading."""
    plan = FaultPlan()
    plan.add("late", match=":READ?", delay=1.5 * TIMEOUT)
    emu = Smu2450("bias", Resistors({"bias": 1e4}))
    with TcpServer(emu, faults=plan) as srv:
        k = Keithley2450(VisaTransport(srv.address, timeout=TIMEOUT), "bias")
        k.connect("MODEL 2450")
        try:
            k.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
            k.set_voltage(0.5)
            k.enable()
            with pytest.raises(TransportTimeout, match=r"bias.*resynchronised"):
                k.measure()
            m = k.measure()
            assert (m.voltage, m.current) == pytest.approx((0.5, 0.5 / 1e4))
            k.disable()  # confirmed off by a reply to its own query
            assert not k.output_on and emu.safe
        finally:
            k.close()


def _reads() -> Plan:
    for cell in ((0, 0), (3, 4)):
        yield Read((cell,), 0.2, BiasScheme.GROUNDED)


def test_errors_left_by_an_earlier_session_are_cleared_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = bench_config(K2600_707B)
    with EmulatedBench(cfg, SIM) as emu:
        # the instruments keep their error queues between sessions (no power cycle)
        emu.instruments["smu"].error(-222, "Parameter data out of range")
        emu.instruments["matrix"].error(1115, "Parameter error: invalid channel list")
        bench = open_bench(emu.config(timeout=1.0))
        try:
            result, _ = run(bench.crossbar, cfg, _reads())
            assert result.ok, result.reason  # the stale errors did not stop the setup
            smu, matrix = bench.drivers["drive"], bench.drivers["matrix"]
            assert isinstance(smu, Keithley2600Channel) and isinstance(matrix, Keithley707B)
            assert smu.cleared_errors == ["-222: Parameter data out of range"]
            assert matrix.cleared_errors == ["1115: Parameter error: invalid channel list"]
            assert "left in the error queue by an earlier session" in caplog.text
        finally:
            bench.close()
        assert emu.safe


def test_late_reply_on_a_serial_link_is_dropped() -> None:
    """The XBL board on a pseudo-terminal: a late ``ERR?`` reply is dropped from the input
    (serial links keep bytes), and the next query gets its own answer."""
    plan = FaultPlan()
    plan.add("late", match="ERR?", delay=1.5 * TIMEOUT)
    with PtyServer(Board("brd", shape=(2, 3)), faults=plan) as srv:
        b = SerialBoard(SerialTransport(srv.address, timeout=TIMEOUT), (2, 3), "brd")
        b.connect("XBL")
        try:
            with pytest.raises(TransportTimeout, match=r"brd.*resynchronised"):
                b.errors()
            assert plan.log
            assert b.query("SHAPE?") == "2,3"  # not the stale '0,No error'
            assert b.errors() == []
        finally:
            b.close()


def test_b2900_errors_left_by_an_earlier_session_are_cleared() -> None:
    cfg = bench_config(B2900_707B)
    with EmulatedBench(cfg, SIM) as emu:
        emu.instruments["b29"].error(-222, "Data out of range")
        bench = open_bench(emu.config(timeout=1.0))
        try:
            result, _ = run(bench.crossbar, cfg, _reads())
            assert result.ok, result.reason
            drive = bench.drivers["drive"]
            assert isinstance(drive, KeysightB2900Channel)
            assert drive.cleared_errors == ["-222: Data out of range"]
        finally:
            bench.close()
        assert emu.safe


@pytest.mark.parametrize("garbage", ["1.00000000000000e-09\tfalse",  # 15 digits, not 16
                                     "1.000000000000000e-09\t0", "1e-09\tfalse"])
def test_plausible_garbage_is_not_read_as_a_measurement(garbage: str) -> None:
    """A reply in another format than the one configured (16 digits, true/false) is refused,
    however plausible it looks."""
    plan = FaultPlan()
    plan.add("garbage", match="print(smua.measure.i()", text=garbage)
    with TcpServer(Smu2600("smu"), faults=plan) as srv:
        a = Keithley2600Channel(VisaTransport(srv.address, timeout=TIMEOUT), "a", "smu.a")
        a.connect("2636B")
        try:
            a.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
            with pytest.raises(ReplyError, match=r"smu\.a.*smua\.measure\.i"):
                a.measure()
            assert a.measure().current == 0.0  # the next reply is its own
        finally:
            a.close()
