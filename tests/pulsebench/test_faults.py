"""Faults of the pulse generator during a run: the run stops with the fault, and every output
ends off, 0 V, relays open (the generator's own output included where its link still works)."""

from __future__ import annotations

import pytest

from tests.emulators.benches import SIM, bench_config, emulated, events, run
from tests.pulsebench.benches import PULSE_BENCH
from xbarlab.crossbar import BiasScheme
from xbarlab.documents import EventKind, RunStatus
from xbarlab.drivers.emulators.faults import FaultPlan
from xbarlab.messages import Plan, Pulse, Read

CFG = bench_config(PULSE_BENCH)


def _plan() -> Plan:
    for k in range(6):
        yield Read(((k, k),), 0.2, BiasScheme.GROUNDED)
        yield Pulse((k, k), 1.2, 1e-6, BiasScheme.HALF)


@pytest.mark.parametrize(("kind", "match", "queries"), [
    ("error", "*TRG", False),       # the generator refuses the trigger
    ("no_reply", "*OPC?", True),    # it never says the pulse is done
    ("garbage", "OUTP?", True),     # its output state cannot be confirmed
])
def test_generator_fault_stops_the_run_safely(kind: str, match: str, queries: bool) -> None:
    plan = FaultPlan()
    plan.add(kind, match=match, after=3, queries=queries)  # type: ignore[arg-type]
    with emulated(CFG, SIM, faults={"fgen": plan}, timeout=1.0) as (emu, bench):
        result, docs = run(bench.crossbar, CFG, _plan())
        bench.close()
        safe, unsafe = emu.safe, emu.unsafe()
        violations = emu.violations
    assert plan.log, "the fault never fired"
    assert result.status is RunStatus.FAILED
    assert events(docs, EventKind.FAULT)
    assert safe, unsafe
    assert violations == []
