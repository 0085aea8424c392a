"""The ArC TWO backend on the emulated instrument gives what the `sim` backend gives: the same
operations and results (to the 32-bit floats the instrument returns) with noise off, the same
outcome with noise on; the instrument ends idle and was never asked for a level it clamps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.arctwo.helpers import LIMITS, emulated
from tests.emulators.benches import events, operations
from xbarlab.config import PatternTarget, SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme, Crossbar
from xbarlab.documents import Document, EventKind
from xbarlab.engine import RunEngine, RunResult
from xbarlab.messages import Mvm, Plan, Pulse, Read
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.write_verify import write_verify_array
from xbarlab.sim.factory import build_sim_crossbar

RTOL = 1e-6  # float32 readings (6e-8 relative resolution), far below the read noise (~1e-3)


def _run(backend: Crossbar, plan: Plan) -> tuple[RunResult, list[Document]]:
    docs: list[Document] = []
    return RunEngine(backend, LIMITS, [docs.append]).run(plan, protocol="t"), docs


@pytest.mark.parametrize("width", [1e-6, 2e-7])
def test_write_verify_16x16_agrees_with_sim(width: float) -> None:
    sim = SimConfig(rows=16, cols=16, noise=False, seed=7)
    targets = target_map(PatternTarget(), (16, 16))
    params = WriteVerifyParams(width=width)
    ref, ref_docs = _run(build_sim_crossbar(sim, compliance=LIMITS.compliance),
                         write_verify_array(targets, params))
    xbar, inst = emulated(sim)
    got, docs = _run(xbar, write_verify_array(targets, params))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    assert got.value.converged == ref.value.converged >= 250  # a few stuck devices never move
    np.testing.assert_allclose(got.value.final, ref.value.final, rtol=RTOL)
    pulses = events(docs, EventKind.PULSE)
    assert len(pulses) > 256 and {p.width for p in pulses} == {width}
    assert {p.nanos for p in inst.pulses} == {round(width * 1e9)}
    assert inst.safe and inst.clamped == []
    assert set(inst.mode) == {"open"}  # idle mode Float: every channel disconnected


def _random_ops(seed: int, n: int = 60) -> list[Any]:
    rng = np.random.default_rng(seed)
    ops: list[Any] = []
    for _ in range(n):
        cell = (int(rng.integers(8)), int(rng.integers(8)))
        if rng.random() < 0.5:
            scheme = (BiasScheme.GROUNDED, BiasScheme.HALF,
                      BiasScheme.THIRD)[int(rng.integers(3))]
            ops.append(Read((cell,), float(rng.choice([0.1, 0.2, -0.2, 0.3])), scheme))
        else:
            scheme = (BiasScheme.HALF, BiasScheme.FLOATING)[int(rng.integers(2))]
            ops.append(Pulse(cell, float(rng.choice([0.9, 1.3, -1.0, -1.4])),
                             float(rng.choice([4e-8, 2e-7, 1e-6, 1e-5])), scheme))
    ops.append(Mvm(rng.uniform(-0.3, 0.3, size=(2, 8))))
    ops.append(Read(None, 0.2, BiasScheme.HALF))
    return ops


def _replay(ops: list[Any]) -> Plan:
    for op in ops:  # noqa: UP028 - the engine send()s results
        yield op


@pytest.mark.parametrize("fidelity", ["ideal", "nonlinear"])
def test_every_read_scheme_pulse_scheme_and_mvm_agree(fidelity: str) -> None:
    """Grounded, V/2 and V/3 reads, V/2 and floating pulses from 40 ns to 10 us,
    MVM: on ideal wires and on wired nonlinear (sinh) devices, where sneak currents and the
    V/2 pulse's shifted levels (+V/2 / -V/2 instead of V / 0) are really exercised."""
    extra: dict[str, Any] = {} if fidelity == "ideal" else {
        "r_wire_row": 2.0, "r_wire_col": 2.0, "r_source": 10.0, "r_sense": 10.0}
    sim = SimConfig(rows=8, cols=8, noise=False, seed=3, fidelity=fidelity, **extra)
    ops = _random_ops(11)
    ref_xbar = build_sim_crossbar(sim, compliance=LIMITS.compliance)
    ref, ref_docs = _run(ref_xbar, _replay(ops))
    xbar, inst = emulated(sim)
    got, docs = _run(xbar, _replay(ops))
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    for a, b in zip(events(ref_docs), events(docs), strict=True):
        if a.kind is EventKind.READ:
            np.testing.assert_allclose(b.currents, a.currents, rtol=RTOL, atol=1e-15)
        elif a.kind is EventKind.MVM:
            np.testing.assert_allclose(b.mvm_out, a.mvm_out, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(inst.sim.g, ref_xbar.g, rtol=1e-9)  # type: ignore[attr-defined]
    assert inst.safe and inst.clamped == []


def test_noise_on_outcome_agrees() -> None:
    """Independent noise draws: trajectories differ, outcomes do not."""
    sim = SimConfig(rows=8, cols=8, noise=True, seed=5)
    targets = target_map(PatternTarget(), (8, 8))
    params = WriteVerifyParams(width=1e-6)
    ref, ref_docs = _run(build_sim_crossbar(sim, compliance=LIMITS.compliance),
                         write_verify_array(targets, params))
    xbar, inst = emulated(sim)
    inst.sim.rng = np.random.default_rng(99)  # same devices, independent noise draws
    got, docs = _run(xbar, write_verify_array(targets, params))
    assert ref.ok and got.ok
    assert operations(docs) != operations(ref_docs)
    a, b = ref.value, got.value
    assert abs(a.converged - b.converged) <= 1
    assert 0.7 < b.n_pulses / a.n_pulses < 1.4, (a.n_pulses, b.n_pulses)
    err_a = np.median(np.abs(a.final - targets) / targets)
    err_b = np.median(np.abs(b.final - targets) / targets)
    assert 0.5 < err_b / err_a < 2.0, (err_a, err_b)
