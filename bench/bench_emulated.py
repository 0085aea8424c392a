"""Per-operation overhead of the emulated bench, next to the `sim` backend in the same run.

The same plan (a pulse on one cell, then a one-cell verify read, repeated) runs through
`RunEngine` on
- the `sim` backend (a `SimCrossbar`): the reference,
- emulated benches: `BenchCrossbar` + the real drivers + pyvisa-py sockets (or pyserial on a
  pty) + the emulated instruments + the same `SimCrossbar`, for three bench families.

Reported per operation (pulse, read): wall time (us; the emulators run in another thread of
this process, so wall time is what a user waits), the lines (commands) the instruments
received, and the bare transport round trip (one `*OPC?` through the drivers' VISA transport,
pyvisa-py) as the floor. The emulators answer in microseconds; real instruments add their own
command processing, relay settling and integration time (nplc) on top.

Run: .venv/bin/python bench/bench_emulated.py [--ops 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from xbarlab.bench.config import BenchConfig
from xbarlab.config import BenchLimits, SimConfig, validate_config
from xbarlab.crossbar import BiasScheme, Crossbar
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.emulators.server import TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.transports import VisaTransport
from xbarlab.engine import RunEngine
from xbarlab.messages import Plan, Pulse, Read
from xbarlab.sim.factory import build_sim_crossbar

LIMITS = {"v_max": 3.0, "pulse_v_max": 2.5, "pulse_v_min": -3.0, "read_v_max": 0.5,
          "pulse_width_min": 1e-7, "pulse_width_max": 1e-3, "compliance": 1e-2}
PINS = {"slot": 1, "col_slot": 2, "rows": list(range(1, 9)), "cols": list(range(1, 9)),
        "drive": "A", "sense": "B", "bias_row": "C", "bias_col": "D"}
BENCHES: dict[str, dict[str, Any]] = {
    "2636B + 2 x 2450 + 707B": {
        "instruments": {
            "smu": {"driver": "keithley2600", "address": "-", "identity": "2636B"},
            "brow": {"driver": "keithley2450", "address": "-", "identity": "2450"},
            "bcol": {"driver": "keithley2450", "address": "-", "identity": "2450"},
            "mtx": {"driver": "keithley707b", "address": "-", "identity": "707B"}},
        "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "brow", "bias_col": "bcol",
                  "matrix": "mtx"},
        "pins": PINS},
    "B2902A + 2450 + 707B": {
        "instruments": {
            "b29": {"driver": "keysight_b2900", "address": "-", "identity": "B2902A"},
            "bias": {"driver": "keithley2450", "address": "-", "identity": "2450"},
            "mtx": {"driver": "keithley707b", "address": "-", "identity": "707B"}},
        "roles": {"drive": "b29.1", "sense": "b29.2", "bias_row": "bias", "matrix": "mtx"},
        "pins": {**PINS, "bias_col": None}},
    "XBL board (pty)": {
        "instruments": {"board": {"driver": "serial_board", "address": "-",
                                  "identity": "XBL"}},
        "roles": {"board": "board"}},
}
SHAPE = (8, 8)
WIDTH = 1e-4  # s: within every drive instrument's pulse range


def _config(data: dict[str, Any]) -> BenchConfig:
    return validate_config({"name": "bench", "rows": SHAPE[0], "cols": SHAPE[1],
                            "settle": 0.0, "limits": LIMITS, **data}, BenchConfig)


def _plan(ops: int) -> Plan:
    for k in range(ops):
        cell = (k % SHAPE[0], (k // SHAPE[0]) % SHAPE[1])
        yield Pulse(cell, 0.8 if k % 2 else -0.8, WIDTH, BiasScheme.HALF)
        yield Read((cell,), 0.2, BiasScheme.GROUNDED)


class _Timer:
    """Times pulses and reads separately (wall clock) as the engine executes them."""

    def __init__(self, backend: Crossbar) -> None:
        self.backend = backend
        self.t = {"pulse": 0.0, "read": 0.0}
        self.n = {"pulse": 0, "read": 0}

    @property
    def shape(self) -> tuple[int, int]:
        return self.backend.shape

    def read(self, *a: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.backend.read(*a)
        finally:
            self.t["read"] += time.perf_counter() - t
            self.n["read"] += 1

    def pulse(self, *a: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.backend.pulse(*a)
        finally:
            self.t["pulse"] += time.perf_counter() - t
            self.n["pulse"] += 1

    def mvm(self, v: Any) -> Any:
        return self.backend.mvm(v)

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def safe_state(self) -> None:
        self.backend.safe_state()


def _run(backend: Crossbar, limits: BenchLimits, ops: int) -> _Timer:
    timer = _Timer(backend)
    gc.collect()
    RunEngine(timer, limits).run(_plan(ops), protocol="bench").raise_for_status()
    return timer


def _best(timers: list[_Timer], what: str) -> float:
    return min(t.t[what] / t.n[what] for t in timers) * 1e6


@contextlib.contextmanager
def _emulated(cfg: BenchConfig, sim: SimConfig) -> Iterator[tuple[EmulatedBench, Crossbar]]:
    with EmulatedBench(cfg, sim) as emu:
        bench = open_bench(emu.config())
        try:
            bench.crossbar.prepare()
            yield emu, bench.crossbar
        finally:
            bench.close()


def _round_trip(n: int) -> float:
    """One query through the drivers' VISA transport (pyvisa-py) to an emulator (us): the
    transport floor."""
    with TcpServer(Smu2450("rt")) as srv:
        link = VisaTransport(srv.address)
        link.open()
        try:
            link.query("*OPC?")
            t = time.perf_counter()
            for _ in range(n):
                link.query("*OPC?")
            return (time.perf_counter() - t) / n * 1e6
        finally:
            link.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200, help="pulse + read pairs per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (best is reported)")
    args = ap.parse_args(argv)
    sim = SimConfig(rows=SHAPE[0], cols=SHAPE[1], noise=False, seed=0)
    limits = BenchLimits(**LIMITS)

    ref = [_run(build_sim_crossbar(sim, compliance=limits.compliance), limits, args.ops)
           for _ in range(args.repeat)]
    print(f"per operation, best of {args.repeat} runs of {args.ops} pulse + read pairs "
          f"(8 x 8, wall time)")
    print(f"{'backend':34s} {'pulse us':>10s} {'read us':>10s} {'x sim (pulse/read)':>20s} "
          f"{'lines/op':>9s}")
    p0, r0 = _best(ref, "pulse"), _best(ref, "read")
    print(f"{'sim backend (SimCrossbar)':34s} {p0:10.1f} {r0:10.1f} {'1 / 1':>20s} {'-':>9s}")
    for label, data in BENCHES.items():
        cfg = _config(data)
        timers, lines = [], 0.0
        for _ in range(args.repeat):
            with _emulated(cfg, sim) as (emu, xbar):
                before = sum(len(e.received) for e in emu.instruments.values())
                timers.append(_run(xbar, limits, args.ops))
                after = sum(len(e.received) for e in emu.instruments.values())
                lines = (after - before) / (2 * args.ops)
        p, r = _best(timers, "pulse"), _best(timers, "read")
        print(f"{'emulated: ' + label:34s} {p:10.1f} {r:10.1f} "
              f"{f'{p / p0:.0f} / {r / r0:.0f}':>20s} {lines:9.1f}")
    print(f"transport floor: one pyvisa-py query round trip to an emulator "
          f"{_round_trip(max(50, args.ops)):.1f} us")


if __name__ == "__main__":
    main()
