"""The same protocols on the `sim` backend and on the emulated bench (BenchCrossbar + real drivers
+ pyvisa-py sockets / pyserial pty + emulated instruments + the same SimCrossbar) give the same
operation sequence and the same results: equal (to float rounding) with noise off, statistically
equal with noise on."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from tests.emulators.benches import (
    B2900_707B,
    BOARD,
    K2600_707B,
    SIM,
    TARGET,
    WV_PARAMS,
    bench_config,
    emulated,
    events,
    operations,
    run,
    sim_backend,
)
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import Document, EventKind, RunStatus
from xbarlab.engine import RunResult
from xbarlab.messages import Mvm, Plan, Pulse, Read
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import write_verify_array

BENCHES = {"2600+2450+707B": K2600_707B, "B2900+2450+707B": B2900_707B, "board": BOARD}
RTOL = 1e-12  # float summation order differs (one case at a time vs a batch)


def _compare(sim_docs: list, emu_docs: list) -> None:
    assert operations(emu_docs) == operations(sim_docs)
    for a, b in zip(events(sim_docs), events(emu_docs), strict=True):
        if a.kind is EventKind.READ:
            np.testing.assert_allclose(b.currents, a.currents, rtol=RTOL, atol=0)
            np.testing.assert_array_equal(b.compliance, a.compliance)
        elif a.kind is EventKind.MVM:
            assert a.mvm_out is not None and b.mvm_out is not None
            np.testing.assert_allclose(b.mvm_out, a.mvm_out, rtol=RTOL, atol=1e-18)
        elif a.kind is EventKind.CHECKPOINT:
            assert b.message == a.message
            assert b.data is not None and a.data is not None
            assert b.data["converged"] == a.data["converged"]
            assert b.data["n_pulses"] == a.data["n_pulses"]


def _assert_new_threads_end(before: set[threading.Thread], wait: float = 10.0) -> None:
    """Every thread started since `before` ends within `wait` s. Counting all live threads
    instead fails under load when an unrelated thread of an earlier test (a log writer's flush
    clock, a pyvisa-py helper) ends or starts during the block."""
    deadline = time.monotonic() + wait
    for t in set(threading.enumerate()) - before:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert alive == [], alive


def _both(data: dict[str, Any], plan: Plan, plan_again: Plan, sim: SimConfig = SIM
          ) -> tuple[RunResult, list[Document], RunResult, list[Document], np.ndarray]:
    cfg = bench_config(data)
    ref, ref_docs = run(sim_backend(cfg, sim), cfg, plan)
    before = set(threading.enumerate())
    with emulated(cfg, sim) as (emu, bench):
        got, docs = run(bench.crossbar, cfg, plan_again)
        bench.close()
        assert emu.safe, emu.unsafe()
        assert emu.violations == []
        assert emu.server_errors == []
        g_emulated = emu.sim.g.copy()
    _assert_new_threads_end(before)  # every server thread joined
    return ref, ref_docs, got, docs, g_emulated


@pytest.mark.parametrize("bench", list(BENCHES))
def test_read_map_agrees(bench: str) -> None:
    ref, ref_docs, got, docs, _ = _both(BENCHES[bench], read_map((8, 8)), read_map((8, 8)))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    _compare(ref_docs, docs)
    np.testing.assert_allclose(got.value, ref.value, rtol=RTOL)
    assert np.all(ref.value > 0)  # a real map, not zeros on both sides


@pytest.mark.parametrize("bench", ["2600+2450+707B", "board"])
def test_write_verify_8x8_agrees(bench: str) -> None:
    targets = target_map(TARGET, (8, 8))
    ref, ref_docs, got, docs, g_emulated = _both(
        BENCHES[bench], write_verify_array(targets, WV_PARAMS),
        write_verify_array(targets, WV_PARAMS))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    _compare(ref_docs, docs)
    assert got.value.converged == ref.value.converged == 64
    np.testing.assert_allclose(got.value.final, ref.value.final, rtol=RTOL)
    pulses = events(docs, EventKind.PULSE)
    assert len(pulses) > 64  # the protocol did program the array
    # the emulated devices went through the same states as the simulator's
    sim_after = sim_backend(bench_config(BENCHES[bench]))
    run(sim_after, bench_config(BENCHES[bench]), write_verify_array(targets, WV_PARAMS))
    np.testing.assert_allclose(g_emulated, sim_after.g, rtol=1e-9)  # type: ignore[attr-defined]


def _mvm_plan(v: np.ndarray) -> Plan:
    yield Mvm(v)
    yield Read(((0, 0), (7, 7)), 0.2, BiasScheme.GROUNDED)


@pytest.mark.parametrize("bench", list(BENCHES))
def test_mvm_agrees(bench: str) -> None:
    v = np.random.default_rng(3).uniform(-0.3, 0.3, size=(3, 8))
    ref, ref_docs, got, docs, _ = _both(BENCHES[bench], _mvm_plan(v), _mvm_plan(v))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    _compare(ref_docs, docs)
    out = events(docs, EventKind.MVM)[0].mvm_out
    assert out is not None and np.abs(out).max() > 1e-6


def _reads(n: int) -> Plan:
    for _ in range(n):
        yield Read(None, 0.2, BiasScheme.GROUNDED)


def test_noise_on_agrees_statistically() -> None:
    """Same devices (same seed), independent read noise: means agree within their standard
    errors, and the spread is the simulator's."""
    sim = SimConfig(rows=8, cols=8, noise=True, seed=11)
    n = 6
    ref, ref_docs, got, docs, _ = _both(K2600_707B, _reads(n), _reads(n), sim)
    assert ref.ok and got.ok
    assert operations(docs) == operations(ref_docs)
    a = np.array([e.currents for e in events(ref_docs, EventKind.READ)])
    b = np.array([e.currents for e in events(docs, EventKind.READ)])
    assert not np.allclose(a[0], a[1])  # noise is really on
    se = np.sqrt(a.var(axis=0, ddof=1) / n + b.var(axis=0, ddof=1) / n)
    z = (b.mean(axis=0) - a.mean(axis=0)) / se
    assert np.mean(np.abs(z) < 3.5) > 0.95, z
    ratio = b.std(axis=0, ddof=1).mean() / a.std(axis=0, ddof=1).mean()
    assert 0.6 < ratio < 1.6, ratio


def test_refused_operation_never_reaches_the_emulator() -> None:
    """A read beyond the bench limits is refused by the engine on both backends alike."""
    def plan() -> Plan:
        yield Read(((0, 0),), 0.2, BiasScheme.GROUNDED)
        yield Read(((0, 0),), 2.0, BiasScheme.GROUNDED)

    ref, ref_docs, got, docs, _ = _both(K2600_707B, plan(), plan())
    assert ref.status is got.status is RunStatus.FAILED
    assert operations(docs) == operations(ref_docs)


def _random_ops(seed: int, schemes: tuple[BiasScheme, ...], n: int = 40) -> list[Any]:
    """A reproducible mix of reads and pulses over cells, schemes and amplitudes."""
    rng = np.random.default_rng(seed)
    ops: list[Any] = []
    for _ in range(n):
        cell = (int(rng.integers(8)), int(rng.integers(8)))
        scheme = schemes[int(rng.integers(len(schemes)))]
        if rng.random() < 0.5:
            ops.append(Read((cell,), float(rng.choice([0.1, 0.2, -0.2, 0.3])), scheme))
        else:
            v = float(rng.choice([0.7, 1.0, 1.3, -0.9, -1.2]))
            ops.append(Pulse(cell, v, 1e-4, scheme if scheme is not BiasScheme.FLOATING
                             else BiasScheme.HALF))
    return ops


def _replay(ops: list[Any]) -> Plan:
    for op in ops:  # noqa: UP028 - the engine send()s results: a list iterator cannot take them
        yield op


@pytest.mark.parametrize(("bench", "schemes"), [
    ("2600+2450+707B", tuple(BiasScheme)),
    ("B2900+2450+707B", (BiasScheme.HALF, BiasScheme.GROUNDED, BiasScheme.FLOATING)),
])
def test_random_operations_agree_under_every_scheme(bench: str,
                                                    schemes: tuple[BiasScheme, ...]) -> None:
    """Reads and pulses under V/2, V/3, grounded and floating biasing (floating lines solved by
    Kirchhoff's law on nonlinear devices) give what the simulator gives."""
    ops = _random_ops(5, schemes)
    ref, ref_docs, got, docs, g_emulated = _both(BENCHES[bench], _replay(ops), _replay(ops))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    for a, b in zip(events(ref_docs), events(docs), strict=True):
        if a.kind is EventKind.READ:
            np.testing.assert_allclose(b.currents, a.currents, rtol=1e-9)
    sim_after = sim_backend(bench_config(BENCHES[bench]))
    run(sim_after, bench_config(BENCHES[bench]), _replay(ops))
    np.testing.assert_allclose(g_emulated, sim_after.g, rtol=1e-9)  # type: ignore[attr-defined]


def test_write_verify_with_noise_agrees_statistically() -> None:
    """Noise on: the trajectories differ (independent draws), the outcome does not: every cell
    converges on both, with pulse counts and final errors of the same size."""
    sim = SimConfig(rows=8, cols=8, noise=True, seed=3)
    targets = target_map(TARGET, (8, 8))
    ref, ref_docs, got, docs, _ = _both(K2600_707B, write_verify_array(targets, WV_PARAMS),
                                        write_verify_array(targets, WV_PARAMS), sim)
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) != operations(ref_docs)  # the noise is really independent
    a, b = ref.value, got.value
    assert a.converged == b.converged == 64
    assert 0.7 < b.n_pulses / a.n_pulses < 1.4, (a.n_pulses, b.n_pulses)
    err_a = np.median(np.abs(a.final - targets) / targets)
    err_b = np.median(np.abs(b.final - targets) / targets)
    assert 0.5 < err_b / err_a < 2.0, (err_a, err_b)
