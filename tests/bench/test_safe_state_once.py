"""The bench backend's own safety bookkeeping (issue 11): limits of the bench config win over
looser ones given in code, a failed safe state is tried once (then only by the supervisor),
and the confirmed safe state and a reopened link are events of the run."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bench.fake_world import World, bench_config
from xbarlab.bench.crossbar import BenchCrossbar
from xbarlab.bench.safety import SafeStateError
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import Document, Event, EventKind, RunStatus, RunStop
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.transports import TransportError
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits, LimitViolation
from xbarlab.messages import Plan, Pulse, Read

G = np.full((3, 3), 200e-6)
LOOSE = BenchLimits(v_max=10.0, pulse_v_max=9.0, pulse_v_min=-9.0, read_v_max=1.0,
                    pulse_width_min=1e-9, pulse_width_max=1.0, compliance=0.1)


def test_a_crossbar_built_in_code_with_looser_limits_keeps_the_bench_configs() -> None:
    world = World(G)
    bench = open_bench(bench_config(), world.transport)
    d = bench.drivers
    mine = BenchCrossbar((3, 3), LOOSE, drive=d["drive"], sense=d["sense"],  # type: ignore[arg-type]
                         bias_row=d["bias_row"], bias_col=d["bias_col"],  # type: ignore[arg-type]
                         matrix=d["matrix"], wiring=bench.crossbar.wiring)  # type: ignore[arg-type]
    assert mine.limits == bench_config().limits
    sent = len(world.lines)
    with pytest.raises(LimitViolation, match=r"\+2\.9 V"):
        mine.pulse((0, 0), 2.9, 1e-4, BiasScheme.HALF)
    with pytest.raises(LimitViolation):
        mine.read([(0, 0)], 0.8, BiasScheme.GROUNDED)
    assert len(world.lines) == sent  # nothing reached any instrument
    assert max(abs(v) for v in world.levels_seen or [0.0]) <= 3.0


def _lost_link_world() -> World:
    world = World(G)

    def lose(inst: str, line: str) -> None:
        if inst == "k2600" and "measure" in line:
            world.fail[""] = TransportError(f"{inst}: link lost")  # every line from now on
    world.hook = lose
    return world


def test_a_lost_link_ends_the_run_with_one_safe_state_attempt() -> None:
    world = _lost_link_world()
    xbar = open_bench(bench_config(), world.transport).crossbar
    docs: list[Document] = []
    result = RunEngine(xbar, xbar.limits, [docs.append]).run(_one_read(), protocol="t")
    assert result.status is RunStatus.FAILED
    assert "link lost" in result.reason and "safe state" in result.reason
    attempts = len(world.lines)
    with pytest.raises(SafeStateError):  # raised again, nothing sent again
        xbar.safe_state()
    assert len(world.lines) == attempts
    faults = [e for e in docs if isinstance(e, Event) and e.kind is EventKind.FAULT]
    assert len(faults) == 1 and not [e for e in docs if isinstance(e, Event)
                                     and e.kind is EventKind.SAFE_STATE]
    assert isinstance(docs[-1], RunStop)


def _one_read() -> Plan:
    yield Read(((0, 0),), 0.2)


def test_the_confirmed_safe_state_and_a_reopened_link_are_events() -> None:
    world = World(G)
    state = {"armed": False, "fired": False}

    def once(inst: str, line: str) -> None:
        if state["armed"] and not state["fired"] and line == "smua.abort()":
            state["fired"] = True
            raise TransportError("k2600: connection reset")
    world.hook = once
    xbar = open_bench(bench_config(), world.transport).crossbar

    def plan() -> Plan:
        yield Pulse((1, 1), 1.2, 1e-4, BiasScheme.HALF)
        yield Read(((1, 1),), 0.2)
        state["armed"] = True  # the final safe state meets a reset connection once

    docs: list[Document] = []
    result = RunEngine(xbar, xbar.limits, [docs.append]).run(plan(), protocol="t")
    assert result.ok, result.reason
    kinds = [e.kind for e in docs if isinstance(e, Event)]
    assert state["fired"] and kinds[-2:] == [EventKind.SAFE_STATE, EventKind.RECONNECT]
    link = next(e for e in docs if isinstance(e, Event) and e.kind is EventKind.RECONNECT)
    assert "reopening the link" in link.message and "k2600" in link.message
    assert world.safe()


def test_a_second_sigterm_during_the_operations_safe_state_waits_for_it(
        capfd: pytest.CaptureFixture[str]) -> None:
    import os
    import signal

    world = World(G)
    sent = {"first": False, "second": False}

    def hook(inst: str, line: str) -> None:
        if not sent["first"] and inst == "k2600" and "measure" in line:
            sent["first"] = True
            os.kill(os.getpid(), signal.SIGTERM)  # the run is aborted mid-operation
        elif sent["first"] and not sent["second"] and line == "smua.abort()":
            sent["second"] = True
            os.kill(os.getpid(), signal.SIGTERM)  # ... and again while it makes the bench safe
    world.hook = hook
    xbar = open_bench(bench_config(), world.transport).crossbar
    docs: list[Document] = []
    result = RunEngine(xbar, xbar.limits, [docs.append]).run(_one_read(), protocol="t")
    assert sent["second"] and result.status is RunStatus.ABORTED
    assert result.reason == "SIGTERM received" and world.safe()
    assert "SIGTERM ignored" in capfd.readouterr().err
    kinds = [e.kind for e in docs if isinstance(e, Event)]
    assert kinds == [EventKind.SAFE_STATE]
