"""Every driver command against a scripted transcript: the exact lines sent, replies parsed.

The expected lines are written out by hand from the instruments' manuals (never built from the
drivers' own `Cmd` tables), so a typo in a driver fails here.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest

from xbarlab.bench.roles import Crosspoint, SourceMeter, SwitchMatrix
from xbarlab.drivers.base import (
    IdentityMismatch,
    InstrumentError,
    ReplyError,
    SafeStateFailed,
    SettingError,
    SmuLimits,
)
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.transports import (
    REOPEN,
    MalformedBlock,
    TranscriptMismatch,
    TranscriptTransport,
    TransportError,
    TransportTimeout,
)

IDN_2450 = "KEITHLEY INSTRUMENTS,MODEL 2450,04455001,1.7.3"


def run(script: list[Any], make: Callable[[TranscriptTransport], Any]) -> tuple[Any, Any]:
    t = TranscriptTransport(script)
    drv = make(t)
    return t, drv


# -- Keithley 2450 -----------------------------------------------------------------------------
CONFIG_2450 = [
    ("*RST", None), ("*CLS", None), (":FORM:ASC:PREC 16", None), (":SOUR:FUNC VOLT", None),
    (":SOUR:VOLT:READ:BACK ON", None), (":SOUR:VOLT 0", None),
    (":SOUR:VOLT:ILIM 0.0001", None), (":SOUR:VOLT:PROT PROT5", None),
    (':SENS:FUNC "CURR"', None), (":SENS:CURR:RANG:AUTO ON", None),
    (":SENS:CURR:NPLC 1", None), (":OUTP?", "0"),
]


def test_2450_is_a_source_meter_and_constructor_does_no_io() -> None:
    t, k = run([], lambda t: Keithley2450(t, "smu"))
    assert isinstance(k, SourceMeter) and t.sent == [] and not t.is_open


def test_2450_configure_sets_compliance_and_protection() -> None:
    t, k = run(CONFIG_2450, lambda t: Keithley2450(t, "smu"))
    k.configure(compliance=1e-4, v_protect=3.0, nplc=1.0)
    assert t.done


def test_2450_protection_is_the_smallest_level_above_v_max() -> None:
    script = [*CONFIG_2450[:7], (":SOUR:VOLT:PROT PROT20", None), *CONFIG_2450[8:]]
    t, k = run(script, lambda t: Keithley2450(t, "smu", SmuLimits(v_max=10.5)))
    k.configure(compliance=1e-4, v_protect=10.5, nplc=1.0)
    assert t.done


def test_2450_protection_beyond_180_v_is_refused() -> None:
    _t, k = run([], lambda t: Keithley2450(t, "smu", SmuLimits(v_max=200.0)))
    with pytest.raises(SettingError, match=r"180"):
        k.configure(compliance=1e-4, v_protect=200.0, nplc=1.0)


def test_2450_output_on_requires_compliance_first() -> None:
    t, k = run([], lambda t: Keithley2450(t, "smu"))
    with pytest.raises(InstrumentError, match=r"compliance"):
        k.enable()
    assert t.sent == []


def test_2450_level_measure_and_off() -> None:
    script = [*CONFIG_2450, (":SOUR:VOLT 0.2", None), (":OUTP ON", None),
              (':READ? "defbuffer1", SOUR, READ', "2.000000000000000E-01,-1.234500000000000E-05"),
              (":SOUR:VOLT:ILIM:TRIP?", "1"), (":SOUR:VOLT 0", None), (":OUTP OFF", None),
              (":OUTP?", "0")]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)
    k.set_voltage(0.2)
    k.enable()
    m = k.measure()
    assert (m.voltage, m.current, m.compliance) == (0.2, -1.2345e-5, True)
    k.disable()
    assert t.done and not k.output_on


def pulse_2450(level: str, delay: str) -> list:
    """The trigger-model pulse (2450 Reference Manual: :TRIGger:LOAD "Empty" clears the model;
    source-output, constant-delay and measure blocks; :TRACe:DATA? reads the buffer)."""
    return [(":OUTP OFF", None), (f":SOUR:VOLT {level}", None),
            (":SENS:CURR:RANG 0.0001", None), (":SENS:CURR:NPLC 0.01", None),
            (':TRAC:CLE "defbuffer1"', None), (':TRIG:LOAD "Empty"', None),
            (":TRIG:BLOC:SOUR:STAT 1, ON", None), (f":TRIG:BLOC:DEL:CONS 2, {delay}", None),
            (':TRIG:BLOC:MEAS 3, "defbuffer1"', None), (":TRIG:BLOC:SOUR:STAT 4, OFF", None)]


RESTORE_2450 = [(':TRIG:LOAD "Empty"', None), (":SOUR:VOLT 0", None),
                (":SENS:CURR:RANG:AUTO ON", None), (":SENS:CURR:NPLC 1", None)]


def test_2450_pulse_through_the_trigger_model() -> None:
    script = [*CONFIG_2450, (":OUTP ON", None), *pulse_2450("-1.5", "0.0008"),
              (":INIT", None), ("*WAI", None), ("*OPC?", "1"),
              (':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ',
               "-1.499999000000000E+00,-2.500000000000000E-05"),
              (":SOUR:VOLT:ILIM:TRIP?", "0"), *RESTORE_2450, (":OUTP ON", None)]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)
    k.enable()
    m = k.pulse(-1.5, 1e-3)  # 0.8 ms delay + the 0.2 ms reading at its end
    assert t.done and (m.voltage, m.current, m.compliance) == (-1.499999, -2.5e-5, False)
    assert k.output_on and k.voltage == 0.0


def test_2450_pulse_reports_the_level_the_device_saw_and_a_limit_trip() -> None:
    """The reading's source element is the readback (a level clamped by the protection shows
    as clamped); a trip of the current limit during the pulse is compliance."""
    script = [*CONFIG_2450, *pulse_2450("2.5", "0.0008"), (":INIT", None), ("*WAI", None),
              ("*OPC?", "1"), (':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ',
                               "2.000000000000000E+00,1.000000000000000E-04"),
              (":SOUR:VOLT:ILIM:TRIP?", "1"), *RESTORE_2450]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)
    m = k.pulse(2.5, 1e-3)
    assert t.done and (m.voltage, m.current, m.compliance) == (2.0, 1e-4, True)


def test_2450_pulse_that_fails_still_unloads_the_trigger_model_and_restores() -> None:
    script = [*CONFIG_2450, *pulse_2450("1", "0.0008"), (":INIT", None), ("*WAI", None),
              ("*OPC?", TransportTimeout("no reply")), (REOPEN, None), ("*IDN?", IDN_2450),
              *RESTORE_2450]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.identity = IDN_2450
    k.configure(1e-4, 3.0, 1.0)
    with pytest.raises(TransportTimeout, match=r"resynchronised"):
        k.pulse(1.0, 1e-3)
    assert t.done


def test_2450_output_off_before_a_pulse_stays_off_after_it() -> None:
    script = [*CONFIG_2450, *pulse_2450("1", "0.0008"), (":INIT", None), ("*WAI", None),
              ("*OPC?", "1"), (':TRAC:DATA? 1, 1, "defbuffer1", SOUR, READ',
                               "1.000000000000000E+00,1.000000000000000E-06"),
              (":SOUR:VOLT:ILIM:TRIP?", "0"), *RESTORE_2450]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)  # confirmed off
    k.pulse(1.0, 1e-3)
    assert t.done and k.output_on  # not confirmed off by a query since the pulse


@pytest.mark.parametrize("width", [1e-4, 2.0])
def test_2450_pulse_width_outside_its_range_is_refused(width: float) -> None:
    t, k = run(CONFIG_2450, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)
    with pytest.raises(SettingError, match=r"pulse width"):
        k.pulse(1.0, width)
    assert t.done  # nothing beyond the configuration was sent


def test_2450_error_queue_is_drained() -> None:
    script = [(":SYST:ERR?", '-222,"Parameter data out of range"'),
              (":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", '0,"No error"')]
    _t, k = run(script, lambda t: Keithley2450(t, "smu"))
    assert k.errors() == ["-222: Parameter data out of range", "-113: Undefined header"]


def test_2450_safe_state() -> None:
    script = [(":ABOR", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None), (":OUTP?", "0")]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.safe_state()
    assert t.done


@pytest.mark.parametrize("reply", ["", "2.0E-01", "2.0E-01,abc", "2.0E-01,9.91E+37",
                                   "2.0E-01,-1.2E-05,7"])
def test_2450_garbage_measurement_reply_is_a_clear_error(reply: str) -> None:
    script = [(':READ? "defbuffer1", SOUR, READ', reply), (":SOUR:VOLT:ILIM:TRIP?", "0")]
    _t, k = run(script, lambda t: Keithley2450(t, "smu2"))
    with pytest.raises(ReplyError, match=r"smu2.*:READ\?"):
        k.measure()


@pytest.mark.parametrize("reply", ["2.000000000000000E-01,-1.234500000000000",
                                   "2.000000000000000E-01,-1.234500000000000E-0",
                                   "2.000000000000000E-01,-1.2345000000000", "2.000000,1.0E-05"])
def test_2450_truncated_reading_is_refused(reply: str) -> None:
    """Cut short anywhere, a reply in the 2450's ASCII format loses (part of) its exponent:
    refused instead of read as -1.2345 A or 0.2 V."""
    script = [(':READ? "defbuffer1", SOUR, READ', reply), (":SOUR:VOLT:ILIM:TRIP?", "0")]
    _t, k = run(script, lambda t: Keithley2450(t, "smu2"))
    with pytest.raises(ReplyError, match=r"smu2.*:READ\?.*complete number"):
        k.measure()


@pytest.mark.parametrize("reply", ["No error", "", "x,\"bad\""])
def test_2450_garbage_error_queue_reply(reply: str) -> None:
    _t, k = run([(":SYST:ERR?", reply)], lambda t: Keithley2450(t, "smu"))
    with pytest.raises(ReplyError, match=r"smu.*SYST:ERR"):
        k.errors()


@pytest.mark.parametrize("reply", ['0,"No', '0,"', '0,"No error', '-113,"Undefined',
                                   '0,No error"'])
def test_truncated_scpi_error_reply_is_never_no_error(reply: str) -> None:
    """A ':SYST:ERR?' reply cut short (no closing quote) is a reply error naming instrument and
    command, not an empty queue."""
    _t, k = run([(":SYST:ERR?", reply)], lambda t: Keithley2450(t, "bias_rows"))
    with pytest.raises(ReplyError, match=r"bias_rows.*SYST:ERR\?.*" + re.escape(repr(reply))):
        k.errors()
    _t, b = run([(":SYST:ERR?", "+" + reply)], lambda t: KeysightB2900Channel(t, 1, "b29.1"))
    with pytest.raises(ReplyError, match=r"b29\.1.*SYST:ERR\?"):
        b.errors()


def test_complete_scpi_error_replies_with_commas_and_signs() -> None:
    script = [(":SYST:ERR?", '+5001,"Interlock, open"'), (":SYST:ERR?", '+0,"No error"')]
    _t, b = run(script, lambda t: KeysightB2900Channel(t, 1, "b29.1"))
    assert b.errors() == ["5001: Interlock, open"]


@pytest.mark.parametrize("value", [211.0, -210.5, float("nan"), float("inf"), True, "0.2"])
def test_2450_out_of_range_level_raises_and_never_clamps(value: Any) -> None:
    t, k = run([], lambda t: Keithley2450(t, "smu"))
    with pytest.raises(SettingError, match=r"smu.voltage"):
        k.set_voltage(value)
    assert t.sent == [] and k.voltage is None


def test_identity_check() -> None:
    t, k = run([("*IDN?", IDN_2450)], lambda t: Keithley2450(t, "smu"))
    assert k.connect("MODEL 2450") == IDN_2450 and t.is_open


def test_identity_mismatch_sends_nothing_else() -> None:
    t, k = run([("*IDN?", "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C30")],
               lambda t: Keithley2450(t, "smu"))
    with pytest.raises(IdentityMismatch, match=r"MODEL 2400.*MODEL 2450"):
        k.connect("MODEL 2450")
    assert t.done


def test_garbage_identity_is_refused() -> None:
    _t, k = run([("*IDN?", "\x00\x17")], lambda t: Keithley2450(t, "smu"))
    with pytest.raises(ReplyError, match=r"smu.*\*IDN\?"):
        k.connect("MODEL 2450")


# -- Keithley 2600B (TSP) ------------------------------------------------------------------------
def config_2600(ch: str) -> list:
    return [(f"smu{ch}.reset()", None), ("format.asciiprecision = 16", None),
            (f"smu{ch}.source.func = smu{ch}.OUTPUT_DCVOLTS", None),
            (f"smu{ch}.source.autorangev = smu{ch}.AUTORANGE_OFF", None),
            (f"smu{ch}.source.rangev = 20", None),  # the 2636B range covering 3 V
            (f"smu{ch}.source.levelv = 0", None),
            (f"smu{ch}.source.limiti = 0.001", None),
            (f"smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON", None),
            (f"smu{ch}.measure.nplc = 1", None),
            (f"print(smu{ch}.source.output, smu{ch}.source.levelv)", "0.00000e+00\t0.00000e+00")]


@pytest.mark.parametrize("ch", ["a", "b"])
def test_2600_configure_measure_off(ch: str) -> None:
    script = [*config_2600(ch), (f"smu{ch}.source.levelv = 0.2", None),
              (f"smu{ch}.source.output = smu{ch}.OUTPUT_ON", None),
              (f"print(smu{ch}.measure.i(), smu{ch}.source.compliance)",
               "4.500000000000000e-05\tfalse"),
              (f"smu{ch}.source.levelv = 0", None),
              (f"smu{ch}.source.output = smu{ch}.OUTPUT_OFF", None),
              (f"print(smu{ch}.source.output, smu{ch}.source.levelv)", "0.00000e+00\t0.00000e+00")]
    t, k = run(script, lambda t: Keithley2600Channel(t, ch))
    assert isinstance(k, SourceMeter)
    k.configure(1e-3, 3.0, 1.0)
    k.set_voltage(0.2)
    k.enable()
    m = k.measure()
    assert (m.voltage, m.current, m.compliance) == (0.2, 4.5e-5, False)
    k.disable()
    assert t.done


def test_2600_level_beyond_the_limits_is_refused() -> None:
    t, k = run(config_2600("a"), lambda t: Keithley2600Channel(t, "a"))
    k.configure(1e-3, 3.0, 1.0)
    with pytest.raises(SettingError, match=r"beyond the bench limit"):
        k.set_voltage(3.5)
    assert t.done


def kipulse_setup(ch: str, limit: str = "0.001", rng: str = "20") -> list:
    """As the 2600B manual's KIPulse example: every range fixed, autozero once, append mode 1."""
    return [(f"smu{ch}.source.rangei = {limit}", None), (f"smu{ch}.measure.rangev = {rng}", None),
            (f"smu{ch}.measure.rangei = {limit}", None), (f"smu{ch}.measure.nplc = 0.001", None),
            (f"smu{ch}.measure.autozero = smu{ch}.AUTOZERO_ONCE", None),
            (f"smu{ch}.nvbuffer1.clear()", None), (f"smu{ch}.nvbuffer1.appendmode = 1", None)]


def kipulse_restore(ch: str) -> list:
    return [(f"smu{ch}.source.autorangei = smu{ch}.AUTORANGE_ON", None),
            (f"smu{ch}.measure.autorangev = smu{ch}.AUTORANGE_ON", None),
            (f"smu{ch}.measure.autorangei = smu{ch}.AUTORANGE_ON", None),
            (f"smu{ch}.measure.autozero = smu{ch}.AUTOZERO_AUTO", None),
            (f"smu{ch}.measure.nplc = 1", None), (f"smu{ch}.nvbuffer1.clear()", None),
            (f"smu{ch}.nvbuffer1.appendmode = 0", None), (f"smu{ch}.source.levelv = 0", None)]


def test_2600_pulse_shorter_than_100_us_is_refused_before_anything_is_sent() -> None:
    t, k = run([*config_2600("b"), ("smub.source.output = smub.OUTPUT_ON", None)],
               lambda t: Keithley2600Channel(t, "b", limits=SmuLimits(width_min=1e-6)))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    with pytest.raises(SettingError, match=r"pulse width"):
        k.pulse(1.2, 99e-6)
    assert t.done


def test_2600_pulse_with_kipulse() -> None:
    script = [*config_2600("b"), ("smub.source.output = smub.OUTPUT_ON", None),
              *kipulse_setup("b"),
              ("print(ConfigPulseVMeasureI(smub, 0, 1.2, 0.001, 0.0005, 0.001, 1, "
               "smub.nvbuffer1, 1))", "true\tPulse train configured successfully"),
              ("print(InitiatePulseTest(1))", "true\tPulse train initiated successfully"),
              ("print(smub.nvbuffer1.readings[1])", "9.999000000000000e-04"),
              *kipulse_restore("b")]
    t, k = run(script, lambda t: Keithley2600Channel(t, "b"))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    m = k.pulse(1.2, 5e-4)
    assert t.done and m.current == pytest.approx(9.999e-4) and m.compliance
    assert m.voltage == 1.2 and k.voltage == 0.0  # the train ended at its 0 V bias


@pytest.mark.parametrize(("at", "reply"), [
    ("config", "false\tSource autorange must be disabled"),
    ("initiate", "false\tMeasure autorange must be disabled"),
])
def test_2600_refused_pulse_is_an_error_with_its_message_and_restores(at: str,
                                                                      reply: str) -> None:
    config = ("print(ConfigPulseVMeasureI(smua, 0, 1, 0.001, 0.0005, 0.001, 1, "
              "smua.nvbuffer1, 1))")
    script = [*config_2600("a"), *kipulse_setup("a"),
              (config, reply if at == "config" else "true\tok")]
    if at == "initiate":
        script.append(("print(InitiatePulseTest(1))", reply))
    script += [*kipulse_restore("a"), ("smua.source.output = smua.OUTPUT_OFF", None)]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a"))
    k.configure(1e-3, 3.0, 1.0)  # confirmed off: it is switched off again after the pulse
    with pytest.raises(ReplyError, match=reply.partition("\t")[2]):
        k.pulse(1.0, 5e-4)
    assert t.done and k.voltage == 0.0


@pytest.mark.parametrize("reply", ["9.910000000000000e+37", "nil", "1.00000000000000e-04",
                                   "true\tok"])
def test_2600_pulse_reading_overflow_or_garbage_is_an_error(reply: str) -> None:
    script = [*config_2600("a"), ("smua.source.output = smua.OUTPUT_ON", None),
              *kipulse_setup("a"),
              ("print(ConfigPulseVMeasureI(smua, 0, 1, 0.001, 0.0005, 0.001, 1, "
               "smua.nvbuffer1, 1))", "true\tok"),
              ("print(InitiatePulseTest(1))", "true\tok"),
              ("print(smua.nvbuffer1.readings[1])", reply), *kipulse_restore("a")]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a"))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    with pytest.raises(ReplyError, match=r"readings\[1\]"):
        k.pulse(1.0, 5e-4)
    assert t.done


def test_2600_errors_and_safe_state() -> None:
    script = [("print(errorqueue.count)", "2.00000e+00"),
              ("print(errorqueue.next())", "-285\tProgram syntax error\t2\t0"),
              ("print(errorqueue.next())", "5001\tSMU A output overload\t2\t0"),
              ("smua.abort()", None), ("smua.source.levelv = 0", None),
              ("smua.source.output = smua.OUTPUT_OFF", None),
              ("print(smua.source.output, smua.source.levelv)", "0.00000e+00\t0.00000e+00")]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a"))
    assert k.errors() == ["-285: Program syntax error", "5001: SMU A output overload"]
    k.safe_state()
    assert t.done


@pytest.mark.parametrize("reply", ["4.5e-05", "4.5e-05\tmaybe", "nil\tfalse", "",
                                   "1.00000000000000e-09\tfalse",  # 15 digits: not this reply
                                   "4.500000000000000e-05\t0", "4.500000000000000e-05\tFalse",
                                   "9.910000000000000e+37\ttrue"])
def test_2600_garbage_measurement(reply: str) -> None:
    _t, k = run([("print(smua.measure.i(), smua.source.compliance)", reply)],
               lambda t: Keithley2600Channel(t, "a", "smu.a"))
    with pytest.raises(ReplyError, match=r"smu\.a.*smua\.measure\.i"):
        k.measure()


@pytest.mark.parametrize("reply", ["-285\tProgram syn", "-285", "-285\tProgram syntax error\t2",
                                   "-285\tProgram syntax error\t2.0000"])
def test_2600_truncated_error_queue_entry(reply: str) -> None:
    script = [("print(errorqueue.count)", "1.00000e+00"), ("print(errorqueue.next())", reply)]
    _t, k = run(script, lambda t: Keithley2600Channel(t, "a", "smu.a"))
    with pytest.raises(ReplyError, match=r"smu\.a.*errorqueue\.next"):
        k.errors()


def test_2600_bad_channel() -> None:
    with pytest.raises(SettingError, match=r"'c'"):
        Keithley2600Channel(TranscriptTransport([]), "c")


# -- Keysight B2900 -------------------------------------------------------------------------------
def real64(x: float) -> bytes:
    """One double as the B2900 sends it after :FORM:DATA REAL,64 and :FORM:BORD NORM: the
    definite-length block #18 + 8 bytes, most significant first, then the newline (SCPI Command
    Reference, "Data Output Format")."""
    return b"#18" + struct.pack(">d", x) + b"\n"


def config_b2900(ch: int) -> list:
    return [(f":OUTP{ch} OFF", None), (f":OUTP{ch}:ON:AUTO OFF", None),
            (":FORM:DATA REAL,64", None), (":FORM:BORD NORM", None),
            (f":SOUR{ch}:FUNC:MODE VOLT", None),
            (f":SOUR{ch}:FUNC:SHAP DC", None), (f":SOUR{ch}:VOLT:MODE FIX", None),
            (f":SOUR{ch}:VOLT:RANG:AUTO OFF", None),
            (f":SOUR{ch}:VOLT:RANG 20", None),  # the range covering 3 V
            (f":SOUR{ch}:VOLT 0", None), (f":SENS{ch}:CURR:PROT 0.001", None),
            (f':SENS{ch}:FUNC "CURR"', None), (f":SENS{ch}:CURR:RANG:AUTO ON", None),
            (f":SENS{ch}:CURR:NPLC 1", None), (f":OUTP{ch}?", "0")]


@pytest.mark.parametrize("ch", [1, 2])
def test_b2900_configure_measure_off(ch: int) -> None:
    script = [*config_b2900(ch), (f":SOUR{ch}:VOLT -0.3", None), (f":OUTP{ch} ON", None),
              (f":MEAS:CURR? (@{ch})", real64(-6.0000123456789e-05)),
              (f":SENS{ch}:CURR:PROT:TRIP?", "0"),
              (f":SOUR{ch}:VOLT 0", None), (f":OUTP{ch} OFF", None), (f":OUTP{ch}?", "0")]
    t, k = run(script, lambda t: KeysightB2900Channel(t, ch))
    k.configure(1e-3, 3.0, 1.0)
    k.set_voltage(-0.3)
    k.enable()
    m = k.measure()
    assert (m.voltage, m.current, m.compliance) == (-0.3, -6.0000123456789e-05, False)
    k.disable()
    assert t.done


def test_b2900_pulse_shape() -> None:
    script = [*config_b2900(1), (":OUTP1 ON", None), (":SOUR1:FUNC:SHAP PULS", None),
              (":SOUR1:VOLT 0", None), (":SOUR1:VOLT:TRIG 2", None), (":SOUR1:PULS:DEL 0", None),
              (":SOUR1:PULS:WIDT 0.0002", None), (":SENS1:CURR:APER 5e-05", None),
              (":TRIG1:ACQ:DEL 0.0001", None), (":TRIG1:COUN 1", None), (":INIT (@1)", None),
              ("*OPC?", "1"), (":FETC:SCAL:CURR? (@1)", real64(1e-3)),
              (":SENS1:CURR:PROT:TRIP?", "1"), (":SOUR1:FUNC:SHAP DC", None),
              (":TRIG1:ACQ:DEL 0", None), (":SENS1:CURR:NPLC 1", None)]
    t, k = run(script, lambda t: KeysightB2900Channel(t, 1))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    m = k.pulse(2.0, 2e-4)
    assert t.done and (m.voltage, m.current, m.compliance) == (2.0, 1e-3, True)


def test_b2900_errors_and_safe_state() -> None:
    script = [(":SYST:ERR?", '+100,"Too many digits"'), (":SYST:ERR?", '+0,"No error"'),
              (":ABOR (@2)", None), (":SOUR2:VOLT 0", None), (":OUTP2 OFF", None),
              (":OUTP2?", "0")]
    t, k = run(script, lambda t: KeysightB2900Channel(t, 2))
    assert k.errors() == ["100: Too many digits"]
    k.safe_state()
    assert t.done


@pytest.mark.parametrize("reply", [
    "", "-6.0E-05,1", "ERR", "+1.000000E-06",  # text: the instrument ignored the format
    b"#18" + struct.pack(">d", 1e-6)[:5],  # truncated
    b"#18" + struct.pack(">d", 1e-6) + b"\x00\x01\n",  # longer than its header says
    b"#216" + struct.pack(">d", 1e-6) + b"\n",  # header announces two values, one came
    b"#0" + struct.pack(">d", 1e-6) + b"\n",  # indefinite length: not what the B2900 sends
    b"#1" + struct.pack(">d", 1e-6),  # no length digit left after the header
])
def test_b2900_malformed_block_is_an_error_naming_instrument_and_command(
        reply: str | bytes) -> None:
    _t, k = run([(":MEAS:CURR? (@1)", reply)], lambda t: KeysightB2900Channel(t, 1, "b29.1"))
    with pytest.raises((MalformedBlock, ReplyError), match=r"b29\.1.*MEAS:CURR"):
        k.measure()


@pytest.mark.parametrize("payload", [
    struct.pack(">f", 1e-6),  # REAL,32: 4 bytes where 8 are due
    struct.pack(">2d", 1e-6, 2e-6),  # two values
    struct.pack(">d", math.nan),  # the binary "no data"
    struct.pack(">d", math.inf), struct.pack(">d", 9.91e37),  # overflow
])
def test_b2900_block_of_the_wrong_content_is_refused(payload: bytes) -> None:
    block = b"#" + str(len(str(len(payload)))).encode() + str(len(payload)).encode() + payload
    _t, k = run([(":MEAS:CURR? (@1)", block)], lambda t: KeysightB2900Channel(t, 1, "b29.1"))
    with pytest.raises(ReplyError, match=r"b29\.1.*MEAS:CURR"):
        k.measure()


def test_b2900_little_endian_bytes_are_not_read_as_a_plausible_value() -> None:
    """The driver decodes most significant byte first (NORMal, which it sets in configure):
    the same double sent in SWAPped order is another number, so the order must be set."""
    swapped = b"#18" + struct.pack("<d", 1e-6)
    _t, k = run([(":MEAS:CURR? (@1)", swapped), (":SENS1:CURR:PROT:TRIP?", "0")],
                lambda t: KeysightB2900Channel(t, 1, "b29.1"))
    assert k.measure().current != 1e-6


# -- Keithley 707B --------------------------------------------------------------------------------
def test_707b_configure_close_query_open() -> None:
    script = [("channel.connectrule = channel.BREAK_BEFORE_MAKE", None),
              ('channel.open("allslots")', None), ("*OPC?", "1"),
              ('channel.close("1A01,1B12")', None), ("*OPC?", "1"),
              ('print(channel.getclose("allslots"))', "1A01;1B12"),
              ('channel.open("allslots")', None), ("*OPC?", "1"),
              ('print(channel.getclose("allslots"))', "nil"),
              ('print(channel.getclose("allslots"))', "nil")]
    t, m = run(script, lambda t: Keithley707B(t, "mtx"))
    assert isinstance(m, SwitchMatrix)
    m.configure()
    m.close_crosspoints([Crosspoint(1, "A", 1), Crosspoint(1, "B", 12)])
    assert m.closed() == {Crosspoint(1, "A", 1), Crosspoint(1, "B", 12)}
    m.safe_state()
    assert m.closed() == set()
    assert t.done


@pytest.mark.parametrize("point", [Crosspoint(1, "I", 1), Crosspoint(7, "A", 1),
                                   Crosspoint(1, "A", 13), Crosspoint(1, "A", 0)])
def test_707b_invalid_channel_is_refused(point: Crosspoint) -> None:
    t, m = run([], lambda t: Keithley707B(t, "mtx"))
    with pytest.raises(SettingError, match=r"mtx"):
        m.close_crosspoints([point])
    assert t.sent == []


@pytest.mark.parametrize("reply", ["1A01;", "1A1", "1Z01", ""])
def test_707b_garbage_getclose(reply: str) -> None:
    _t, m = run([('print(channel.getclose("allslots"))', reply)], lambda t: Keithley707B(t, "mx"))
    with pytest.raises(ReplyError, match=r"mx.*getclose"):
        m.closed()


def test_707b_relay_command_not_completed() -> None:
    _t, m = run([('channel.open("allslots")', None), ("*OPC?", "0")],
               lambda t: Keithley707B(t, "mx"))
    with pytest.raises(ReplyError, match=r"mx.*\*OPC\?"):
        m.open_all()


def test_707b_errors() -> None:
    script = [("print(errorqueue.count)", "1.00000e+00"),
              ("print(errorqueue.next())", "-203\tCommand protected\t2\t1")]
    _t, m = run(script, lambda t: Keithley707B(t, "mtx"))
    assert m.errors() == ["-203: Command protected"]


def test_transcript_transport_catches_a_wrong_line() -> None:
    t = TranscriptTransport([(":OUTP OFF", None)])
    with pytest.raises(TranscriptMismatch, match=r"expected ':OUTP OFF'"):
        t.write(":OUTP ON")


# -- output confirmed off, safe state with one link reopen --------------------------------------
def test_2450_disable_raises_when_the_output_is_still_on() -> None:
    script = [*CONFIG_2450, (":OUTP ON", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None),
              (":OUTP?", "1")]
    t, k = run(script, lambda t: Keithley2450(t, "bias"))
    k.configure(1e-4, 3.0, 1.0)
    k.enable()
    with pytest.raises(InstrumentError, match=r"bias: output still on.*:OUTP\?"):
        k.disable()
    assert t.done and k.output_on


def test_output_is_not_known_off_before_the_instrument_says_so() -> None:
    t, k = run([(":OUTP?", "0")], lambda t: Keithley2450(t, "smu"))
    assert k.output_on  # constructed: nothing confirmed yet
    k.confirm_off()
    assert t.done and not k.output_on


@pytest.mark.parametrize(("reply", "on"), [
    ("0.00000e+00\t0.00000e+00", False), ("2.00000e+00\t0.00000e+00", False),
    ("1.00000e+00\t0.00000e+00", True), ("0.00000e+00\t2.00000e-01", True)])
def test_2600_output_state_is_off_and_at_zero_volts(reply: str, on: bool) -> None:
    q = "print(smub.source.output, smub.source.levelv)"
    _t, k = run([(q, reply)], lambda t: Keithley2600Channel(t, "b", "smu.b"))
    if on:
        with pytest.raises(InstrumentError, match=r"smu\.b: output still on"):
            k.confirm_off()
    else:
        k.confirm_off()
    assert k.output_on is on


@pytest.mark.parametrize("reply", ["0.00000e+00", "0.000", "3.00000e+00\t0.00000e+00", "nil"])
def test_2600_output_state_reply_cut_short_or_garbled(reply: str) -> None:
    q = "print(smua.source.output, smua.source.levelv)"
    _t, k = run([(q, reply)], lambda t: Keithley2600Channel(t, "a", "smu.a"))
    with pytest.raises(ReplyError, match=r"smu\.a.*smua\.source\.output"):
        k.confirm_off()
    assert k.output_on


@pytest.mark.parametrize("reply", ["0.0000000000", "1.00000e", "1"])
def test_tsp_numbers_cut_short_are_refused(reply: str) -> None:
    """A printed number loses its exponent when cut short: never read as a smaller value."""
    _t, m = run([("print(errorqueue.count)", reply)], lambda t: Keithley707B(t, "mtx"))
    with pytest.raises(ReplyError, match=r"mtx.*errorqueue\.count"):
        m.errors()


def test_safe_state_reopens_the_link_once_and_sends_everything_again() -> None:
    gone = TransportError("transcript: connection reset by peer")
    script = [(":ABOR", gone), (":SOUR:VOLT 0", gone), (":OUTP OFF", gone), (REOPEN, None),
              (":ABOR", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None), (":OUTP?", "0")]
    t, k = run(script, lambda t: Keithley2450(t, "bias"))
    k.safe_state()
    assert t.done and not k.output_on


def test_safe_state_that_fails_after_the_reopen_names_both_causes() -> None:
    script = [("smua.abort()", None), ("smua.source.levelv = 0", None),
              ("smua.source.output = smua.OUTPUT_OFF", None),
              ("print(smua.source.output, smua.source.levelv)",
               TransportTimeout("transcript: no reply within 1 s")),
              # the timeout: the link is cleared (reopened) for a resync, then the safe
              # state's own reopen
              (REOPEN, TransportError("transcript: connection refused")),
              (REOPEN, TransportError("transcript: connection refused"))]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a", "smu.a"))
    with pytest.raises(SafeStateFailed, match=r"smu\.a at transcript: safe state failed "
                       r"\(TransportError.*no reply.*reopening the link failed too.*refused"):
        k.safe_state()
    assert t.done and k.output_on


def test_707b_safe_state_checks_every_relay_open_and_retries_once() -> None:
    script = [('channel.open("allslots")', None), ("*OPC?", "1"),
              ('print(channel.getclose("allslots"))', "1A01"), (REOPEN, None),
              ('channel.open("allslots")', None), ("*OPC?", "1"),
              ('print(channel.getclose("allslots"))', "1A01")]
    t, m = run(script, lambda t: Keithley707B(t, "mtx"))
    with pytest.raises(SafeStateFailed, match=r"mtx.*relays still closed.*1A01.*again"):
        m.safe_state()
    assert t.done


def test_2600_pulse_armed_but_never_fired_is_undone_by_the_safe_state() -> None:
    """The bench arms the drive's pulse, then fails raising the bias lines: the safe state
    switches the output off and puts the KIPulse settings back (output left off)."""
    script = [*config_2600("a"), ("smua.source.output = smua.OUTPUT_ON", None),
              *kipulse_setup("a"),
              ("print(ConfigPulseVMeasureI(smua, 0, 1, 0.001, 0.0005, 0.001, 1, "
               "smua.nvbuffer1, 1))", "true\tok"),
              ("smua.abort()", None), ("smua.source.levelv = 0", None),
              ("smua.source.output = smua.OUTPUT_OFF", None),
              ("print(smua.source.output, smua.source.levelv)", "0.00000e+00\t0.00000e+00"),
              *kipulse_restore("a"), ("smua.source.output = smua.OUTPUT_OFF", None)]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a"))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    k.arm_pulse(1.0, 5e-4)
    k.safe_state()
    assert t.done and not k.output_on
    with pytest.raises(InstrumentError, match=r"without arm_pulse"):
        k.fire_pulse()  # the armed pulse is gone


def test_2450_pulse_armed_but_never_fired_never_switches_the_output_back_on() -> None:
    script = [*CONFIG_2450, (":OUTP ON", None), *pulse_2450("1", "0.0008"),
              (":ABOR", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None), (":OUTP?", "0"),
              *RESTORE_2450]
    t, k = run(script, lambda t: Keithley2450(t, "smu"))
    k.configure(1e-4, 3.0, 1.0)
    k.enable()
    k.arm_pulse(1.0, 1e-3)
    k.safe_state()
    assert t.done and not k.output_on


def test_2600_refused_pulse_reports_its_own_cause_even_if_the_restore_fails() -> None:
    config = ("print(ConfigPulseVMeasureI(smua, 0, 1, 0.001, 0.0005, 0.001, 1, "
              "smua.nvbuffer1, 1))")
    restore = kipulse_restore("a")
    restore[0] = (restore[0][0], TransportError("transcript: connection reset"))
    script = [*config_2600("a"), ("smua.source.output = smua.OUTPUT_ON", None),
              *kipulse_setup("a"), (config, "false\tSource autorange must be disabled"),
              *restore]
    t, k = run(script, lambda t: Keithley2600Channel(t, "a"))
    k.configure(1e-3, 3.0, 1.0)
    k.enable()
    with pytest.raises(ReplyError, match=r"Source autorange must be disabled"):
        k.pulse(1.0, 5e-4)
    assert t.done  # every other restore step was still sent
