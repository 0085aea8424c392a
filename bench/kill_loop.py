"""SIGKILL loop: a read-map session on a slow emulated bench, killed at random times.

Each trial starts a child process that runs read maps of an 8 x 8 array, cell by cell, through
the real drivers on an emulated bench (Keithley 2636B + two 2450s + 707B matrix over pyvisa-py
sockets, with a relay settling time that makes each cell take tens of milliseconds), logged by
`HDF5Writer` with `flush_interval`. Next to the log, the child appends every cell to a plain
journal (one ``os.write`` per cell, which a kill does not undo) as the engine hands it to the
log. The parent kills the child with SIGKILL at a random time, then checks the log:

- every cell of the journal measured more than `flush_interval` before the kill is in the log,
  with the same time, cell and current (reported: the age of the oldest missing cell);
- every row of the log is a cell of the journal (nothing invented);
- `verify` calls the log sound and unfinished; every 10th trial also salvages it.

Run: .venv/bin/python bench/kill_loop.py [--kills 50] [--flush-interval 1.0] [--settle 0.02]
Exit code 0 when every trial passed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH: dict[str, Any] = {
    "name": "emulated-8x8", "rows": 8, "cols": 8,
    "instruments": {
        "smu": {"driver": "keithley2600", "address": "-", "identity": "Model 2636B"},
        "bias_rows": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "bias_cols": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "matrix": {"driver": "keithley707b", "address": "-", "identity": "Model 707B"},
    },
    "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "bias_rows",
              "bias_col": "bias_cols", "matrix": "matrix"},
    "pins": {"slot": 1, "col_slot": 2, "rows": list(range(1, 9)), "cols": list(range(1, 9)),
             "drive": "A", "sense": "B", "bias_row": "C", "bias_col": "D"},
    "limits": {"v_max": 3.0, "pulse_v_max": 2.5, "pulse_v_min": -3.0, "read_v_max": 0.5,
               "pulse_width_min": 1e-4, "pulse_width_max": 1e-3, "compliance": 1e-3},
}


def child(out: Path, journal: Path, flush_interval: float, settle: float) -> None:
    """Run read maps until killed, journaling every cell as the log receives it."""
    from xbarlab.bench.config import BenchConfig
    from xbarlab.cells import CellMeasurement
    from xbarlab.config import SimConfig, validate_config
    from xbarlab.crossbar import BiasScheme
    from xbarlab.documents import Document
    from xbarlab.drivers.emulators.bench import EmulatedBench
    from xbarlab.drivers.registry import open_bench
    from xbarlab.engine import RunEngine
    from xbarlab.log.writer import HDF5Writer
    from xbarlab.messages import Plan, Read

    cfg = validate_config({**BENCH, "settle": settle}, BenchConfig)
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    class Journal:
        def __call__(self, doc: Document) -> None:
            return None

        def partial(self, doc: CellMeasurement) -> None:
            os.write(fd, f"{doc.time!r} {doc.cell[0]} {doc.cell[1]} {doc.current!r}\n".encode())

    def maps() -> Plan:
        for _ in range(10_000):
            yield Read(None, 0.2, BiasScheme.GROUNDED, tag="read_map")

    with EmulatedBench(cfg, SimConfig(rows=8, cols=8, noise=True, seed=7)) as emu:
        bench = open_bench(emu.config(timeout=5.0))
        with HDF5Writer(out, flush_interval=flush_interval) as writer:
            engine = RunEngine(bench.crossbar, cfg.limits, [writer, Journal()])
            print("running", flush=True)
            engine.run(maps(), protocol="read_map")


def trial(folder: Path, i: int, rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    """One kill; returns what was found."""
    from xbarlab.log.errors import NoRunLogged
    from xbarlab.log.reader import LogReader
    from xbarlab.log.salvage import salvage
    from xbarlab.log.verify import verify

    out, journal = folder / f"kill-{i}.h5", folder / f"kill-{i}.journal"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(out), str(journal),
         str(args.flush_interval), str(args.settle)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip() == "running"
    time.sleep(rng.uniform(args.min_time, args.max_time))
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    cells = []
    if journal.exists():
        for line in journal.read_text().splitlines():
            t, r, c, i_ = line.split()
            cells.append((float(t), int(r), int(c), float(i_)))
    try:
        with LogReader(out) as log:
            rows = log.measurements_array()
    except NoRunLogged:
        rows = np.zeros(0, dtype=[("time", "f8"), ("row", "i4"), ("col", "i4"),
                                  ("current", "f8")])
    logged = {(float(r["time"]), int(r["row"]), int(r["col"]), float(r["current"]))
              for r in rows}
    missing = [c for c in cells if c not in logged]
    oldest = max((killed_at - c[0] for c in missing), default=0.0)
    invented = len(logged - set(cells))
    code = verify(out).exit_code if len(rows) else 1
    salvaged = None
    if i % 10 == 0 and len(rows):
        report = salvage(out, folder / f"kill-{i}.recovered.h5")
        salvaged = report.kept["measurement rows"][0]
    ok = (ready and oldest <= args.flush_interval and invented == 0 and code == 1
          and (salvaged is None or salvaged == len(rows)))
    return {"ok": ok, "cells": len(cells), "logged": len(rows), "missing": len(missing),
            "oldest_missing_s": oldest, "invented": invented, "verify": code,
            "salvaged": salvaged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--settle", type=float, default=0.02, help="relay settling (s)")
    parser.add_argument("--min-time", type=float, default=0.5, help="s after the start")
    parser.add_argument("--max-time", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", nargs=4, metavar=("OUT", "JOURNAL", "FLUSH", "SETTLE"))
    args = parser.parse_args(argv)
    if args.child:
        out, journal, flush, settle = args.child
        child(Path(out), Path(journal), float(flush), float(settle))
        return 0
    rng = random.Random(args.seed)
    failures = 0
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.kills):
            r = trial(Path(tmp), i, rng, args)
            failures += not r["ok"]
            missing = [x for x in (r["oldest_missing_s"],) if r["missing"]]
            worst = max(worst, *missing) if missing else worst
            print(f"kill {i + 1:3d}: {r['cells']:5d} cells measured, {r['logged']:5d} logged, "
                  f"{r['missing']:3d} missing (oldest {r['oldest_missing_s'] * 1e3:6.0f} ms), "
                  f"invented {r['invented']}, verify exit {r['verify']}"
                  + (f", salvaged {r['salvaged']}" if r["salvaged"] is not None else "")
                  + ("" if r["ok"] else "  FAIL"), flush=True)
    print(f"{args.kills} kills, {failures} failed; oldest missing cell "
          f"{worst * 1e3:.0f} ms before its kill (flush_interval {args.flush_interval:g} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
