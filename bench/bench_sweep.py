"""A 24-point sweep of simulated write-verify sessions: Dask vs a serial loop, same run.

Both sides run the same points with the same task (`xbarlab.sweep.execute.run_point`: session,
HDF5 log, result row) into separate folders:
- serial: one after the other in this process (the reference),
- Dask: `run_sweep` on a local cluster of `--workers` processes (one thread each), cluster
  start-up included in its time.
Every side uses one BLAS/OpenMP thread per process, so the ratio measures the parallel sweep,
not threaded linear algebra. Target on 2 cores: Dask >= 1.7x the serial time.

A third line measures the machine's own ceiling in the same run: a fixed pure-Python loop in
one process, then in two processes at once (no Dask, no I/O). On a machine whose two "cores"
share one physical core, or a loaded one, that ceiling is below 2x and bounds any sweep.

Run: .venv/bin/python bench/bench_sweep.py [--workers 2] [--size 8] [--points 24]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from xbarlab.sweep.commands import command
from xbarlab.sweep.execute import read_table, run_point, run_sweep
from xbarlab.sweep.spec import SweepFile, expand, validate_config


def _spin(n: int) -> float:
    """A fixed amount of pure-Python work; its wall time."""
    t0, acc = time.perf_counter(), 0
    for i in range(n):
        acc += i * i
    return time.perf_counter() - t0


def parallel_ceiling(n: int = 20_000_000, repeats: int = 3) -> float:
    """How much faster two processes do two units of work than one process does one each."""
    ctx = multiprocessing.get_context("spawn")
    best = 0.0
    with ctx.Pool(2) as pool:
        pool.map(_spin, [10, 10])  # both started
        for _ in range(repeats):
            t0 = time.perf_counter()
            pool.map(_spin, [n], chunksize=1)
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(_spin, [n, n], chunksize=1)
            two = time.perf_counter() - t0
            best = max(best, 2 * one / two)
    return best


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
            serial_rows = [run_point(cmd.task, p, str(serial_dir)) for p in points]
            serial = time.perf_counter() - t0
        t0, t0_epoch = time.perf_counter(), time.time()
        rep = run_sweep(points, cmd.task, dask_dir, workers=args.workers)
        parallel = time.perf_counter() - t0
        table = read_table(dask_dir)
    assert len(table) == len(points) and not rep.failed
    s_wall = sum(r["wall_time_s"] for r in serial_rows)
    s_cpu = sum(r["cpu_time_s"] for r in serial_rows)
    d_wall = float(table["wall_time_s"].sum())
    d_cpu = float(table["cpu_time_s"].sum())
    first = float(table["started"].min()) - t0_epoch
    ends = table["started"] + table["wall_time_s"] - t0_epoch
    print("where the time goes (sums over points):")
    print(f"  serial: wall {s_wall:7.2f} s  cpu {s_cpu:7.2f} s")
    print(f"  Dask:   wall {d_wall:7.2f} s  cpu {d_cpu:7.2f} s  "
          f"(first point starts {first:.2f} s after submit, last ends {ends.max():.2f} s)")
    for w, grp in table.groupby("worker"):
        print(f"    {w}: {len(grp)} points, busy {grp['wall_time_s'].sum():.2f} s")
    print(f"{len(points)} points, {args.size} x {args.size} wired write-verify, "
          f"{args.workers} Dask workers x 1 thread")
    print(f"serial loop   {serial:8.2f} s  ({serial / len(points):.2f} s per point)")
    print(f"Dask          {parallel:8.2f} s  (cluster start included)")
    print(f"speed-up      {serial / parallel:8.2f}x  (target >= 1.7x on 2 cores)")
    print(f"machine       {parallel_ceiling():8.2f}x  (two processes of pure CPU work vs one, "
          f"best of 3: the ceiling of any parallel run here)")


if __name__ == "__main__":
    main()
