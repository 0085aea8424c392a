"""Property: no sequence of protocol parameters makes the bench send a command beyond its limits.

Random limits and random operation sequences (many far outside the limits) go through the real
drivers over the fake bench. Every line sent is parsed independently for source levels, pulse
amplitudes, widths and compliance, and checked against the limits; operations outside the limits
must raise `LimitViolation` and send nothing.
"""

from __future__ import annotations

import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bench.fake_world import B2900_BUSES, World, bench_config
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.registry import open_bench
from xbarlab.limits import BenchLimits, LimitViolation

NUM = r"([-+0-9.eE]+)"
LEVEL = [re.compile(r"smu[ab]\.source\.levelv = " + NUM), re.compile(r":SOUR:VOLT " + NUM),
         re.compile(r":SOUR[12]:VOLT " + NUM)]
LIMIT = [re.compile(r"smu[ab]\.source\.limiti = " + NUM), re.compile(r":SOUR:VOLT:ILIM " + NUM),
         re.compile(r":SENS[12]:CURR:PROT " + NUM)]
B2900_PEAK = re.compile(r":SOUR[12]:VOLT:TRIG " + NUM)
B2900_WIDTH = re.compile(r":SOUR[12]:PULS:WIDT " + NUM)
PULSE = re.compile(r"print\(ConfigPulseVMeasureI\(smu[ab], " + NUM + ", " + NUM + ", " + NUM
                   + ", " + NUM + ", ")

finite = st.floats(-6.0, 6.0, allow_nan=False)
cells = st.tuples(st.integers(0, 2), st.integers(0, 2))
schemes = st.sampled_from(list(BiasScheme))
ops = st.one_of(
    st.tuples(st.just("read"), cells, finite, schemes),
    st.tuples(st.just("pulse"), cells, finite, schemes,
              st.floats(1e-6, 5e-3, allow_nan=False)),
    st.tuples(st.just("mvm"), st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=3,
                                       max_size=3)),
    st.tuples(st.just("read"), cells, st.sampled_from([float("nan"), float("inf"), 0.0]),
              schemes),
)


@st.composite
def limits(draw: st.DrawFn) -> BenchLimits:
    v_max = draw(st.floats(1.0, 3.0))
    return BenchLimits(
        v_max=v_max,
        pulse_v_max=draw(st.floats(0.5, v_max)),
        pulse_v_min=-draw(st.floats(0.5, v_max)),
        read_v_max=draw(st.floats(0.1, min(0.5, v_max))),
        pulse_width_min=1e-4,
        pulse_width_max=draw(st.floats(1e-4, 2e-3)),
        compliance=draw(st.floats(1e-5, 1e-2)),
    )


def _within(lim: BenchLimits, op: tuple) -> bool:
    kind = op[0]
    if kind == "read":
        v = op[2]
        return bool(np.isfinite(v)) and v != 0.0 and abs(v) <= lim.read_v_max
    if kind == "pulse":
        v, w = op[2], op[4]
        return lim.pulse_v_min <= v <= lim.pulse_v_max and \
            lim.pulse_width_min <= w <= lim.pulse_width_max
    return max(abs(x) for x in op[1]) <= lim.read_v_max


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits(), sequence=st.lists(ops, min_size=1, max_size=6),
       smu=st.sampled_from(["k2600", "b29"]))
def test_no_command_beyond_the_limits(lim: BenchLimits, sequence: list[tuple], smu: str) -> None:
    world = World(np.full((3, 3), 1e-5), buses=B2900_BUSES if smu == "b29" else None)
    cfg = bench_config(smu=smu).model_copy(update={"limits": lim})
    xbar = open_bench(cfg, world.transport).crossbar
    for op in sequence:
        before = len(world.lines)
        ok = _within(lim, op)
        try:
            if op[0] == "read":
                xbar.read([op[1]], op[2], op[3])
            elif op[0] == "pulse":
                xbar.pulse(op[1], op[2], op[4], op[3])
            else:
                xbar.mvm(np.array(op[1]))
        except LimitViolation:
            assert not ok, f"{op} is within {lim} but was refused"
            assert len(world.lines) == before, "a refused operation sent commands"
            continue
        assert ok, f"{op} is outside {lim} but was executed"
    for _, line in world.lines:
        for pat in LEVEL:
            m = pat.fullmatch(line)
            if m:
                assert abs(float(m[1])) <= lim.v_max, line
        for pat in LIMIT:
            m = pat.fullmatch(line)
            if m:
                assert float(m[1]) <= lim.compliance, line
        m = PULSE.match(line)
        if m:
            level, comp, width = float(m[2]), float(m[3]), float(m[4])
            assert lim.pulse_v_min <= level <= lim.pulse_v_max, line
            assert width <= lim.pulse_width_max, line
            assert comp <= lim.compliance, line
        m = B2900_PEAK.fullmatch(line)
        if m:
            assert lim.pulse_v_min <= float(m[1]) <= lim.pulse_v_max, line
        m = B2900_WIDTH.fullmatch(line)
        if m:
            assert float(m[1]) <= lim.pulse_width_max, line
    assert not world.violations
    assert all(abs(v) <= lim.v_max for v in world.levels_seen)
