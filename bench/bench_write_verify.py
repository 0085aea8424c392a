"""Write-verify of a whole simulated array through the run engine and the HDF5 log (issue 15):
the compiled, warm-started single-cell path next to the numpy line engine with cold starts
(the solver before issue 15), measured in the same run on the same operations.

Session: every cell of an M x N array programmed to 1 % (targets uniform in 100-500 uS,
seeded), grounded verify reads, V/2 pulses, default TiO2 devices, every operation logged.
Wired fidelities use 1 ohm segments and 10 ohm source and sense resistance.

Run: .venv/bin/python bench/bench_write_verify.py [--size 64] [--fidelity wires]
     [--ref-cells 24] [--repeat 3] [--cells N]
Times are process CPU times (the machine is shared: wall time is printed too); the reference
runs on the first `--ref-cells` cells only and its full-session time is projected from its
cost per operation. Both sides run with one BLAS thread (threadpoolctl).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Plan, Pulse, Read
from xbarlab.protocols.write_verify import ArrayOutcome, write_verify_array
from xbarlab.sim import solver_kernels
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.solver import WireCircuit


class _Counter:
    """Counts the operations a plan sends to the backend, and times the device physics."""

    def __init__(self) -> None:
        self.ops = 0
        self.physics = 0.0

    def plan(self, plan: Plan) -> Generator[Any, Any, Any]:
        reply = None
        try:
            msg = plan.send(None)
            while True:
                if isinstance(msg, Read | Pulse):
                    self.ops += 1
                reply = yield msg
                msg = plan.send(reply)
        except StopIteration as stop:
            return stop.value

    def time_physics(self, xbar: SimCrossbar) -> None:
        devices = xbar.devices
        inner = devices.apply_voltage

        def timed(v: np.ndarray, width: float, rng: np.random.Generator) -> None:
            t0 = time.process_time()
            inner(v, width, rng)
            self.physics += time.process_time() - t0

        devices.apply_voltage = timed  # type: ignore[method-assign]


def session(
    size: int, fidelity: str, cells: list[tuple[int, int]], compiled: bool, folder: Path
) -> dict[str, Any]:
    """One logged write-verify session; CPU and wall seconds, operations, outcome."""
    cfg = SimConfig(rows=size, cols=size, fidelity=fidelity,  # type: ignore[arg-type]
                    r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0, seed=1)
    xbar = build_sim_crossbar(cfg)
    if isinstance(xbar.circuit, WireCircuit):
        xbar.circuit.compiled = compiled
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (size, size))
    count = _Counter()
    # count.time_physics(xbar)
    path = folder / "wv.h5"
    path.unlink(missing_ok=True)
    plan = count.plan(write_verify_array(targets, WriteVerifyParams(), cells=cells))
    c0, w0 = time.process_time(), time.perf_counter()
    with HDF5Writer(path) as writer:
        result = RunEngine(xbar, BenchLimits(), [writer]).run(plan, protocol="bench")
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if not isinstance(result.value, ArrayOutcome):  # a fault, not a verdict on the job
        result.raise_for_status()
    outcome: ArrayOutcome = result.value
    return {"cpu": cpu, "wall": wall, "ops": count.ops, "physics": count.physics,
            "converged": outcome.converged, "cells": len(cells)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--fidelity", choices=["ideal", "wires", "nonlinear"], default="wires")
    parser.add_argument("--ref-cells", type=int, default=24, help="cells of the reference run")
    parser.add_argument("--repeat", type=int, default=3, help="reference pairs (best of)")
    parser.add_argument("--cells", type=int, default=None, help="cells of the full session")
    args = parser.parse_args(argv)
    size = args.size
    order = [(r, c) for r in range(size) for c in range(size)]
    full = order[: args.cells] if args.cells else order
    print(f"write-verify bench: {size} x {size}, fidelity {args.fidelity}, {os.cpu_count()} "
          f"CPUs, numba {'on' if solver_kernels.AVAILABLE else 'missing'}, 1 BLAS thread")
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        folder = Path(tmp)
        session(size, args.fidelity, order[:2], True, folder)  # load the compiled kernels
        ratio = None
        if args.fidelity != "ideal" and args.ref_cells > 0:
            best = {True: float("inf"), False: float("inf")}
            ops = {}
            for _ in range(args.repeat):  # interleaved: a busy moment favours neither
                for compiled in (True, False):
                    r = session(size, args.fidelity, order[: args.ref_cells], compiled, folder)
                    best[compiled] = min(best[compiled], r["cpu"] / r["ops"])
                    ops[compiled] = r["ops"]
            assert ops[True] == ops[False], "both paths must run the same operations"
            ratio = best[False] / best[True]
            print(f"  first {args.ref_cells} cells ({ops[True]} operations), best of "
                  f"{args.repeat}: {1e6 * best[True]:.0f} us/op compiled, "
                  f"{1e6 * best[False]:.0f} us/op numpy reference ({ratio:.2f}x)")
        r = session(size, args.fidelity, full, True, folder)
        per_op = r["cpu"] / r["ops"]
        print(f"  full session, {len(full)} cells, {r['ops']} operations: {r['cpu']:.1f} s CPU "
              f"({r['wall']:.1f} s wall), {1e6 * per_op:.0f} us/op, converged "
              f"{r['converged']}/{r['cells']} cells ({100 * r['converged'] / r['cells']:.1f} %)")
        print(f"    of which device physics (apply_voltage): {r['physics']:.1f} s "
              f"({1e6 * r['physics'] / r['ops']:.0f} us/op)")
        if ratio is not None:
            print(f"  reference projected to the full session: {r['cpu'] * ratio:.0f} s CPU")


if __name__ == "__main__":
    main()
