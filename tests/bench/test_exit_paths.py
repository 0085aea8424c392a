"""Every exit path of a bench operation ends in the safe state: outputs off, 0 V, relays open."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from tests.bench.fake_world import World, bench_config
from xbarlab.bench.safety import BenchAborted, OperationTimeout, SafeStateError
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import RunStatus, RunStop
from xbarlab.drivers.base import ReplyError
from xbarlab.drivers.registry import bench_session, open_bench
from xbarlab.drivers.transports import TransportTimeout
from xbarlab.engine import RunEngine
from xbarlab.messages import Pulse, Read

G = np.full((3, 3), 200e-6)
MEASURE_B = "print(smub.measure.i(), smub.source.compliance)"


def _live_world() -> World:
    return World(G)


def _midway(world: World, line: str, action) -> None:
    """Run `action` the first time the bench sends `line`, when outputs are on."""
    fired = {"done": False}

    def hook(inst: str, sent: str) -> None:
        if sent == line and not fired["done"]:
            fired["done"] = True
            assert any(s.on for s in world.smus.values()) and world.closed
            action()

    world.hook = hook


def test_garbage_reply_names_instrument_and_command_then_safe() -> None:
    world = _live_world()
    world.garbage[MEASURE_B] = "1.2e-0"  # truncated: no tab, no compliance flag
    xbar = open_bench(bench_config(), world.transport).crossbar
    with pytest.raises(ReplyError, match=r"k2600\.b.*smub\.measure\.i\(\).*'1\.2e-0'"):
        xbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    assert world.safe()


def test_transport_timeout_then_safe() -> None:
    world = _live_world()
    world.fail[MEASURE_B] = TransportTimeout("k2600: no reply within 2 s")
    xbar = open_bench(bench_config(), world.transport).crossbar
    with pytest.raises(TransportTimeout):
        xbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED)
    assert world.safe()


def test_keyboard_interrupt_then_safe() -> None:
    world = _live_world()

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    _midway(world, MEASURE_B, ctrl_c)
    xbar = open_bench(bench_config(), world.transport).crossbar
    with pytest.raises(KeyboardInterrupt):
        xbar.read(None, 0.2, BiasScheme.THIRD)
    assert world.safe()


def test_sigterm_then_safe() -> None:
    world = _live_world()
    _midway(world, MEASURE_B, lambda: os.kill(os.getpid(), signal.SIGTERM))
    xbar = open_bench(bench_config(), world.transport).crossbar
    with pytest.raises(BenchAborted):
        xbar.read(None, 0.2, BiasScheme.HALF)
    assert world.safe()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_operation_timeout_then_safe() -> None:
    world = _live_world()
    _midway(world, MEASURE_B, lambda: time.sleep(5))
    cfg = bench_config().model_copy(update={"operation_timeout": 0.2})
    xbar = open_bench(cfg, world.transport).crossbar
    t0 = time.monotonic()
    with pytest.raises(OperationTimeout):
        xbar.read([(1, 1)], 0.2, BiasScheme.GROUNDED)
    assert time.monotonic() - t0 < 2.0
    assert world.safe()


def test_failing_safe_state_step_does_not_skip_the_others() -> None:
    world = _live_world()
    bench = open_bench(bench_config(), world.transport)
    bench.crossbar.read([(0, 0)], 0.2, BiasScheme.HALF)
    world.fail["smua.abort()"] = TransportTimeout("k2600: gone")
    world.closed.add("1A01")
    with pytest.raises(SafeStateError, match=r"k2600.a"):
        bench.crossbar.safe_state()
    assert not world.closed  # the matrix was still opened
    assert not world.smus["brow"].on


def test_session_context_manager_is_safe_on_exception() -> None:
    world = _live_world()
    with pytest.raises(RuntimeError, match=r"boom"), \
            bench_session(bench_config(), world.transport) as xbar:
        xbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED)
        world.closed.add("1A01")  # pretend something was left closed
        raise RuntimeError("boom")
    assert world.safe()


def _plan():
    yield Read(cells=((0, 0), (1, 1)), v_read=0.2)
    yield Pulse(cell=(1, 1), voltage=1.2, width=1e-3)
    yield Read(cells=None, v_read=0.2)


def test_engine_run_sigterm_is_aborted_and_safe() -> None:
    world = _live_world()
    _midway(world, "print(InitiatePulseTest(1))", lambda: os.kill(os.getpid(), signal.SIGTERM))
    xbar = open_bench(bench_config(), world.transport).crossbar
    docs: list = []
    result = RunEngine(xbar, xbar.limits, [docs.append]).run(_plan(), protocol="t")
    assert result.status is RunStatus.ABORTED
    assert isinstance(docs[-1], RunStop)
    assert world.safe()


def test_engine_run_completes_and_logs_compliance() -> None:
    world = World(np.full((3, 3), 8e-3))  # 0.2 V * 8 mS = 1.6 mA > 1 mA compliance
    xbar = open_bench(bench_config(), world.transport).crossbar
    docs: list = []
    result = RunEngine(xbar, xbar.limits, [docs.append]).run(_plan(), protocol="t")
    assert result.ok, result.reason
    reads = [d for d in docs if getattr(d, "kind", None) == "read"]
    assert reads and all(np.asarray(d.compliance).all() for d in reads)
    assert world.safe()


def test_closing_twice_sends_nothing_the_second_time() -> None:
    world = _live_world()
    bench = open_bench(bench_config(), world.transport)
    bench.crossbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED)
    bench.close()
    assert world.safe()
    n = len(world.lines)
    bench.close()  # the links are closed: no safe state that would reopen them
    assert len(world.lines) == n
