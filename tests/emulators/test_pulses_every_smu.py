"""Write-verify on the emulated bench with every SMU kind as the pulsing (drive) instrument:
2450 (trigger model), 2600B channel a and channel b (KIPulse), B2900 channel 1 and 2 (pulse
shape). The emulators model the manuals (KIPulse refuses autorange, 2450 executes its trigger
model block by block...), so a pulse the real instrument would refuse fails here too.

Checked: the devices saw each pulse at the intended level and width, under the intended
compliance; every setting a pulse changes is back to the read set-up afterwards; the bench
ends safe with no hot switching.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulators.benches import (
    LIMITS,
    PINS,
    TARGET,
    WV_PARAMS,
    bench_config,
    emulated,
    events,
    run,
)
from xbarlab.documents import EventKind
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.emulators.smu_2600 import Smu2600
from xbarlab.drivers.emulators.smu_b2900 import SmuB2900
from xbarlab.protocols.patterns import target_map
from xbarlab.protocols.write_verify import write_verify_array

CELLS = [(1, 2), (6, 5)]
IDN = {"keithley2600": "Model 2636B", "keithley2450": "MODEL 2450",
       "keysight_b2900": "B2902A", "keithley707b": "Model 707B"}


def _bench(drive: str, sense: str, bias: str, instruments: dict[str, str],
           width_min: float) -> dict[str, Any]:
    return {
        "name": f"drive-{drive}", "rows": 8, "cols": 8, "settle": 0.0,
        "instruments": {n: {"driver": d, "address": "-", "identity": IDN[d]}
                        for n, d in {**instruments, "matrix": "keithley707b"}.items()},
        "roles": {"drive": drive, "sense": sense, "bias_row": bias, "matrix": "matrix"},
        "pins": {**PINS, "bias_col": None},
        "limits": {**LIMITS, "pulse_width_min": width_min},
    }


BENCHES = {
    "2450": _bench("k2450", "smu.a", "smu.b",
                   {"k2450": "keithley2450", "smu": "keithley2600"}, 1e-3),
    "2600B.a": _bench("smu.a", "smu.b", "k2450",
                      {"smu": "keithley2600", "k2450": "keithley2450"}, 1e-4),
    "2600B.b": _bench("smu.b", "smu.a", "k2450",
                      {"smu": "keithley2600", "k2450": "keithley2450"}, 1e-4),
    "B2900.1": _bench("b29.1", "b29.2", "k2450",
                      {"b29": "keysight_b2900", "k2450": "keithley2450"}, 1e-4),
    "B2900.2": _bench("b29.2", "b29.1", "k2450",
                      {"b29": "keysight_b2900", "k2450": "keithley2450"}, 1e-4),
}


def _restored(emu: Any, nplc: float) -> list[str]:
    """Settings a pulse changes that are not back at the read set-up."""
    bad: list[str] = []
    for name, e in emu.instruments.items():
        if isinstance(e, Smu2600):
            for x, s in e.smus.items():
                got = (s.autorangei, s.meas_autorangev, s.src_autorangei, s.autozero,
                       s.appendmode, s.nplc, s.autorangev)
                if got != (1, 1, 1, 2, 0, nplc, 0):
                    bad.append(f"{name}.{x}: {got}")
        elif isinstance(e, Smu2450):
            if e.blocks or e.nplc != nplc or not e.autorange:
                bad.append(f"{name}: blocks {e.blocks}, nplc {e.nplc}, auto {e.autorange}")
        elif isinstance(e, SmuB2900):
            for n, c in e.channels.items():
                if (c.shape, c.acq_delay, c.nplc) != ("DC", 0.0, nplc):
                    bad.append(f"{name}.{n}: {(c.shape, c.acq_delay, c.nplc)}")
    return bad


@pytest.mark.parametrize("kind", list(BENCHES))
def test_write_verify_pulses_on_every_smu_kind(kind: str) -> None:
    cfg = bench_config(BENCHES[kind])
    width = cfg.limits.pulse_width_min
    params = WV_PARAMS.model_copy(update={"width": width})
    targets = target_map(TARGET, (8, 8))
    with emulated(cfg, timeout=5.0) as (emu, bench):  # generous: a loaded machine
        result, docs = run(bench.crossbar, cfg, write_verify_array(targets, params,
                                                                    cells=CELLS))
        assert result.ok, result.reason
        # the compliance every SMU channel holds is the bench's
        assert {ch.limit for ch in emu.channels()} == {cfg.limits.compliance}
        assert _restored(emu, cfg.nplc) == []
        bench.close()
        assert emu.safe, emu.unsafe()
        assert emu.violations == [] and emu.server_errors == []
        seen = list(emu.wiring.pulses)
    pulses = events(docs, EventKind.PULSE)
    assert len(pulses) >= len(CELLS)
    # what the devices saw: per pulse event, the selected cell at the intended voltage for the
    # intended width (the 2450 applies it as the delay block, then its reading at the end)
    per_pulse = 2 if kind == "2450" else 1
    assert len(seen) == per_pulse * len(pulses)
    for k, ev in enumerate(pulses):
        (r, c), = [tuple(cell) for cell in ev.cells]
        parts = seen[per_pulse * k: per_pulse * (k + 1)]
        for row_v, col_v, _ in parts:
            assert row_v[r] - col_v[c] == pytest.approx(ev.voltages[0], abs=1e-12)
        assert sum(w for _, _, w in parts) == pytest.approx(ev.width, rel=1e-9)
        assert ev.width == width
