"""Bench configs and helpers shared by the emulator tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from xbarlab.bench.config import BenchConfig
from xbarlab.config import PatternTarget, SimConfig, WriteVerifyParams, validate_config
from xbarlab.crossbar import Crossbar
from xbarlab.documents import Document, Event, EventKind, RunStop
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.emulators.faults import FaultPlan
from xbarlab.drivers.registry import OpenBench, open_bench
from xbarlab.engine import RunEngine, RunResult
from xbarlab.messages import Plan
from xbarlab.sim.factory import build_sim_crossbar

LIMITS = {"v_max": 3.0, "pulse_v_max": 2.5, "pulse_v_min": -3.0, "read_v_max": 0.5,
          "pulse_width_min": 1e-4, "pulse_width_max": 1e-3, "compliance": 1e-3}
PINS = {"slot": 1, "col_slot": 2, "rows": list(range(1, 9)), "cols": list(range(1, 9)),
        "drive": "A", "sense": "B", "bias_row": "C", "bias_col": "D"}

# a 2636B drives (a) and senses (b), two 2450s bias the unselected rows / columns, a 707B routes
K2600_707B: dict[str, Any] = {
    "name": "emulated-8x8", "rows": 8, "cols": 8, "settle": 0.0,
    "instruments": {
        "smu": {"driver": "keithley2600", "address": "-", "identity": "Model 2636B"},
        "bias_rows": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "bias_cols": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "matrix": {"driver": "keithley707b", "address": "-", "identity": "Model 707B"},
    },
    "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "bias_rows",
              "bias_col": "bias_cols", "matrix": "matrix"},
    "pins": PINS, "limits": LIMITS,
}
# a B2902A drives (1) and senses (2); one 2450 biases every unselected line (v/2 and grounded)
B2900_707B: dict[str, Any] = {
    "name": "emulated-b2900", "rows": 8, "cols": 8, "settle": 0.0,
    "instruments": {
        "b29": {"driver": "keysight_b2900", "address": "-", "identity": "B2902A"},
        "bias": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "matrix": {"driver": "keithley707b", "address": "-", "identity": "Model 707B"},
    },
    "roles": {"drive": "b29.1", "sense": "b29.2", "bias_row": "bias", "matrix": "matrix"},
    "pins": {**PINS, "bias_col": None}, "limits": LIMITS,
}
BOARD: dict[str, Any] = {
    "name": "emulated-board", "rows": 8, "cols": 8,
    "instruments": {"board": {"driver": "serial_board", "address": "-",
                              "identity": "XBL-8x8", "timeout": 1.0}},
    "roles": {"board": "board"},
    # a compliance trip on the XBL board (error 6) becomes the measurement's compliance flag,
    # logged, and the run goes on (as on the matrix benches); the higher limit keeps the runs
    # on this bench free of clipped reads
    "limits": {**LIMITS, "pulse_width_min": 1e-7, "compliance": 1e-2},
}

SIM = SimConfig(rows=8, cols=8, noise=False, seed=7)
# converges on every cell of the 8 x 8 letter_x pattern in ~500 operations (fast tests)
WV_PARAMS = WriteVerifyParams(width=1e-4, tolerance=0.1, step=0.05, set_start=0.8,
                              reset_start=-0.8, max_pulses=40, max_pulses_at_limit=5)
TARGET = PatternTarget()


def bench_config(data: dict[str, Any], **update: Any) -> BenchConfig:
    return validate_config({**data, **update}, BenchConfig)


def sim_backend(cfg: BenchConfig, sim: SimConfig = SIM) -> Crossbar:
    return build_sim_crossbar(sim, compliance=cfg.limits.compliance)


HEALTHY_TIMEOUT = 5.0
"""s: the I/O timeout of every link without a fault plan. The emulators answer in
milliseconds, but a loaded 2-core machine can stall their thread for a few hundred ms, and a
spurious timeout on a healthy link turns a test about another link's fault into a different
run (CI once failed so at 0.3 s). Only a faulted link needs a short timeout, to keep the tests
quick where the fault is a missing reply."""


@contextlib.contextmanager
def emulated(cfg: BenchConfig, sim: SimConfig = SIM, faults: dict[str, FaultPlan] | None = None,
             timeout: float = 1.0) -> Iterator[tuple[EmulatedBench, OpenBench]]:
    """An emulated bench and the real bench stack (drivers, pyvisa-py / pyserial) on it.
    `timeout` is the I/O timeout of the links in `faults`; every other link waits at least
    `HEALTHY_TIMEOUT`."""
    healthy = max(timeout, HEALTHY_TIMEOUT)
    with EmulatedBench(cfg, sim, faults=faults) as emu:
        bench = open_bench(emu.config(timeout=healthy,
                                      timeouts={name: timeout for name in faults or {}}))
        try:
            yield emu, bench
        finally:
            with contextlib.suppress(Exception):
                bench.close()


def run(backend: Crossbar, cfg: BenchConfig, plan: Plan) -> tuple[RunResult, list[Document]]:
    docs: list[Document] = []
    result = RunEngine(backend, cfg.limits, [docs.append]).run(plan, protocol="test")
    return result, docs


BOOKKEEPING = (EventKind.SAFE_STATE, EventKind.RECONNECT, EventKind.COMPLIANCE)
"""Events that are not operations: the bench's confirmed safe state and reopened links, and
the compliance notes (the operations' own compliance flags are compared where it matters: a
pulse's drive current differs between the sim, which senses the column, and the bench, which
measures the drive SMU on the row)."""


def events(docs: list[Document], *kinds: EventKind) -> list[Event]:
    """Events of `kinds`; without kinds, every event but the bench's bookkeeping."""
    return [d for d in docs if isinstance(d, Event)
            and (d.kind in kinds if kinds else d.kind not in BOOKKEEPING)]


def operations(docs: list[Document]) -> list[tuple[Any, ...]]:
    """What was asked of the backend, in order: kind, step, scheme, cells, voltages, width."""
    out: list[tuple[Any, ...]] = []
    for e in events(docs):
        if e.kind is EventKind.MVM:
            assert e.mvm_in is not None
            out.append((e.kind, e.step, tuple(e.mvm_in.ravel())))
        else:
            out.append((e.kind, e.step, e.scheme, tuple(map(tuple, e.cells)),
                        tuple(e.voltages), e.width if e.width == e.width else None))
    return out


def stop(docs: list[Document]) -> RunStop:
    last = docs[-1]
    assert isinstance(last, RunStop)
    return last
