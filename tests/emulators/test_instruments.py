"""Emulated instruments on their own, through plain pyvisa-py sockets and a pyserial pty: the
command languages as the manuals define them (SCPI short/long forms, optional nodes, error
queue codes; TSP statements and error codes; the XBL board protocol), malformed input answered
through the error queue, clean start/stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarlab.drivers.emulators.board import Board
from xbarlab.drivers.emulators.matrix_707b import Matrix707B
from xbarlab.drivers.emulators.scpi import ErrorQueue
from xbarlab.drivers.emulators.server import PortInUse, PtyServer, TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.emulators.smu_2600 import Smu2600
from xbarlab.drivers.emulators.smu_b2900 import SmuB2900
from xbarlab.drivers.emulators.state import SmuChannel


@pytest.fixture
def visa() -> Iterator[Any]:
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    yield rm
    rm.close()


def _open(rm: Any, srv: TcpServer) -> Any:
    return rm.open_resource(srv.address, read_termination="\n",
                            write_termination="\n", timeout=1000)


def _drain_scpi(res: Any) -> list[str]:
    out: list[str] = []
    for _ in range(30):
        reply = res.query(":SYST:ERR?")
        if reply.lstrip("+").startswith("0,"):
            return out
        out.append(reply)
    raise AssertionError("error queue never empties")


# -- SCPI ----------------------------------------------------------------------------------------
def test_2450_short_long_forms_and_optional_nodes(visa: Any) -> None:
    smu = Smu2450("k")
    with TcpServer(smu) as srv:
        res = _open(visa, srv)
        for line in (":SOUR:VOLT 0.25", ":SOURCE1:VOLTAGE:LEVEL:IMMEDIATE:AMPLITUDE 0.5",
                     "sour:volt:lev 0.125"):
            res.write(line)
            assert _drain_scpi(res) == []
        assert float(res.query(":SOUR:VOLT?")) == 0.125
        # a node must be its short or its long form, nothing in between
        res.write(":SOURC:VOLT 1")
        res.write(":SOUR:VOLTA 1")
        errs = _drain_scpi(res)
        assert [e.split(",")[0] for e in errs] == ["-113", "-113"]
        assert smu.channel.level == 0.125
        res.close()


@pytest.mark.parametrize(("line", "code"), [
    (":SOUR:VOLT 300", "-222"),       # beyond +-210 V
    (":SOUR:VOLT:ILIM 2", "-222"),    # beyond 1.05 A
    (":SOUR:VOLT abc", "-104"),       # not a number
    (":SOUR:VOLT", "-109"),           # missing parameter
    (":OUTP ON, OFF", "-108"),        # one parameter too many
    (":OUTP MAYBE", "-224"),          # not a boolean
    (":SOUR:VOLT:PROT PROT3", "-224"),  # not a protection level
    (":FOO:BAR?", "-113"),
    (":SOUR2:VOLT 1", "-114"),        # the 2450 has one source
    (":SOUR:VOLT\t\"1", "-102"),      # unterminated string
])
def test_2450_rejects_what_the_instrument_rejects(visa: Any, line: str, code: str) -> None:
    smu = Smu2450("k")
    with TcpServer(smu) as srv:
        res = _open(visa, srv)
        res.write(line)
        errs = _drain_scpi(res)
        assert [e.split(",")[0] for e in errs] == [code]
        assert smu.channel.level == 0.0 and not smu.channel.output  # nothing changed
        res.close()


def test_2450_protection_clamps_the_output_at_its_level() -> None:
    """2450 Reference Manual, :SOURce[1]:<function>:PROTection[:LEVel] and its :TRIPped?:
    overvoltage protection restricts the maximum voltage the instrument can source."""
    smu = Smu2450("k")
    for line in (":SOUR:VOLT:PROT PROT5", ":SOUR:VOLT 8", ":OUTP ON"):
        assert smu.handle(line) is None
    assert smu.handle(":SYST:ERR?") == '0,"No error"'  # accepted, not refused
    assert smu.channel.level == 5.0  # what the output applies
    assert smu.handle(":SOUR:VOLT:PROT:TRIP?") == "1"
    smu.handle(":SOUR:VOLT -4.9")
    assert smu.channel.level == -4.9 and smu.handle(":SOUR:VOLT:PROT:TRIP?") == "0"
    smu.handle(":SOUR:VOLT -7")
    assert smu.channel.level == -5.0


def test_scpi_error_queue_overflow_and_cls() -> None:
    q = ErrorQueue(size=3)
    for code in (-113, -222, -104, -102, -109):
        q.push(code, "x")
    assert [c for c, _ in q.entries] == [-113, -222, -350]
    assert q.pop()[0] == -113
    smu = Smu2450("k")
    smu.handle(":NOPE")
    smu.handle("*CLS")
    assert smu.handle(":SYST:ERR?") == '0,"No error"'


def test_scpi_several_commands_in_one_message() -> None:
    smu = Smu2450("k")
    assert smu.handle(":SOUR:VOLT 0.3;:SOUR:VOLT?;*OPC?") == "3.000000E-01;1"


def test_2450_trigger_model_pulse_reaches_the_load() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.lock = threading.RLock()
            self.pulses: list[tuple[float, float]] = []

        def measure(self, ch: SmuChannel) -> tuple[float, bool]:
            return 0.0, False

        def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
            assert ch.output, "the trigger model's source block switched the output on"
            self.pulses.append((volts, width))
            return 1e-4, False

        def changed(self, ch: SmuChannel) -> None:
            return None

    load = Recorder()
    smu = Smu2450("k", load)
    for line in (":OUTP OFF", ":SOUR:VOLT 1.5", ":SENS:CURR:NPLC 0.01", ':TRIG:LOAD "Empty"',
                 ":TRIG:BLOC:SOUR:STAT 1, ON", ":TRIG:BLOC:DEL:CONS 2, 0.002",
                 ':TRIG:BLOC:MEAS 3, "defbuffer1"', ":TRIG:BLOC:SOUR:STAT 4, OFF", ":INIT",
                 "*WAI"):
        assert smu.handle(line) is None
    # block by block: the delay, then the reading over its aperture (0.01 NPLC at 50 Hz)
    assert load.pulses == [(1.5, 0.002), (1.5, 0.0002)]
    assert not smu.channel.output  # block 4 switched it off again
    smu.handle(":FORM:ASC:PREC 4")
    assert smu.handle(':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ') == "1.500E+00,1.000E-04"
    assert smu.handle(":SYST:ERR?") == '0,"No error"'
    smu.handle(":INIT")  # the model stays loaded: it fires again
    assert len(load.pulses) == 4
    smu.handle(':TRIG:LOAD "Empty"')  # unloaded: nothing left to fire
    smu.handle(":INIT")
    assert len(load.pulses) == 4 and smu.handle(":SYST:ERR?").startswith("-221")


def test_2450_limit_trip_during_a_pulse_latches_the_trip_flag() -> None:
    smu = Smu2450("k")
    smu.inject("trip")  # the reading inside the pulse hits the current limit
    for line in (":SOUR:VOLT:ILIM 1e-3", ":SOUR:VOLT 1", ':TRIG:LOAD "Empty"',
                 ":TRIG:BLOC:SOUR:STAT 1, ON", ':TRIG:BLOC:MEAS 2, "defbuffer1"',
                 ":TRIG:BLOC:SOUR:STAT 3, OFF", ":INIT"):
        smu.handle(line)
    assert smu.handle(":SOUR:VOLT:ILIM:TRIP?") == "1"
    assert smu.handle(':TRAC:DATA? 1, 1, "defbuffer1", READ') == "1.000000E-03"


def test_2450_pulse_at_a_clamped_level_reads_back_the_clamped_level() -> None:
    smu = Smu2450("k")
    for line in (":SOUR:VOLT:PROT PROT5", ":SOUR:VOLT 8", ':TRIG:LOAD "Empty"',
                 ":TRIG:BLOC:SOUR:STAT 1, ON", ':TRIG:BLOC:MEAS 2, "defbuffer1"',
                 ":TRIG:BLOC:SOUR:STAT 3, OFF", ":INIT"):
        smu.handle(line)
    assert smu.handle(':TRAC:DATA? 1, 1, "defbuffer1", SOUR') == "5.000000E+00"


def test_b2900_channels_ranges_and_errors(visa: Any) -> None:
    b = SmuB2900("b")
    with TcpServer(b) as srv:
        res = _open(visa, srv)
        for line in (":SOUR2:FUNC:MODE VOLT", ":SOUR2:VOLT:RANG:AUTO OFF", ":SOUR2:VOLT:RANG 3",
                     ":SOUR2:VOLT 2.5", ":SENS2:CURR:PROT 1e-4", ":OUTP2 ON"):
            res.write(line)
        assert _drain_scpi(res) == []
        assert b.channels[2].smu.level == 2.5 and b.channels[2].smu.output
        assert not b.channels[1].smu.output
        res.write(":SOUR2:VOLT 25")  # beyond the 20 V range
        res.write(":SOUR3:VOLT 1")  # no channel 3
        res.write(":MEAS:CURR? (@5)")
        codes = [e.split(",")[0] for e in _drain_scpi(res)]
        assert codes == ["-222", "-113", "-224"]
        assert res.query(":SYST:ERR?") == '+0,"No error"'
        res.close()


# -- TSP -----------------------------------------------------------------------------------------
def _tsp_errors(res: Any) -> list[tuple[int, str]]:
    n = int(float(res.query("print(errorqueue.count)")))
    out = []
    for _ in range(n):
        code, msg, _sev, _node = res.query(
            "print(errorqueue.next())").split("\t")
        out.append((int(float(code)), msg))
    return out


def test_2600_statements_and_error_codes(visa: Any) -> None:
    k = Smu2600("k")
    with TcpServer(k) as srv:
        res = _open(visa, srv)
        for line in ("smub.reset()", "smub.source.func = smub.OUTPUT_DCVOLTS",
                     "smub.source.autorangev = smub.AUTORANGE_OFF", "smub.source.rangev = 3",
                     "smub.source.levelv = -1.5", "smub.source.limiti = 1e-3",
                     "smub.source.output = smub.OUTPUT_ON"):
            res.write(line)
        assert _tsp_errors(res) == []
        assert k.smus["b"].ch.level == -1.5 and k.smus["b"].ch.output
        assert res.query("print(smub.measure.i(), smub.source.compliance)") == (
            "0.00000e+00\tfalse")
        res.write("smub.source.levelv = 30")  # beyond 20 V range
        res.write("smub.source.levelv 1")  # syntax
        res.write("smuc.reset()")  # nil global
        res.write("smub.source.compliance = true")  # read-only
        codes = [c for c, _ in _tsp_errors(res)]
        assert codes == [-222, -285, -286, -286]
        assert k.smus["b"].ch.level == -1.5
        assert res.query("print(errorqueue.next())").startswith(
            "0.00000e+00\tQueue Is Empty")
        res.close()


KIPULSE = "print(ConfigPulseVMeasureI(smua, 0, 1, 1e-3, {ton}, 1e-3, 2, smua.nvbuffer1, 1))"
FIXED = ("smua.source.rangev = 2", "smua.source.rangei = 1e-3", "smua.measure.rangev = 2",
         "smua.measure.rangei = 1e-3",
         "smua.measure.nplc = 0.001", "smua.measure.autozero = smua.AUTOZERO_ONCE")


def test_2600_kipulse_refuses_any_autorange() -> None:
    """2600B Reference Manual, KIPulse: the functions run only with every range fixed (the
    manual's example fixes source and measure ranges); they answer f = false and a message."""
    k = Smu2600("k")
    assert k.handle("print(InitiatePulseTest(1))").startswith("false\t")
    for n in range(4):  # each range left on autorange in turn (setting a range fixes it)
        k.handle("smua.reset()")
        for line in FIXED[:n] + FIXED[n + 1:]:
            assert k.handle(line) is None
        reply = k.handle(KIPULSE.format(ton=1e-3)) or ""
        assert reply.startswith("false\t") and "autorange must be disabled" in reply, FIXED[n]
    assert k.errors == []  # a refusal is the f, msg reply, not an error-queue entry


def test_2600_kipulse_too_short_pulses_and_runs() -> None:
    k = Smu2600("k")
    for line in FIXED:
        k.handle(line)
    short = k.handle(KIPULSE.format(ton=50e-6)) or ""
    assert short.startswith("false\tPulse too short")
    k.handle("smua.measure.nplc = 0.01")  # 200 us reading does not fit in 150 us
    assert (k.handle(KIPULSE.format(ton=150e-6)) or "").startswith("false\tPulse too short")
    k.handle("smua.measure.nplc = 0.001")
    assert (k.handle(KIPULSE.format(ton=1e-4)) or "").startswith("true\t")
    k.handle("smua.source.levelv = 0.3")
    assert (k.handle("print(InitiatePulseTest(1))") or "").startswith("true\t")
    assert k.handle("print(smua.nvbuffer1.n)") == "2.00000e+00"
    assert k.handle("print(smua.nvbuffer1.readings[3])") == "nil"
    # the train ends at its bias (0 V) with the output on, whatever the level was before
    assert k.handle("print(smua.source.output, smua.source.levelv)") == (
        "1.00000e+00\t0.00000e+00")
    k.handle("smua.nvbuffer1.appendmode = 1")  # only with an empty buffer
    assert [c for c, _ in k.errors] == [-222]


def test_2600_level_beyond_a_fixed_range_errs_when_the_output_goes_on() -> None:
    """2600B "Range considerations": a level out of range with autorange off gives no error
    until the output is turned on."""
    k = Smu2600("k")
    for line in ("smua.source.rangev = 2", "smua.source.levelv = 5"):
        k.handle(line)
    assert k.errors == []
    k.handle("smua.source.output = smua.OUTPUT_ON")
    assert [c for c, _ in k.errors] == [-222] and not k.smus["a"].ch.output


def test_2600_reading_beyond_a_fixed_measure_range_is_the_overflow_marker() -> None:
    k = Smu2600("k")
    k.smus["a"].autorangei = 0
    k.smus["a"].rangei = 1e-6
    assert k.smus["a"].reading(2e-6) == 9.91e37 and k.smus["a"].reading(1e-6) == 1e-6


def test_2450_replies_in_its_ascii_format() -> None:
    """:FORM:ASC:PREC (2450 Reference Manual): significant digits, 0 = automatic (default,
    restored by *RST), 1 .. 16, MIN 0 / MAX 16; the manual's example -6.999999881E-01 at 10."""
    k = Smu2450("k")
    k.handle(":SOUR:VOLT -0.6999999881")
    assert k.handle(":FORM:ASC:PREC?") == "0"
    assert k.handle(":SOUR:VOLT?") == "-7.000000E-01"  # automatic: 7 digits (modelled)
    k.handle(":FORM:ASC:PREC 10")
    assert k.handle(":SOUR:VOLT?") == "-6.999999881E-01"
    k.handle(":FORM:ASC:PREC MAX")
    assert float(k.handle(":SOUR:VOLT?") or "") == -0.6999999881
    for bad in ("17", "-1", "2.5", "ON"):
        k.handle(f":FORM:ASC:PREC {bad}")
    assert [k.queue.pop()[0] for _ in range(4)] == [-222, -222, -224, -104]
    assert k.handle(":FORM:ASC:PREC?") == "16"
    k.handle("*RST")
    assert k.handle(":FORM:ASC:PREC?") == "0"


def test_tsp_print_follows_format_asciiprecision() -> None:
    """The reference manuals' example (2.54 at 10 and 3 digits), the defaults (2600B: 6,
    707B: 10), the range 1 .. 16 (-222 outside, value kept), reset by reset() only."""
    k = Smu2600("k")
    assert k.handle("print(format.asciiprecision, 2.54)") == "6.00000e+00\t2.54000e+00"
    assert k.handle("print(0.0000123456789)") == "1.23457e-05"
    k.handle("format.asciiprecision = 10")
    assert k.handle("print(2.54)") == "2.540000000e+00"
    k.handle("format.asciiprecision = 3")
    assert k.handle("print(2.54)") == "2.54e+00"
    k.handle("format.asciiprecision = 16")
    assert float(k.handle("print(0.1)") or "") == 0.1  # 16 digits read back exactly
    for bad in ("0", "17", "2.5", "true", '"16"'):
        k.handle(f"format.asciiprecision = {bad}")
    assert [c for c, _ in k.errors] == [-222] * 5
    assert k.handle("print(format.asciiprecision)") == "1.600000000000000e+01"
    k.handle("smua.reset()")  # a channel reset keeps the print format
    assert k.handle("print(format.asciiprecision)") == "1.600000000000000e+01"
    k.handle("reset()")
    assert k.handle("print(format.asciiprecision)") == "6.00000e+00"
    m = Matrix707B("m")
    assert m.handle("print(format.asciiprecision)") == "1.000000000e+01"
    m.handle("format.asciiprecision = 4")
    m.handle("*RST")
    assert m.handle("print(2.54)") == "2.540000000e+00"


def test_707b_channel_lists(visa: Any) -> None:
    seen: list[tuple[frozenset[str], frozenset[str]]] = []
    m = Matrix707B("m", slots=(1, 2), on_change=lambda old, new: seen.append((old, new)))
    with TcpServer(m) as srv:
        res = _open(visa, srv)
        res.write('channel.close("1A01:1A03,2H12")')
        assert res.query("*OPC?") == "1"
        assert res.query('print(channel.getclose("allslots"))') == (
            "1A01;1A02;1A03;2H12")
        assert res.query('print(channel.getclose("slot2"))') == "2H12"
        for bad in ('channel.close("3A01")', 'channel.close("1A13")', 'channel.close("1I01")',
                    'channel.close("")', "channel.close(1)"):
            res.write(bad)
        assert [c for c, _ in _tsp_errors(res)] == [1115] * 5
        res.write('channel.open("allslots")')
        assert res.query('print(channel.getclose("allslots"))') == "nil"
        res.close()
    assert seen[0][1] == frozenset({"1A01", "1A02", "1A03", "2H12"})
    assert seen[-1][1] == frozenset()


# -- board over a pty -----------------------------------------------------------------------------
def test_board_over_a_pseudo_terminal() -> None:
    import serial

    board = Board("b", shape=(2, 3))
    with PtyServer(board) as srv:
        port = serial.Serial(srv.address, 115200, timeout=1.0)
        try:
            def ask(line: str) -> str:
                port.write((line + "\r\n").encode())
                return port.read_until(b"\n").decode().strip()

            assert ask("*IDN?") == board.identity
            assert ask("SHAPE?") == "2,3"
            assert ask("READ 0.2") == "ERR 4 nothing selected"
            assert ask("ROW 0 0.1") == "OK" and ask("COL 2 Z") == "OK"
            assert ask("ROW 2 0") == "ERR 3 out of range: index 2 not in 0..1"
            assert ask("ROW 0 9").startswith("ERR 3")  # beyond the board's 5 V
            assert ask("FROB 1").startswith("ERR 1")
            assert ask("SEL 1 1") == "OK" and ask("READ 0.2") == "0.0,0"
            assert ask("ERR?").startswith("4,") and ask("ERR?").startswith("3,")
            assert ask("OFF") == "OK" and board.safe
        finally:
            port.close()


# -- robustness and lifecycle ---------------------------------------------------------------------
EMULATORS = [lambda: Smu2450("k"), lambda: SmuB2900("b"), lambda: Smu2600("t"),
             lambda: Matrix707B("m"), lambda: Board("x", shape=(2, 2))]


@pytest.mark.parametrize("make", EMULATORS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                              max_size=40) | st.sampled_from([
                                  ":SOUR:VOLT", "smua.source.levelv =", 'channel.close("',
                                  "print(", "((", "ROW 0", "*IDN", ":OUTP ON;;", "[1]=2"]),
                      max_size=8))
def test_malformed_input_never_crashes(make: object, lines: list[str]) -> None:
    inst = make()  # type: ignore[operator]
    for line in lines:
        inst.handle(line)  # must not raise
    assert "," in inst.handle("*IDN?")


def test_server_stops_cleanly_and_port_in_use_names_the_alternative(visa: Any) -> None:
    before = threading.active_count()
    srv = TcpServer(Smu2450("k"))
    srv.start()
    res = _open(visa, srv)
    assert "2450" in res.query("*IDN?")
    with pytest.raises(PortInUse, match="port 0 to let the system pick"):
        TcpServer(Smu2450("k2"), srv.port).start()
    res.close()
    srv.stop()
    assert not srv.running and threading.active_count() == before
    with pytest.raises(OSError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", srv.port), timeout=0.5).close()


def test_b2900_init_switches_the_output_on_unless_auto_on_is_off() -> None:
    b = SmuB2900("b")
    assert b.handle(":INIT (@1)") is None and b.channels[1].smu.output  # default: auto on
    b.handle(":OUTP2:ON:AUTO OFF")
    b.handle(":INIT (@2)")
    assert not b.channels[2].smu.output
    assert b.handle(":SYST:ERR?") == '-221,"Settings conflict; output is off"'
