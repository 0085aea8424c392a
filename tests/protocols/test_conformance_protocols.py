"""Every characterisation protocol on the `sim` backend and on two emulated benches (real
drivers over pyvisa-py sockets to an emulated Keithley 2636B + 2450s + 707B, or over a pty to
the serial crossbar board; the same simulated crossbar behind them): the same operation
sequence, the same outcome.

Noise is off, so reads agree to float rounding. Waits are the exception: the simulator ages
its devices in device time (retention drift, volatile relaxation) while the emulated
instruments do not age theirs with wall-clock time, so the protocols with waits use durations
far below the model's time constants and compare within 0.1 % (the size of one read's noise);
the volatility case within 0.5 %: its pulse doubles G, and 1 % of the volatile 5 % of that
change relaxes in the simulator during the first 0.5 ms.
The curve tracer case reads at the read voltage: the current during a pulse is the drive
(row) current on a matrix bench but the sensed column's current in the simulator (each
includes different half-selected cells), so "read at bias" is not compared across backends.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from tests.emulators.benches import (
    BOARD,
    K2600_707B,
    bench_config,
    emulated,
    events,
    operations,
    run,
)
from xbarlab.config import SimConfig
from xbarlab.documents import EventKind
from xbarlab.protocol_configs import (
    ConvergeConfig,
    CurveTracerConfig,
    EnduranceConfig,
    FormingConfig,
    MultiStateConfig,
    RetentionConfig,
    SequenceConfig,
    SwitchSeekerConfig,
    VolatilityConfig,
)
from xbarlab.protocols.registry import PROTOCOLS, plan_for
from xbarlab.sim.factory import build_sim_crossbar

SIM = SimConfig(rows=8, cols=8, noise=False, seed=7)
PRISTINE = SimConfig(rows=8, cols=8, noise=False, seed=7, pristine=True)

CASES: dict[str, tuple[BaseModel, SimConfig, float]] = {
    "forming": (FormingConfig(cells=[[0, 0], [1, 1]], v_start=1.6, r_threshold=2e4),
                PRISTINE, 1e-9),
    "switch_seeker": (SwitchSeekerConfig(cells=[[2, 3]], v_start=0.6, v_step=0.2,
                                         trailer_reads=2), SIM, 1e-9),
    "converge": (ConvergeConfig(cells=[[0, 1], [3, 3]], target_g=250e-6, ramp="width",
                                tolerance=0.05, set_start=0.8, reset_start=-0.8, width=1e-4,
                                width_max=1e-3), SIM, 1e-9),
    "multistate": (MultiStateConfig(cells=[[4, 4]], reset_pulses=3, v_start=0.9, v_step=0.2,
                                    v_max=1.7, pulses_per_level=1, trailer_reads=2), SIM, 1e-9),
    "retention": (RetentionConfig(cells=[[0, 0], [5, 6]], duration=0.01, first=0.002,
                                  points=3), SIM, 1e-3),
    "endurance": (EnduranceConfig(cells=[[1, 2]], cycles=6, read_every=3), SIM, 1e-9),
    "curve_tracer": (CurveTracerConfig(cells=[[6, 1]], v_pos=1.2, v_neg=-1.2, v_step=0.3,
                                       cycles=2, read_at="v_read"), SIM, 1e-9),
    "volatility": (VolatilityConfig(cells=[[2, 2]], voltage=1.2, duration=0.002, first=0.0005,
                                    points=4), SIM, 5e-3),
    "sequence": (SequenceConfig.model_validate({"steps": [
        {"pulse": {"cell": [0, 0], "voltage": 1.2, "width": 1e-4}},
        {"loop": {"times": 2, "steps": [{"read": {"cells": [[0, 0], [7, 7]]}},
                                        {"delay": 0.001}]}},
        {"protocol": {"kind": "endurance", "cells": [[3, 4]], "cycles": 2, "read_every": 1}},
    ]}), SIM, 1e-3),
}


def test_every_characterisation_protocol_has_a_case() -> None:
    assert set(CASES) == set(PROTOCOLS) - {"write_verify_array", "read_map"}


def _outcome(value: Any) -> Any:
    """The comparable part of a protocol's return value (floats rounded by the caller)."""
    if isinstance(value, list):
        return [_outcome(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _outcome(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def _close(a: Any, b: Any, rtol: float, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], rtol, f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, rtol, f"{path}[{k}]")
    elif isinstance(a, np.ndarray | float) and not isinstance(a, bool):
        if path.endswith((".times", ".clock", ".seconds")):
            return  # wall-clock on the bench, device clock in the simulator
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-15, err_msg=path)
    elif a is None or isinstance(a, str | int | bool):
        assert a == b, f"{path}: {a!r} != {b!r}"


BENCHES = {"2600+2450+707B": K2600_707B, "board": BOARD}


@pytest.mark.parametrize("bench_name", list(BENCHES))
@pytest.mark.parametrize("name", list(CASES))
def test_protocol_agrees_on_sim_and_emulated_bench(name: str, bench_name: str) -> None:
    cfg_p, sim, rtol = CASES[name]
    bench = bench_config(BENCHES[bench_name])
    ref, ref_docs = run(build_sim_crossbar(sim, compliance=bench.limits.compliance), bench,
                        plan_for(cfg_p, (8, 8)))
    threads = threading.active_count()
    with emulated(bench, sim) as (emu, opened):
        got, docs = run(opened.crossbar, bench, plan_for(cfg_p, (8, 8)))
        opened.close()
        assert emu.safe, emu.unsafe()
        assert emu.violations == [] and emu.server_errors == []
    deadline = time.monotonic() + 5.0  # a finished thread may take a moment to leave
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
    assert ref.ok and got.ok, (ref.reason, got.reason)
    assert operations(docs) == operations(ref_docs)
    n_ops = sum(len(e.cells) for e in events(docs, EventKind.READ, EventKind.PULSE))
    assert n_ops >= 6, "the case must exercise the backend"
    for a, b in zip(events(ref_docs, EventKind.READ), events(docs, EventKind.READ), strict=True):
        np.testing.assert_allclose(b.currents, a.currents, rtol=rtol)
    _close(_outcome(ref.value), _outcome(got.value), rtol)
