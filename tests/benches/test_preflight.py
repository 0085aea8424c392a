"""Preflight: one line per reason a session's pulses cannot run on a backend, naming the setting."""

from __future__ import annotations

import pytest

from xbarlab.bench.arctwo import CAPABILITY as ARC2
from xbarlab.bench.preflight import seconds, session_problems
from xbarlab.crossbar import BiasScheme, PulseCapability
from xbarlab.limits import BenchLimits

SMU = PulseCapability(source="the SMU smu.a's hardware-timed pulses", width_min=1e-4,
                      width_max=1.0)


@pytest.mark.parametrize(("x", "text"), [(1e-6, "1 µs"), (2e-7, "200 ns"), (4e-8, "40 ns"),
                                         (1e-4, "100 µs"), (1e-3, "1 ms"), (0.49, "490 ms"),
                                         (2.0, "2 s")])
def test_seconds_with_si_prefixes(x: float, text: str) -> None:
    assert seconds(x) == text


def test_fitting_session_has_no_problems() -> None:
    assert session_problems([1e-6], BiasScheme.HALF, BiasScheme.GROUNDED, ARC2,
                            [("session", BenchLimits())]) == []
    assert session_problems([2e-7], BiasScheme.FLOATING, BiasScheme.THIRD, ARC2) == []


def test_each_problem_is_one_line_naming_the_setting() -> None:
    lines = session_problems([1e-6], BiasScheme.HALF, None, SMU)
    assert lines == ["pulse width 1 µs (protocol.params.width) is outside the range of the SMU "
                     "smu.a's hardware-timed pulses [100 µs, 1 s]: set protocol.params.width "
                     "within it, or run the session on an ArC TWO (examples/bench/arc2.yaml) "
                     "or a pulse-generator bench (examples/bench/pulse_33500_707b.yaml)"]
    lines = session_problems([3.5e-8, 1.005e-6], BiasScheme.THIRD, BiasScheme.FLOATING, ARC2)
    assert len(lines) == 4
    assert "35 ns" in lines[0] and "[40 ns, 500 ms]" in lines[0]
    assert lines[1] == ("pulse width 1.005 µs (protocol.params.width) is not a multiple of the "
                        "10 ns step of ArC TWO high-speed drivers (pulse_one): round it")
    assert "protocol.params.pulse_scheme" in lines[2] and "v/2, floating" in lines[2]
    assert "protocol.params.read_scheme" in lines[3]


def test_session_and_bench_limits_are_named() -> None:
    lines = session_problems([1e-6], BiasScheme.HALF, None, None,
                             [("session", BenchLimits(pulse_width_min=1e-5)),
                              ("bench", BenchLimits())])
    assert lines == ["pulse width 1 µs (protocol.params.width) is outside the session limits "
                     "[10 µs, 1 ms]: change the width or session limits.pulse_width_min / "
                     "pulse_width_max"]
