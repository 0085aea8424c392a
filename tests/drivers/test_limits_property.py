"""Property: whatever a caller does with an SMU driver's public API (methods, settings, raw
lines), no line beyond the driver's bench limits ever reaches the wire.

The wire is checked by `beyond_limits`, written from the instruments' manuals (the command
forms that set a source level, a current limit, a source range, an overvoltage protection or a
pulse width), not from the drivers' command tables.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarlab.drivers.base import InstrumentError, SettingError, SmuLimits, SourceMeterBase
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.transports import CallbackTransport

LIMITS = SmuLimits(v_max=3.0, i_max=1e-3, width_min=1e-4, width_max=1e-3, pulse_v_min=-3.0,
                   pulse_v_max=2.5)
NUM = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf|nan)"
# the smallest source range covering 3 V: 2450 protection PROT5 (2450 Reference Manual,
# :SOURce:VOLTage:PROTection); 2636B 20 V range (2600B "smuX.source.rangeY"); B2900 20 V range
# (SCPI Command Reference, "Source Output Ranges")
PROT_MAX, RANGE_MAX = 5.0, 20.0


def _checks() -> list[tuple[re.Pattern[str], Callable[[list[float]], bool]]]:
    v, i, w = LIMITS.v_max, LIMITS.i_max, LIMITS.width_max
    lo, hi = LIMITS.pulse_window

    def volts(x: list[float]) -> bool:
        return abs(x[0]) <= v

    def amps(x: list[float]) -> bool:
        return 0 < abs(x[0]) <= i

    def rng(x: list[float]) -> bool:
        return abs(x[0]) <= RANGE_MAX

    forms: list[tuple[str, Callable[[list[float]], bool]]] = [
        # Keithley 2450, SCPI
        (rf":SOUR(?:ce)?1?:VOLT(?:age)?(?::LEV(?:el)?)?(?::IMM(?:ediate)?)?(?::AMPL(?:itude)?)?"
         rf"\s+{NUM}", volts),
        (rf":SOUR(?:ce)?1?:VOLT(?:age)?:ILIM(?:it)?(?::LEV(?:el)?)?\s+{NUM}", amps),
        (rf":SENS(?:e)?1?:CURR(?:ent)?(?::DC)?:RANG(?:e)?(?::UPP(?:er)?)?\s+{NUM}", amps),
        (rf":SOUR(?:ce)?1?:VOLT(?:age)?:PROT(?:ection)?(?::LEV(?:el)?)?\s+PROT{NUM}",
         lambda x: x[0] <= PROT_MAX),
        (r":SOUR(?:ce)?1?:VOLT(?:age)?:PROT(?:ection)?(?::LEV(?:el)?)?\s+NONE",
         lambda x: False),
        (rf":TRIG(?:ger)?:BLOC(?:k)?:DEL(?:ay)?:CONS(?:tant)?\s+\d+,\s*{NUM}",
         lambda x: 0 <= x[0] <= w),
        # Keysight B2900, SCPI (channel suffix 1 or 2)
        (rf":SOUR[12]?:VOLT(?::LEV)?(?::IMM)?(?::AMPL)?\s+{NUM}", volts),
        (rf":SOUR[12]?:VOLT(?::LEV)?:TRIG(?::AMPL)?\s+{NUM}", lambda x: lo <= x[0] <= hi),
        (rf":SENS[12]?:CURR(?::DC)?:PROT(?::LEV)?\s+{NUM}", amps),
        (rf":SOUR[12]?:VOLT:RANG\s+{NUM}", rng),
        (rf":SOUR[12]?:PULS:WIDT\s+{NUM}", lambda x: LIMITS.width_min <= x[0] <= w),
        # Keithley 2600B, TSP (any smu, any spacing)
        (rf"smu[ab]\.source\.levelv\s*=\s*{NUM}", volts),
        (rf"smu[ab]\.source\.limiti\s*=\s*{NUM}", amps),
        (rf"smu[ab]\.source\.rangev\s*=\s*{NUM}", rng),
        (rf"smu[ab]\.measure\.rangev\s*=\s*{NUM}", rng),
        (rf"smu[ab]\.(?:source|measure)\.rangei\s*=\s*{NUM}", amps),
        (rf"ConfigPulseVMeasureI\(\s*smu[ab]\s*,\s*{NUM}\s*,\s*{NUM}\s*,\s*{NUM}\s*,\s*{NUM}",
         lambda x: abs(x[0]) <= v and lo <= x[1] <= hi and 0 < x[2] <= i
         and LIMITS.width_min <= x[3] <= w),
    ]
    return [(re.compile(p, re.IGNORECASE), ok) for p, ok in forms]


CHECKS = _checks()
SOURCING = re.compile(r"levelv|limitv|limiti|rangev|rangei|VOLT|CURR:PROT|ILIM|Pulse|Sweep|"
                      r"TRIG:BLOC", re.IGNORECASE)


def beyond_limits(line: str) -> str | None:
    """Why `line` must not reach an SMU (None if it may)."""
    for pattern, ok in CHECKS:
        m = pattern.search(line)
        if m is not None:
            values = [float(g) for g in m.groups()]
            if not all(math.isfinite(x) for x in values) or not ok(values):
                return f"{line!r} exceeds the limits"
            return None
    known = ("SOUR:VOLT:ILIM:TRIP?", "VOLT:RANG:AUTO", "VOLT:MODE FIX", "FUNC VOLT",
             "FUNC:MODE VOLT", "PROT:TRIP?", ":OUTP", "TRIG:BLOC:SOUR:STAT",
             "TRIG:BLOC:MEAS", "TRIG:LOAD", "TRIG1:", "TRIG2:", "InitiatePulseTest",
             "OUTPUT_DCVOLTS", "AUTORANGE_", "source.levelv)", "VOLT:TRIG", "ACQ:DEL",
             "VOLT:READ:BACK ON")
    if SOURCING.search(line) and not any(k.lower() in line.lower() for k in known):
        return f"{line!r} sets a source quantity in a form this check does not know"
    return None


def replies(line: str) -> str | bytes:
    """Plausible answers of a 2450 / 2600B / B2900 (formats from their manuals)."""
    if line.startswith("print(") and "errorqueue.count" in line:
        return "0.000000000000000e+00"
    if "ConfigPulse" in line or "InitiatePulseTest" in line:
        return "true\tok"
    if "source.output, smu" in line:
        return "0.000000000000000e+00\t0.000000000000000e+00"
    if "measure.i()" in line:
        return "1.000000000000000e-06\tfalse"
    if "readings[1]" in line:
        return "1.000000000000000e-06"
    if line.startswith(":MEAS") or line.startswith(":FETC"):
        return b"#18" + struct.pack(">d", 1e-6)
    if "ERR" in line:
        return '+0,"No error"'
    if ":READ?" in line or ":TRAC:DATA?" in line:
        return "1.000000000000000E-01,1.000000000000000E-06"
    if line == "*IDN?":
        return "MODEL"
    if line == "*OPC?":
        return "1"
    return "0"  # output state, trip flags


DRIVERS: dict[str, Callable[[CallbackTransport], SourceMeterBase]] = {
    "2450": lambda t: Keithley2450(t, "k2450", LIMITS),
    "2600B.a": lambda t: Keithley2600Channel(t, "a", "k2600.a", LIMITS),
    "2600B.b": lambda t: Keithley2600Channel(t, "b", "k2600.b", LIMITS),
    "B2900.1": lambda t: KeysightB2900Channel(t, 1, "b29.1", LIMITS),
    "B2900.2": lambda t: KeysightB2900Channel(t, 2, "b29.2", LIMITS),
}

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(-10.0, 10.0), st.sampled_from([0.0, 2.5, 2.5000001, 3.0, 3.0001,
                                                             -3.0, 1e-3, 1.0001e-3, 5.5, 9.0]))
widths = st.one_of(st.floats(0.0, 2.0), st.sampled_from([1e-4, 9.9e-5, 1e-3, 1.01e-3, 1e-5]))
RAW = ["smu{c}.source.levelv = {x}", "smu{c}.source.limiti = {x}",
       "smu{c}.source.rangev = {x}", ":SOUR:VOLT {x}", ":SOUR{n}:VOLT {x}",
       ":SOUR{n}:VOLT:TRIG {x}", ":SOUR:VOLT:ILIM {x}", ":SENS{n}:CURR:PROT {x}",
       ":SOUR:VOLT:PROT PROT{x}", ":TRIG:BLOC:DEL:CONS 2, {x}", ":SOUR{n}:PULS:WIDT {x}",
       "smu{c}.source.levelv={x}", "smua.source.levelv = {x} smub.source.levelv = {x}",
       "print(ConfigPulseVMeasureI(smu{c}, 0, {x}, 0.001, 0.0005, 0.001, 1, smu{c}.nvbuffer1, "
       "1))", ":SOUR:VOLT:PROT NONE", "PulseVMeasureI(smu{c}, 0, {x}, 1e-3, 1e-3, 1)"]
ops = st.one_of(
    st.tuples(st.just("configure"), numbers, numbers, st.floats(0.001, 10)),
    st.tuples(st.just("set_voltage"), numbers),
    st.tuples(st.just("voltage"), numbers),
    st.tuples(st.just("current_limit"), numbers),
    st.tuples(st.just("voltage_range"), numbers),
    st.tuples(st.just("pulse"), numbers, widths),
    st.tuples(st.just("arm_pulse"), numbers, widths),
    st.tuples(st.just("fire_pulse")),
    st.tuples(st.just("enable")), st.tuples(st.just("disable")),
    st.tuples(st.just("measure")), st.tuples(st.just("safe_state")),
    st.tuples(st.just("raw"), st.sampled_from(RAW), numbers),
    st.tuples(st.just("transport"), st.sampled_from(RAW), numbers),
)


def apply(drv: Any, op: tuple[Any, ...]) -> None:
    name, *args = op
    if name == "configure":
        drv.configure(compliance=args[0], v_protect=args[1], nplc=args[2])
    elif name in ("voltage", "current_limit", "voltage_range"):
        if hasattr(type(drv), name):
            setattr(drv, name, args[0])
    elif name in ("raw", "transport"):  # the driver's write, or straight to its transport
        line = args[0].format(c=getattr(drv, "channel", "a"), n=getattr(drv, "channel", 1),
                              x=args[1])
        (drv.write if name == "raw" else drv.transport.write)(line)
    else:
        getattr(drv, name)(*args)


@pytest.mark.parametrize("kind", list(DRIVERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(ops, min_size=1, max_size=12))
def test_no_line_beyond_the_limits_reaches_the_wire(kind: str,
                                                    sequence: list[tuple[Any, ...]]) -> None:
    t = CallbackTransport(lambda line, q: replies(line) if q else None)
    drv = DRIVERS[kind](t)
    for op in sequence:
        # refused (or a reply the sequence made invalid): only the wire matters here
        with contextlib.suppress(SettingError, InstrumentError, ValueError):
            apply(drv, op)
    bad = [why for why in map(beyond_limits, t.sent) if why]
    assert not bad, bad


def test_the_wire_check_catches_what_it_should() -> None:
    """The checker itself: lines beyond the limits in each instrument's forms are caught."""
    for line in (":SOUR:VOLT 4.5", ":SOURce1:VOLTage:LEVel 3.1", ":SOUR2:VOLT:TRIG 2.6",
                 "smua.source.levelv = 9", "smub.source.levelv=5.5", ":SOUR:VOLT:PROT PROT10",
                 ":SOUR:VOLT:ILIM 0.01", "smua.source.rangev = 200", ":SOUR1:VOLT:RANG 200",
                 ":TRIG:BLOC:DEL:CONS 2, 5", "PulseVMeasureI(smua, 0, 5, 1e-3, 1e-3, 1)",
                 "print(ConfigPulseVMeasureI(smua, 0, 2.9, 0.001, 0.0005, 0.001, 1, "
                 "smua.nvbuffer1, 1))", ":SOUR:VOLT:PROT NONE"):
        assert beyond_limits(line), line
    for line in (":SOUR:VOLT 2.9", "smua.source.levelv = -3", ":SOUR:VOLT:PROT PROT5",
                 ":SOUR1:VOLT:RANG 20", ":TRIG:BLOC:DEL:CONS 2, 0.0008"):
        assert beyond_limits(line) is None, line


@pytest.mark.parametrize("kind", list(DRIVERS))
def test_a_looser_caller_cannot_widen_the_limits(kind: str) -> None:
    """A second backend built with looser limits configures the same driver: refused."""
    t = CallbackTransport(lambda line, q: replies(line) if q else None)
    drv = DRIVERS[kind](t)
    with pytest.raises(SettingError, match=r"bench limit"):
        drv.configure(compliance=1e-2, v_protect=3.0, nplc=1.0)
    with pytest.raises(SettingError, match=r"bench limit"):
        drv.configure(compliance=1e-3, v_protect=5.0, nplc=1.0)
    drv.configure(compliance=1e-3, v_protect=3.0, nplc=1.0)
    with pytest.raises(SettingError, match=r"pulse"):
        drv.pulse(2.9, 5e-4)  # above the 2.5 V SET window
    assert all(beyond_limits(line) is None for line in t.sent)


def test_lines_written_straight_to_a_shared_transport_are_held_to_the_limits() -> None:
    """Both 2636B channels on one link: each channel's lines pass within the limits, nothing
    beyond them passes, whoever writes to the transport."""
    t = CallbackTransport(lambda line, q: replies(line) if q else None)
    Keithley2600Channel(t, "a", "smu.a", LIMITS)
    Keithley2600Channel(t, "b", "smu.b", LIMITS)
    t.write("smua.source.levelv = 2")
    t.write("smub.source.levelv = -2.5")
    assert t.query("print(smub.source.levelv)") == "0"  # reading is always allowed
    for line in ("smua.source.levelv = 9", "smub.source.levelv = 3.5",
                 "smua.source.rangev = 200", "PulseVMeasureI(smua, 0, 5, 1e-3, 1e-3, 1)",
                 "print(PulseVMeasureI(smua, 0, 5, 1e-3, 1e-3, 1))"):
        with pytest.raises(SettingError):
            t.write(line)
    assert t.sent == ["smua.source.levelv = 2", "smub.source.levelv = -2.5",
                      "print(smub.source.levelv)"]
