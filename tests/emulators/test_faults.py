"""Faults injected in the emulated instruments, at points spread over a protocol: every run ends
in the safe state as the emulators see it (outputs off, 0 V, relays open), the fault is in
the log (a FAULT event naming it, or the compliance flag of a trip) and every measurement made
before the fault is logged unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.emulators.benches import (
    BOARD,
    K2600_707B,
    SIM,
    bench_config,
    emulated,
    events,
    run,
)
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import Document, EventKind, RunStatus
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.emulators.faults import FaultKind, FaultPlan, is_query
from xbarlab.drivers.registry import open_bench
from xbarlab.messages import Mvm, Plan, Pulse, Read

TIMEOUT = 1.0  # s, the faulted link's I/O timeout (the others': benches.HEALTHY_TIMEOUT)
CFG = bench_config(K2600_707B)


def mixed_plan() -> Plan:
    for cell in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yield Read((cell,), 0.2, BiasScheme.GROUNDED)
    yield Pulse((0, 0), 0.8, 1e-4, BiasScheme.HALF)
    yield Read(((0, 0),), 0.2, BiasScheme.GROUNDED)
    v = np.zeros(8)
    v[[2, 5]] = 0.1
    yield Mvm(v)
    yield Read(((2, 2),), 0.2, BiasScheme.GROUNDED)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The fault-free run: its events and how many lines (queries) each instrument got."""
    with emulated(CFG, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        bench.close()
        lines = {n: list(e.received) for n, e in emu.instruments.items()}
    assert result.ok, result.reason
    return {"docs": docs, "lines": lines}


def _assert_earlier_kept(docs: list[Document], ref_docs: list[Document]) -> None:
    got = events(docs, EventKind.READ, EventKind.PULSE, EventKind.MVM)
    ref = events(ref_docs, EventKind.READ, EventKind.PULSE, EventKind.MVM)
    assert len(got) <= len(ref)
    for a, b in zip(got, ref, strict=False):
        assert a.kind is b.kind and a.step == b.step
        np.testing.assert_array_equal(a.cells, b.cells)
        if a.kind is EventKind.MVM:
            np.testing.assert_allclose(a.mvm_out, b.mvm_out, rtol=1e-12)  # type: ignore[arg-type]
        elif a.kind is EventKind.READ:
            np.testing.assert_allclose(a.currents, b.currents, rtol=1e-12)


FAILING = ["no_reply", "garbage", "truncate", "error"]
CASES = [(inst, kind, frac) for inst in ("smu", "bias_rows", "matrix") for kind in FAILING
         for frac in (0.15, 0.5, 0.9)]


@pytest.mark.parametrize(("instrument", "kind", "frac"), CASES)
def test_fault_ends_safe(reference: dict[str, Any], instrument: str, kind: FaultKind,
                         frac: float) -> None:
    ref_lines = reference["lines"][instrument]
    reply_fault = kind in ("no_reply", "garbage", "truncate")
    counted = [ln for ln in ref_lines if is_query(ln)] if reply_fault else ref_lines
    after = max(2, int(frac * len(counted)))  # line 1 is the identity query at connect
    plan = FaultPlan()
    plan.add(kind, after=after, queries=reply_fault)
    with emulated(CFG, faults={instrument: plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        safe, unsafe = emu.safe, emu.unsafe()
        assert emu.server_errors == []
    assert plan.log, "the fault never fired"
    assert safe, unsafe
    assert result.status is RunStatus.FAILED, f"{kind} at line {after} went unnoticed"
    faults = events(docs, EventKind.FAULT)
    assert faults and result.reason.startswith(faults[0].message)
    _assert_earlier_kept(docs, reference["docs"])


@pytest.mark.parametrize("instrument", ["smu", "bias_rows", "matrix"])
@pytest.mark.parametrize("frac", [0.15, 0.5, 0.9])
def test_dropped_link_stops_the_run(reference: dict[str, Any], instrument: str,
                                    frac: float) -> None:
    """The link to one instrument closes: the run stops with the fault (and the failed safe
    step) in the log, earlier measurements are kept, every other instrument ends safe."""
    after = max(2, int(frac * len(reference["lines"][instrument])))
    plan = FaultPlan()
    plan.add("drop", after=after)
    with emulated(CFG, faults={instrument: plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        others = [u for u in emu.unsafe() if not u.startswith(f"{instrument}:")]
    assert plan.log and others == []
    assert result.status is RunStatus.FAILED
    assert events(docs, EventKind.FAULT)
    _assert_earlier_kept(docs, reference["docs"])


@pytest.mark.parametrize(("instrument", "match", "after"), [
    ("smu", "print(smub.measure", 3),  # outputs on
    ("matrix", "print(channel.getclose", 2),  # the check after closing: relays closed
])
def test_dropped_link_instrument_itself_ends_safe(instrument: str, match: str,
                                                  after: int) -> None:
    plan = FaultPlan()
    plan.add("drop", match=match, after=after)
    with emulated(CFG, faults={instrument: plan}, timeout=TIMEOUT) as (emu, bench):
        run(bench.crossbar, CFG, mixed_plan())
        assert plan.log
        assert emu.safe, emu.unsafe()


@pytest.mark.parametrize("instrument", ["smu", "matrix", "bias_cols"])
def test_latency_within_timeout_is_harmless(reference: dict[str, Any], instrument: str) -> None:
    plan = FaultPlan()
    plan.add("latency", after=5, times=3, delay=0.05)
    with emulated(CFG, faults={instrument: plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        safe = emu.safe
    assert len(plan.log) == 3
    assert result.ok and safe
    _assert_earlier_kept(docs, reference["docs"])
    assert len(events(docs)) == len(events(reference["docs"]))


@pytest.mark.parametrize("frac", [0.3, 0.8])
def test_late_reply_past_the_timeout(reference: dict[str, Any], frac: float) -> None:
    """A reply that arrives after the timeout: the run stops, the bench still ends safe."""
    n = sum(is_query(ln) for ln in reference["lines"]["matrix"])
    plan = FaultPlan()
    plan.add("latency", after=max(2, int(frac * n)), delay=2 * TIMEOUT, queries=True)
    with emulated(CFG, faults={"matrix": plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        safe, unsafe = emu.safe, emu.unsafe()
    assert plan.log and safe, unsafe
    assert result.status is RunStatus.FAILED
    _assert_earlier_kept(docs, reference["docs"])


@pytest.mark.parametrize("after", [1, 3, 6])
def test_compliance_trip_is_logged(reference: dict[str, Any], after: int) -> None:
    plan = FaultPlan()
    plan.add("trip", match="print(smub.measure.i()", after=after)
    with emulated(CFG, faults={"smu": plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, mixed_plan())
        safe = emu.safe
    assert plan.log and safe and result.ok
    flagged = [e for e in events(docs, EventKind.READ, EventKind.MVM) if e.compliance.any()]
    assert len(flagged) == 1
    ref_flagged = [e for e in events(reference["docs"], EventKind.READ, EventKind.MVM)
                   if e.compliance.any()]
    assert ref_flagged == []


BOARD_CFG = bench_config(BOARD)


@pytest.mark.parametrize("kind", ["no_reply", "garbage", "truncate", "error"])
@pytest.mark.parametrize("after", [4, 30])
def test_board_fault_ends_safe(kind: FaultKind, after: int) -> None:
    plan = FaultPlan()
    plan.add(kind, after=after)  # every XBL line gets a reply: any line may be hit
    with emulated(BOARD_CFG, faults={"board": plan}, timeout=TIMEOUT) as (emu, bench):
        result, docs = run(bench.crossbar, BOARD_CFG, mixed_plan())
        safe = emu.safe
    assert plan.log and safe
    assert result.status is RunStatus.FAILED
    assert events(docs, EventKind.FAULT)


def test_slow_output_off_never_lets_relays_switch_hot() -> None:
    """Instruments on their own threads (as real ones are) and a bias SMU that takes 5 ms to
    execute ':OUTP OFF': no relay may switch while its output is still on."""
    plan = FaultPlan()
    plan.add("latency", match=":OUTP OFF", after=1, times=0, delay=0.005)
    cfg = CFG
    with EmulatedBench(cfg, SIM, faults={"bias_rows": plan}, ordered=False) as emu:
        bench = open_bench(emu.config(timeout=5.0))
        try:
            result, _ = run(bench.crossbar, cfg, mixed_plan())
        finally:
            bench.close()
        assert result.ok, result.reason  # the run itself goes through: the race is silent
        assert emu.violations == []
