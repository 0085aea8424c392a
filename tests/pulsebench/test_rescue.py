"""The safety supervisor's rescue covers the pulse generator: a host that died with the
generator's output on and a relay closed leaves a bench the rescue makes safe."""

from __future__ import annotations

import time

from tests.emulators.benches import SIM
from tests.pulsebench.benches import PULSE_BENCH
from xbarlab.bench.config import BenchConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.rescue import rescue_bench


def test_the_rescue_switches_the_pulse_generator_off() -> None:
    cfg = BenchConfig.model_validate(PULSE_BENCH)
    with EmulatedBench(cfg, SIM) as emu:
        bench_cfg = emu.config(timeout=2.0)
        opened = open_bench(bench_cfg, supervise=False)
        opened.crossbar.read([(1, 1)], 0.2, BiasScheme.GROUNDED)  # leaves relays closed
        pulser = opened.drivers["pulse"]
        pulser.arm(1.0, 1e-6, 1e-8)  # type: ignore[attr-defined]  # output on, armed
        for t in opened.transports.values():  # the host vanishes: links gone, no safe state
            t.close()
        time.sleep(0.2)
        assert not emu.safe and any("fgen" in u for u in emu.unsafe()), emu.unsafe()
        lines = rescue_bench(bench_cfg.model_dump(mode="json"))
        assert any(line.startswith("fgen safe (outputs off") for line in lines), lines
        assert emu.safe, emu.unsafe()
        assert not emu.violations, emu.violations  # no relay moved with an output on
