"""Unit tests of the safety helpers with minimal role doubles."""

from __future__ import annotations

import math
import signal

import pytest

from xbarlab.bench.roles import Crosspoint
from xbarlab.bench.safety import (
    BenchFault,
    SafeStateError,
    check_levels,
    guarded,
    switch,
)
from xbarlab.limits import BenchLimits, LimitViolation


class Smu:
    def __init__(self, name: str, on: bool = False) -> None:
        self.name, self.output_on = name, on


class Matrix:
    name = "mtx"

    def __init__(self, sticky: set[Crosspoint] | None = None) -> None:
        self.state: set[Crosspoint] = set()
        self.sticky = sticky or set()  # relays that refuse to open (welded)
        self.calls: list[str] = []

    def open_all(self) -> None:
        self.calls.append("open")
        self.state = set(self.sticky)

    def close_crosspoints(self, points) -> None:
        self.calls.append("close")
        self.state |= set(points)

    def closed(self) -> set[Crosspoint]:
        return set(self.state)


P = [Crosspoint(1, "A", 1), Crosspoint(1, "B", 4)]


def test_switch_refuses_with_an_output_on() -> None:
    m = Matrix()
    with pytest.raises(BenchFault, match=r"outputs on.*smu2"):
        switch(m, [Smu("smu1"), Smu("smu2", on=True)], P)
    assert m.calls == []


def test_switch_is_break_before_make_and_verified() -> None:
    m = Matrix()
    switch(m, [Smu("smu1")], P)
    assert m.calls == ["open", "close"] and m.state == set(P)


def test_a_welded_relay_stops_the_switching() -> None:
    m = Matrix(sticky={Crosspoint(1, "C", 2)})
    with pytest.raises(BenchFault, match=r"still closed.*1C02"):
        switch(m, [Smu("smu1")], P)
    assert m.calls == ["open"]


def test_levels() -> None:
    lim = BenchLimits(v_max=2.0, pulse_v_max=2.0, pulse_v_min=-2.0)
    check_levels(lim, {"drive": 2.0, "bias": math.nan})
    for bad in (2.01, -2.5, math.inf):
        with pytest.raises(LimitViolation, match=r"drive"):
            check_levels(lim, {"drive": bad})


def test_guarded_runs_the_safe_state_on_keyboard_interrupt_and_not_on_success() -> None:
    calls: list[int] = []
    with guarded(lambda: calls.append(1)):
        pass
    assert calls == []
    with pytest.raises(KeyboardInterrupt), guarded(lambda: calls.append(1)):
        raise KeyboardInterrupt
    assert calls == [1]


def test_guarded_reports_a_failing_safe_state_with_the_cause() -> None:
    def broken() -> None:
        raise OSError("matrix unreachable")

    with pytest.raises(SafeStateError, match=r"ValueError: bad.*matrix unreachable"), \
            guarded(broken):
        raise ValueError("bad")


def test_guarded_leaves_an_existing_sigterm_handler_alone() -> None:
    def mine(signum, frame) -> None:  # pragma: no cover - never delivered
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with guarded(lambda: None):
            assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
