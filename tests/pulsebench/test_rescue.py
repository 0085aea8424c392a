"""The safety supervisor's rescue covers the pulse generator: a host that died with the
generator's output on and a relay closed leaves a bench the rescue makes safe."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.emulators.benches import SIM, WV_PARAMS
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
        assert opened.locks is not None
        opened.locks.release()  # and its instrument locks with it (the kernel frees them)
        time.sleep(0.2)
        assert not emu.safe and any("fgen" in u for u in emu.unsafe()), emu.unsafe()
        lines = rescue_bench(bench_cfg.model_dump(mode="json"))
        assert any(line.startswith("fgen safe (outputs off") for line in lines), lines
        assert emu.safe, emu.unsafe()
        assert not emu.violations, emu.violations  # no relay moved with an output on


KILLS = 5
TIME_TO_SAFE = 2.0  # s, as on the SMU bench (tests/bench/test_supervisor.py)


@pytest.mark.slow
def test_sigkill_of_a_pulse_bench_session_leaves_it_safe(tmp_path: Path) -> None:
    """Real `xbarlab run` subprocesses on the emulated pulse bench, killed with SIGKILL while
    they operate: the supervisor switches the generator and the SMUs off and opens the relays
    within `TIME_TO_SAFE`."""
    cfg = BenchConfig.model_validate(PULSE_BENCH)
    with EmulatedBench(cfg, SIM) as emu:
        bench_yaml = tmp_path / "bench.yaml"
        bench_yaml.write_text(yaml.safe_dump(emu.config(timeout=1.0).model_dump(mode="json")),
                              encoding="utf-8")
        params = WV_PARAMS.model_copy(update={"width": 1e-6, "max_pulses": 400,
                                              "tolerance": 0.02})
        session = tmp_path / "session.yaml"
        session.write_text(yaml.safe_dump({
            "backend": "bench", "bench": str(bench_yaml), "limits": PULSE_BENCH["limits"],
            "protocol": {"kind": "write_verify_array", "passes": 1,
                         "params": params.model_dump(mode="json")}}), encoding="utf-8")
        rng = random.Random(11)
        for k in range(KILLS):
            proc = subprocess.Popen(
                [sys.executable, "-c", "from xbarlab.cli.entry import main; main()", "run",
                 "write_verify_array", "-c", str(session), "--out", str(tmp_path / f"r{k}.h5")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                assert _wait(lambda p=proc: not emu.safe or p.poll() is not None, 60.0), \
                    f"kill {k}: the session never operated"
                assert proc.poll() is None, f"kill {k}: the session ended (exit {proc.returncode})"
                time.sleep(rng.uniform(0.0, 0.3))
                proc.send_signal(signal.SIGKILL)
                t_safe = _wait(lambda: emu.safe, TIME_TO_SAFE)
            finally:
                proc.kill()
                proc.wait()
            assert t_safe is not None, f"kill {k}: not safe after SIGKILL: {emu.unsafe()}"
        assert not emu.violations, emu.violations  # no relay moved with an output on


def _wait(cond: Callable[[], object], timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.002)
    return None
