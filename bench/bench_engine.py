"""The run engine's and the HDF5 log's cost per operation (issue 15): 64 x 64 write-verify on
the ideal circuit, every operation logged, split into its layers.

Layers, each measured on the same operations (the session's messages and results are recorded
once, then replayed):
- "session": the simulated array (ideal circuit), run engine, HDF5 log (what
  bench/bench_write_verify.py's ideal case measures; its final read map counts as one
  operation);
- "engine + log": the same run with a replay backend that returns the recorded results (the
  floor the backend cannot lower);
- "engine": the replay without a log subscriber;
- "plan": the write-verify plan alone, fed the recorded results (no engine).
`--ref DIR` (repeatable) also runs this script on other copies of xbarlab (e.g. ``git archive
REV`` unpacked in DIR; the protocols come from this checkout) in subprocesses, interleaved
with this one, best of `--repeat`, each after loading its compiled kernels: before / after
ratios from one run on the same machine load.

Run: .venv/bin/python bench/bench_engine.py [--cells 4096] [--repeat 3] [--ref DIR ...]
     [--profile FILE.prof]
Times are process CPU seconds per operation (the machine is shared; the load is printed).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Plan, Pulse, Read
from xbarlab.protocols.write_verify import write_verify_array
from xbarlab.sim.factory import build_sim_crossbar

SIZE = 64
TARGET_US = 40.0


def _record(backend: Any) -> list[Any]:
    """Make `backend` record every result of its reads and pulses (in order) in the list
    returned (instance attributes shadow the methods: the engine sees the same object)."""
    results: list[Any] = []
    read, pulse = backend.read, backend.pulse

    def recorded_read(cells: Any, v_read: float, scheme: Any) -> Any:
        results.append(r := read(cells, v_read, scheme))
        return r

    def recorded_pulse(cell: Any, voltage: float, width: float, scheme: Any) -> Any:
        results.append(p := pulse(cell, voltage, width, scheme))
        return p

    backend.read, backend.pulse = recorded_read, recorded_pulse
    return results


class _Replay:
    """A backend that returns recorded results in order (costs nothing but a list step)."""

    def __init__(self, backend: Any, results: list[Any]) -> None:
        self.shape = backend.shape
        self._describe = backend.describe()
        self._results = iter(results)

    def read(self, cells: Any, v_read: float, scheme: Any) -> Any:
        return next(self._results)

    def pulse(self, cell: Any, voltage: float, width: float, scheme: Any) -> Any:
        return next(self._results)

    def safe_state(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)


def _plan(size: int, cells: int) -> Plan:
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (size, size))
    order = [(r, c) for r in range(size) for c in range(size)][:cells]
    return write_verify_array(targets, WriteVerifyParams(), cells=order)


def _backend() -> Any:
    return build_sim_crossbar(SimConfig(rows=SIZE, cols=SIZE, fidelity="ideal", seed=1))


def _run(backend: Any, plan: Plan, log: Path | None) -> float:
    """CPU seconds of one engine run of `plan` on `backend` (logged to `log` if given)."""
    c0 = time.process_time()
    if log is None:
        RunEngine(backend, BenchLimits(), []).run(plan, protocol="bench").raise_for_status()
    else:
        log.unlink(missing_ok=True)
        with HDF5Writer(log) as writer:
            result = RunEngine(backend, BenchLimits(), [writer]).run(plan, protocol="bench")
        if result.status.value == "failed":
            result.raise_for_status()
    return time.process_time() - c0


def _plan_alone(cells: int, results: list[Any]) -> float:
    """CPU seconds of the plan fed the recorded results, no engine."""
    plan = _plan(SIZE, cells)
    it = iter(results)
    c0 = time.process_time()
    reply = None
    try:
        while True:
            msg = plan.send(reply)
            reply = next(it) if isinstance(msg, Read | Pulse) else None
    except StopIteration:
        pass
    return time.process_time() - c0


def measure(cells: int, folder: Path, profile: str | None = None) -> dict[str, float]:
    """µs per operation of each layer (one round)."""
    log = folder / "wv.h5"
    backend = _backend()
    session = _run(backend, _plan(SIZE, cells), log)
    backend = _backend()
    results = _record(backend)
    _run(backend, _plan(SIZE, cells), log)  # the same operations again, recorded
    ops = len(results)  # the final read map is one of them (~0.2 % of the time at 64 x 64)
    out = {"ops": float(ops), "session": 1e6 * session / ops}
    replay = _Replay(backend, results)
    if profile:
        prof = cProfile.Profile()
        prof.enable()
    out["engine + log"] = 1e6 * _run(replay, _plan(SIZE, cells), log) / ops
    if profile:
        prof.disable()
        prof.dump_stats(profile)
    replay = _Replay(backend, results)
    out["engine"] = 1e6 * _run(replay, _plan(SIZE, cells), None) / ops
    out["plan"] = 1e6 * _plan_alone(cells, results) / ops
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cells", type=int, default=SIZE * SIZE, help="cells programmed")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best of)")
    parser.add_argument("--ref", type=Path, action="append", default=[],
                        help="another xbarlab copy to compare with (repeatable)")
    parser.add_argument("--profile", help="cProfile of the 'engine + log' layer to this file")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one round
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        if args.json:
            measure(16, Path(tmp))  # load the compiled kernels (not timed)
            print(json.dumps(measure(args.cells, Path(tmp), args.profile)))
            return
        load = os.getloadavg()
        print(f"engine bench: 64 x 64 ideal write-verify, {args.cells} cells, "
              f"{os.cpu_count()} CPUs, load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, "
              "CPU µs per operation, best of", args.repeat)
        measure(16, Path(tmp))  # load the compiled kernels
        sides: dict[str, Path | None] = {"this": None}
        sides |= {str(ref): ref for ref in args.ref}
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for side, ref in sides.items():
                if ref is None:
                    r = measure(args.cells, Path(tmp), args.profile)
                else:
                    env = dict(os.environ, PYTHONPATH=str(ref))
                    out = subprocess.run(
                        [sys.executable, "-c", "import sys; sys.argv[0] = 'bench_engine';"
                         f"exec(open({str(Path(__file__).resolve())!r}).read())",
                         "--json", "--cells", str(args.cells)],
                        env=env, cwd=ref, check=True, capture_output=True, text=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                old = best.setdefault(side, r)
                for key, value in r.items():
                    old[key] = min(old[key], value)
    layers = [k for k in best["this"] if k != "ops"]
    print(f"  operations: {int(best['this']['ops'])}"
          + "".join(f", {int(r['ops'])} on {side}" for side, r in best.items() if side != "this"))
    print(f"  {'':13s} {'this':>12s}" + "".join(f"   {side}" for side in best if side != "this"))
    for key in layers:
        line = f"  {key:13s} {best['this'][key]:6.1f} µs/op"
        for side, r in best.items():
            if side != "this":
                line += f"   {r[key]:6.1f} µs/op ({r[key] / best['this'][key]:.2f}x)"
        print(line)
    verdict = "met" if best["this"]["session"] <= TARGET_US else "NOT met"
    print(f"  target: session <= {TARGET_US:.0f} µs/op: {verdict}")
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
