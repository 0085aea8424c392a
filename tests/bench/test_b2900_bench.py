"""The same bench with a Keysight B2902A as drive (channel 1) and sense (channel 2) SMUs."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tests.bench.fake_world import B2900_BUSES, World, bench_config
from xbarlab.bench.safety import BenchAborted
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.registry import open_bench
from xbarlab.limits import LimitViolation

G = np.array([[100e-6, 150e-6, 200e-6],
              [250e-6, 300e-6, 350e-6],
              [400e-6, 450e-6, 500e-6]])


@pytest.fixture
def world() -> World:
    return World(G, buses=B2900_BUSES)


def _xbar(world: World):
    return open_bench(bench_config(smu="b29"), world.transport).crossbar


def test_reads(world: World) -> None:
    xbar = _xbar(world)
    r = xbar.read(None, 0.2, BiasScheme.GROUNDED)
    np.testing.assert_allclose(r.conductances.reshape(3, 3), G, rtol=1e-5)
    r = xbar.read([(2, 1)], 0.2, BiasScheme.HALF)
    assert r.currents[0] == pytest.approx(G[2, 1] * 0.2 + (G[0, 1] + G[1, 1]) * 0.1, rel=1e-5)
    assert all(not s.on for s in world.smus.values())


def test_pulse_with_the_b2900_pulse_shape(world: World) -> None:
    xbar = _xbar(world)
    p = xbar.pulse((0, 2), 1.8, 2e-4, BiasScheme.HALF)
    assert world.smus["b29.1"].pulses == [(1.8, 2e-4)]
    assert p.current == pytest.approx(G[0, 2] * 1.8 + (G[0, 0] + G[0, 1]) * 0.9, rel=1e-5)
    with pytest.raises(LimitViolation, match=r"b29\.1"):
        xbar.pulse((0, 2), 1.8, 5e-5, BiasScheme.HALF)  # below the 100 us the driver accepts


def test_mvm(world: World) -> None:
    v = np.array([0.05, 0.0, -0.1])
    np.testing.assert_allclose(_xbar(world).mvm(v).currents[0], v @ G, rtol=1e-5)


def test_sigterm_mid_read_reaches_the_safe_state(world: World) -> None:
    fired = []

    def hook(inst: str, line: str) -> None:
        if line == ":MEAS:CURR? (@2)" and not fired:
            fired.append(line)
            os.kill(os.getpid(), signal.SIGTERM)

    world.hook = hook
    with pytest.raises(BenchAborted):
        _xbar(world).read(None, 0.2, BiasScheme.THIRD)
    assert world.safe()
