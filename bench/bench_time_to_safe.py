"""Time to safe after a session is killed, next to the session's own safe state in the same run.

On one emulated bench (2636B drives and senses, two 2450s bias, a 707B routes; pyvisa-py
sockets), measured:
- reference: `BenchCrossbar.safe_state()` of a live session on its open links (what every
  normal exit costs),
- rescue: `xbarlab.drivers.rescue.rescue_bench` in this process (new links, identities, safe
  states: what the supervisor does once it knows),
- time to safe: a child session (real drivers, its supervisor started by `open_bench`) with
  relays closed and the drive output on at 0.3 V is killed with SIGKILL; from the kill to the
  emulators reporting every output off at 0 V and every relay open.

Run: .venv/bin/python bench/bench_time_to_safe.py [--kills 10]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

from xbarlab.bench.config import BenchConfig
from xbarlab.config import SimConfig, validate_config
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.rescue import rescue_bench

BENCH: dict[str, Any] = {
    "name": "time-to-safe", "rows": 8, "cols": 8, "settle": 0.0,
    "instruments": {
        "smu": {"driver": "keithley2600", "address": "-", "identity": "2636B"},
        "brow": {"driver": "keithley2450", "address": "-", "identity": "2450"},
        "bcol": {"driver": "keithley2450", "address": "-", "identity": "2450"},
        "mtx": {"driver": "keithley707b", "address": "-", "identity": "707B"}},
    "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "brow", "bias_col": "bcol",
              "matrix": "mtx"},
    "pins": {"slot": 1, "col_slot": 2, "rows": list(range(1, 9)), "cols": list(range(1, 9)),
             "drive": "A", "sense": "B", "bias_row": "C", "bias_col": "D"},
    "limits": {"compliance": 1e-2, "pulse_width_min": 1e-6},
}

CHILD = """
import sys, time
from xbarlab.bench.config import BenchConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.registry import open_bench
xbar = open_bench(BenchConfig.model_validate_json(sys.argv[1])).crossbar
xbar.read([(1, 1)], 0.2, BiasScheme.GROUNDED)
xbar.drive.set_voltage(0.3)
xbar.drive.enable()
print("on", flush=True)
time.sleep(600)
"""


def _live(emu: EmulatedBench) -> Any:
    opened = open_bench(emu.config(timeout=1.0), supervise=False)
    xbar = opened.crossbar
    xbar.read([(1, 1)], 0.2, BiasScheme.GROUNDED)
    xbar.drive.set_voltage(0.3)
    xbar.drive.enable()
    assert not emu.safe
    return opened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    cfg = validate_config(BENCH, BenchConfig)
    with EmulatedBench(cfg, SimConfig(rows=8, cols=8, noise=False)) as emu:
        live = emu.config(timeout=1.0)
        ref, rescue, kill = [], [], []
        for _ in range(args.kills):
            opened = _live(emu)
            t0 = time.perf_counter()
            opened.crossbar.safe_state()
            ref.append(time.perf_counter() - t0)
            opened.close()
            opened = _live(emu)
            for t in opened.transports.values():
                t.close()
            t0 = time.perf_counter()
            lines = rescue_bench(live.model_dump(mode="json"))
            rescue.append(time.perf_counter() - t0)
            assert emu.safe, lines
            child = subprocess.Popen([sys.executable, "-c", CHILD, live.model_dump_json()],
                                     stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None and child.stdout.readline().strip() == "on"
            assert not emu.safe
            t0 = time.perf_counter()
            child.send_signal(signal.SIGKILL)
            while not emu.safe:
                time.sleep(0.001)
            kill.append(time.perf_counter() - t0)
            child.wait()
            time.sleep(0.2)  # the supervisor writes its note and exits
    med = statistics.median
    print(f"{args.kills} repetitions, 2636B + 2 x 2450 + 707B emulated over pyvisa-py sockets")
    print(f"  session's own safe state (open links)   median {med(ref) * 1e3:7.1f} ms  "
          f"max {max(ref) * 1e3:7.1f} ms  (reference)")
    print(f"  rescue on new links (in this process)   median {med(rescue) * 1e3:7.1f} ms  "
          f"max {max(rescue) * 1e3:7.1f} ms  x{med(rescue) / med(ref):.1f}")
    print(f"  SIGKILL -> safe (supervisor process)    median {med(kill) * 1e3:7.1f} ms  "
          f"max {max(kill) * 1e3:7.1f} ms  x{med(kill) / med(ref):.1f}")


if __name__ == "__main__":
    main()
