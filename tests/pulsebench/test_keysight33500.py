"""Keysight 33500B/33600A driver against transcripts written from the 33500 Series Operating and
Service Guide (SCPI Programming Reference: FUNCtion, SOURce VOLTage, OUTPut, BURSt, TRIGger,
SYSTem subsystems), and against its emulator (the lines it accepts and what reaches the line).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarlab.bench.pulse_source import PulseSource
from xbarlab.drivers.base import ReplyError, SettingError
from xbarlab.drivers.emulators.fgen_33500 import Fgen33500
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.keysight33500 import Keysight33500
from xbarlab.drivers.limits import SmuLimits
from xbarlab.drivers.transports import TranscriptTransport

CONFIG = [
    ("*RST", None), ("*CLS", None), ("OUTP OFF", None), ("OUTP:LOAD INF", None),
    ("FUNC PULS", None), ("VOLT:LIM:HIGH 2.5", None), ("VOLT:LIM:LOW -3", None),
    ("VOLT:LIM:STAT ON", None), ("BURS:MODE TRIG", None), ("BURS:NCYC 1", None),
    ("TRIG:SOUR BUS", None), ("BURS:STAT ON", None), ("OUTP?", "0"),
]


def _driver(script: list[Any]) -> tuple[TranscriptTransport, Keysight33500]:
    t = TranscriptTransport(script)
    return t, Keysight33500(t, "fgen")


def test_is_a_pulse_source_and_constructor_does_no_io() -> None:
    t, d = _driver([])
    assert isinstance(d, PulseSource) and t.sent == [] and d.output_on


def test_configure_then_a_positive_then_a_negative_pulse() -> None:
    t, d = _driver([
        *CONFIG,
        # 1 us, +1.5 V: width shrinks from the 100 us default, so width before period
        ("OUTP OFF", None), ("FUNC:PULS:WIDT 1e-06", None),
        ("FUNC:PULS:PER 2.036e-06", None), ("FUNC:PULS:TRAN 1e-08", None),
        ("VOLT:HIGH 1.5", None), ("VOLT:LOW 0", None), ("OUTP:POL NORM", None),
        ("OUTP ON", None), ("*TRG", None), ("*OPC?", "1"), ("OUTP OFF", None), ("OUTP?", "0"),
        # 1 ms, -2 V: width grows past the old period, so period first; low before high
        ("OUTP OFF", None), ("FUNC:PULS:PER 0.002000036", None),
        ("FUNC:PULS:WIDT 0.001", None), ("FUNC:PULS:TRAN 1e-08", None),
        ("VOLT:LOW -2", None), ("VOLT:HIGH 0", None), ("OUTP:POL INV", None),
        ("OUTP ON", None), ("*TRG", None), ("*OPC?", "1"), ("OUTP OFF", None), ("OUTP?", "0"),
    ])
    d.configure(v_high=2.5, v_low=-3.0)
    assert not d.output_on
    for v, w in ((1.5, 1e-6), (-2.0, 1e-3)):
        d.arm(v, w, 1e-8)
        assert d.output_on
        d.fire()
        d.disable()
        assert not d.output_on
    assert t.done


def test_output_not_confirmed_off_raises() -> None:
    _, d = _driver([*CONFIG[:-1], ("OUTP?", "1")])
    with pytest.raises(ReplyError, match="still on"):
        d.configure(v_high=2.5, v_low=-3.0)
    assert d.output_on


@pytest.mark.parametrize(("v", "w", "e"), [
    (2.6, 1e-6, 1e-8), (-3.1, 1e-6, 1e-8), (0.0, 1e-6, 1e-8), (1.0, 1e-8, 5e-9),
    (1.0, 2e-8, 1.3e-8),
    (1.0, 2.0, 1e-8), (math.nan, 1e-6, 1e-8), (1.0, 1e-6, 5e-9)])
def test_out_of_range_pulses_raise_before_any_line(v: float, w: float, e: float) -> None:
    t, d = _driver(CONFIG)
    d.configure(v_high=2.5, v_low=-3.0)
    sent = len(t.sent)
    with pytest.raises(SettingError):
        d.arm(v, w, e)
    assert len(t.sent) == sent


def test_bench_limit_beyond_the_instrument_is_refused() -> None:
    t, d = _driver([])
    with pytest.raises(SettingError, match="outside"):
        d.configure(v_high=12.0, v_low=-3.0)
    with pytest.raises(SettingError, match="outside"):
        d.configure(v_high=2.6, v_low=-3.0)  # the default bench allows +2.5 V
    assert t.sent == []


def test_bench_limits_held_from_construction() -> None:
    """Built with tighter bench limits, the driver refuses what they exclude, whatever
    `configure` is told."""
    script = [(line.replace("HIGH 2.5", "HIGH 1.2").replace("LOW -3", "LOW -1.5"), reply)
              for line, reply in CONFIG]
    t = TranscriptTransport(script)
    d = Keysight33500(t, "fgen", SmuLimits(v_max=1.5, width_min=1e-7, width_max=1e-5,
                                           pulse_v_min=-1.5, pulse_v_max=1.2))
    with pytest.raises(SettingError, match="bench"):
        d.configure(v_high=2.5, v_low=-3.0)
    assert t.sent == []
    d.configure(v_high=1.2, v_low=-1.5)
    assert t.done
    d.check(1.2, 1e-6, 1e-8)  # inside: accepted
    for v, w in ((1.3, 1e-6), (-1.6, 1e-6), (1.0, 5e-8), (1.0, 2e-5)):
        with pytest.raises(SettingError):
            d.check(v, w, 1e-8)


class _Recorder:
    """A load that records what the generator puts on its line."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.RLock()
        self.pulses: list[tuple[float, float]] = []
        self.levels: list[tuple[bool, float]] = []

    def measure(self, ch: SmuChannel) -> tuple[float, bool]:
        return 0.0, False

    def pulse(self, ch: SmuChannel, volts: float, width: float) -> tuple[float, bool]:
        self.pulses.append((volts, width))
        return 0.0, False

    def changed(self, ch: SmuChannel) -> None:
        self.levels.append((ch.output, ch.level))


class _Loopback:
    """The driver talking straight to the emulator (no socket)."""

    def __init__(self, emu: Fgen33500) -> None:
        self.emu, self.address, self.timeout, self.is_open = emu, "loop", 1.0, False

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def reopen(self) -> None:
        self.is_open = True

    def write(self, line: str) -> None:
        assert self.emu.handle(line) is None, line

    def query(self, line: str) -> str:
        reply = self.emu.handle(line)
        assert isinstance(reply, str), line
        return reply


@settings(deadline=None, max_examples=60)
@given(pulses=st.lists(st.tuples(
    st.floats(-3.0, 2.5).filter(lambda x: abs(x) > 0.01),
    st.sampled_from([2e-8, 5e-8, 2e-7, 1e-6, 1e-4, 1e-3])), min_size=1, max_size=6))
def test_driver_on_the_emulator_pulses_from_zero_without_errors(
        pulses: list[tuple[float, float]]) -> None:
    """Any sequence of pulses within the limits: no instrument error, the line idles at 0 V
    whenever the output is on, each pulse reaches it at its level and width."""
    load = _Recorder()
    emu = Fgen33500("fgen", load)  # type: ignore[arg-type]
    d = Keysight33500(_Loopback(emu), "fgen")  # type: ignore[arg-type]
    d.connect("33522B")
    d.configure(v_high=2.5, v_low=-3.0)
    for v, w in pulses:
        d.arm(v, w, 8.4e-9)
        d.fire()
        d.disable()
    assert d.errors() == []
    assert load.pulses == [(v, w) for v, w in pulses]
    assert all(level == 0.0 for on, level in load.levels if on)
    assert emu.violations == [] and emu.safe


def test_emulator_refuses_levels_beyond_its_limits_and_a_trigger_off_bus() -> None:
    emu = Fgen33500()
    for line in ("OUTP:LOAD INF", "VOLT:LIM:HIGH 2", "VOLT:LIM:LOW -2", "VOLT:LIM:STAT ON",
                 "VOLT:HIGH 2.5", "*TRG"):
        emu.handle(line)
    codes = [emu.queue.pop()[0] for _ in range(3)]
    assert codes == [-222, -211, 0]
