"""A 24-point sweep of simulated write-verify sessions: Dask vs a serial loop, same run.

Both sides run the same points with the same task (`xbarlab.sweep.execute.run_point`: session,
HDF5 log, result row) into separate folders:
- serial: one after the other in this process (the reference),
- Dask: `run_sweep` on a local cluster of `--workers` processes (one thread each), cluster
  start-up included in its time.
Every side uses one BLAS/OpenMP thread per process, so the ratio measures the parallel sweep,
not threaded linear algebra. Target on 2 cores: Dask >= 1.7x the serial time.

Run: .venv/bin/python bench/bench_sweep.py [--workers 2] [--size 8] [--points 24]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from xbarlab.sweep.commands import command
from xbarlab.sweep.execute import read_table, run_point, run_sweep
from xbarlab.sweep.spec import SweepFile, expand, validate_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--size", type=int, default=8, help="array rows and columns")
    ap.add_argument("--points", type=int, default=24, help="multiple of 4")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the Dask worker processes
    spec = validate_config({
        "command": "run write_verify_array",
        "grid": {"protocol.params.read_scheme": ["grounded", "v/2"],
                 "sim.r_wire_row": [0.0, 1.0]},
        "seeds": args.points // 4,
    }, SweepFile, "bench")
    base = {"sim": {"rows": args.size, "cols": args.size, "fidelity": "wires",
                    "r_source": 10.0, "r_sense": 10.0},
            "protocol": {"kind": "write_verify_array", "params": {"max_pulses": 60}}}
    cmd = command(spec.command)
    points = expand(spec, base, cmd.validate)
    with tempfile.TemporaryDirectory() as tmp:
        serial_dir, dask_dir = Path(tmp, "serial"), Path(tmp, "dask")
        (serial_dir / "points").mkdir(parents=True)
        with threadpool_limits(1):
            t0 = time.perf_counter()
            for p in points:
                run_point(cmd.task, p, str(serial_dir))
            serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = run_sweep(points, cmd.task, dask_dir, workers=args.workers)
        parallel = time.perf_counter() - t0
        table = read_table(dask_dir)
    assert len(table) == len(points) and not rep.failed
    print(f"{len(points)} points, {args.size} x {args.size} wired write-verify, "
          f"{args.workers} Dask workers x 1 thread")
    print(f"serial loop   {serial:8.2f} s  ({serial / len(points):.2f} s per point)")
    print(f"Dask          {parallel:8.2f} s  (cluster start included)")
    print(f"speed-up      {serial / parallel:8.2f}x  (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
