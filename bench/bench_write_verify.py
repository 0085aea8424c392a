"""Write-verify of a simulated array through the run engine and the HDF5 log (issue 15): the
cost per operation of the compiled paths next to the paths they replace, measured in the
same run on the same operations, and the share of cells that converge.

Session: cells programmed to 1 % (targets uniform in 100-500 uS, seeded), grounded verify
reads, V/2 pulses, default TiO2 devices, every operation logged (HDF5). Wired cases use
1 ohm segments and 10 ohm source and sense resistance.

Cases (`--case`, default all):
- ideal: 64 x 64 ideal circuit, the whole array.
- wires: 64 x 64 wired (linearized devices); wires128: 128 x 128 wired; sinh: 64 x 64 wired
  with the devices' sinh I-V (Newton); wires32: 32 x 32 wired, not in "all" (a quick check of
  the tracked write-verify; its 5 s target is the 64 x 64 one scaled by the cells).
Paths compared (same seed, same cells, so the same operations: checked):
- "compiled": this code (compiled device update, ideal-circuit kernels, compiled warm-started
  line engine; a wired single-cell read or pulse takes the reduced column path,
  `WireCircuit.column`);
- "start": the device update and ideal circuit in numpy, line engine compiled and its column
  path (engine and read-path fixes cannot be switched off: the ratio understates the gain;
  `bench_wired_ops.py` compares wired operations against an older revision instead);
- "numpy" (wired cases): also the numpy line engine with cold starts (before issue 15).
The references run on the first `--ref-cells` cells only (best of `--repeat`, interleaved);
their full-session cost is projected from their cost per operation. Costs per operation
leave out the session's final whole-array read map (timed apart: one operation that costs
as much as hundreds of single-cell ones). Wired sessions of the
whole array take minutes to hours here, so by default they program `--sample` cells spread
over the array (every k-th cell) and project operations and time to the whole array; this
programs fewer neighbours, so disturb is lighter than in a full session (said in the output).
`--stall N` also runs each wired sample with write-verify's stall rule (a lab feature: give a
cell up once N pulses at the cap moved its read by less than half the band);
`--compensated-stall N` also runs the compensated session (below) with it (on 128 x 128 the
far cells' compensated amplitudes reach the bench limit: the stall rule gives them up).
`--both-ends` drives every row and senses every column at both ends (the default drives
rows from one end and senses columns at the other, the issue's case): a 128 x 128 corner
cell then sees 51 % of a V/2 pulse instead of 18 %, within the bench's limit compensated.
`--compensate` also runs each wired sample with the compensated write-verify
(`protocols/compensated.py`: verify reads aimed at target x the read gain the circuit model
predicts for each cell at its turn, pulse amplitudes scaled by the predicted delivered share;
the gains' cost, one model read per programmed cell, is timed and projected too). Each
session prints three shares: converged (the verify loop's verdict, on the read), the true
conductance within 1 % of the target when the cell finished and after the session (what a
lab wants, not visible to a bench; later cells' half-select pulses disturb finished cells in
between), and the final read map within the band of its read-space targets. The sample's
lighter disturb flatters the true-conductance share of the compensated run: 41 % of the
192-cell sample within 1 % at the cell's finish, 5.7 % over the whole 64 x 64 session
(`--full`; the model's gains do not follow the disturb of the cells not yet programmed).
`--tracked` also runs each wired case with the tracked write-verify (`protocols/tracked.py`:
array map read row by row and de-embedded through the circuit model, per-cell read targets,
pulses planned by the device preset's law with learned device offsets, half-select disturb
tracked and anticipated, final passes over the cells out of band; `--min-width` lets it
shorten pulses, which disturb the half-selected cells less). Tracked runs are meant for
`--full` (the map reads the whole array; a sample leaves most neighbours unprogrammed).
The circuit model's own CPU time (maps de-embedded, read targets, disturb plans) is printed
apart; it is inside the session's time. Measured (load 10-16 on 2 cores; 100 ns shortest
pulse): 16 x 16 97.7 % of the devices within 1 % of their true target (all but the stuck ones),
15 operations per cell; 32 x 32 96.9 %, 17 per cell; 64 x 64 21 %, 63 per cell, 214 s CPU
(the half-select disturb of each pass outgrows its corrections there). With the disturb plan
following every pulse (`--plan-pulses 8 --plan-rounds 2 --drift-scale 1.2`, now the defaults;
load 5-8, `--case wires32` for 32 x 32): 32 x 32 96.6 % (one pulse planned, same run: 96.1 %),
16.5 per cell; 64 x 64 24.6 %, 55 per cell, 184 s CPU (converged on the read 80 %; the last
map's estimates agree with the truth: 24.1 % in band). `--min-width 1e-8`: 32 x 32 97.9 %,
13.8 per cell; 64 x 64 24.9 %, 198 s CPU.

Run: .venv/bin/python bench/bench_write_verify.py [--case ideal|wires|wires32|wires128|sinh|all]
     [--sample 192] [--ref-cells 12] [--ref-cells-ideal 256] [--repeat 2] [--stall 4] [--full]
     [--compensated-stall 8] [--runs 3] [--both-ends]
     [--compensate] [--tracked] [--min-width 1e-7] [--plan-pulses 8] [--plan-rounds 2]
     [--drift-scale 1.2] [--skip-plain] (--ref-cells 0: no
     references)
Times are process CPU seconds (the machine is shared: wall time is printed too); one BLAS
thread on every side (threadpoolctl).
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

from xbarlab.analysis.array_model import CircuitArrayModel
from xbarlab.analysis.physics_checks import predict_gains
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Checkpoint, Mvm, Plan, Pulse, Read
from xbarlab.protocols.compensated import write_verify_compensated
from xbarlab.protocols.pulse_law import PulseLaw
from xbarlab.protocols.tracked import TrackedOutcome, TrackedSettings, write_verify_tracked
from xbarlab.protocols.write_verify import ArrayOutcome, write_verify_array
from xbarlab.sim import solver_kernels
from xbarlab.sim.factory import build_sim_crossbar
from xbarlab.sim.presets import CompactPreset, load_preset
from xbarlab.sim.solver import WireCircuit

CASES = {  # name: (size, fidelity)
    "ideal": (64, "ideal"),
    "wires32": (32, "wires"),
    "wires": (64, "wires"),
    "wires128": (128, "wires"),
    "sinh": (64, "nonlinear"),
}
TARGETS = {"ideal": 40e-6, "wires32": 5.0, "wires": 20.0, "wires128": 120.0,
           "sinh": 60.0}  # us/op; s


class _Counter:
    """Counts the operations a plan sends to the backend, and times the whole-array read
    maps apart (a map is one operation that costs as much as hundreds: per-operation costs
    leave it out)."""

    def __init__(self, g_true: Any = None) -> None:
        self.ops = 0
        self.maps = 0
        self.map_cpu = 0.0
        self.g_true = g_true  # () -> the array's true conductances, looked at after each cell
        self.at_done: dict[tuple[int, int], float] = {}

    def plan(self, plan: Plan) -> Generator[Any, Any, Any]:
        reply = None
        try:
            msg = plan.send(None)
            while True:
                if (isinstance(msg, Read) and msg.cells is None) or isinstance(msg, Mvm):
                    t0 = time.process_time()
                    reply = yield msg
                    self.map_cpu += time.process_time() - t0
                    self.maps += 1
                else:
                    if isinstance(msg, Read | Pulse):
                        self.ops += 1
                    elif (isinstance(msg, Checkpoint) and msg.label == "cell_done"
                          and self.g_true is not None):
                        cell = msg.data["cell"]
                        self.at_done[cell] = float(self.g_true()[cell])
                    reply = yield msg
                msg = plan.send(reply)
        except StopIteration as stop:
            return stop.value


#: the lines' driven ends ("start": rows driven and columns sensed at one end, the issue's
#: case; "both": from both ends, `--both-ends`)
DRIVE = "start"


def sim_config(size: int, fidelity: str) -> SimConfig:
    """The bench's array (1 ohm segments, 10 ohm source and sense on wired fidelities)."""
    return SimConfig(rows=size, cols=size, fidelity=fidelity,  # type: ignore[arg-type]
                     r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0, seed=1,
                     **({"row_drive": "both", "col_drive": "both"} if DRIVE == "both" else {}))


class _Timed:
    """A circuit model whose calls are timed (CPU seconds in `cpu`)."""

    def __init__(self, model: CircuitArrayModel) -> None:
        self.model = model
        self.cpu = 0.0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.model, name)

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                self.cpu += time.process_time() - t0
        return timed


def gains_cost(size: int, fidelity: str) -> float:
    """CPU seconds of the circuit model's gains for every cell of the array (row-major)."""
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (size, size))
    order = [(r, c) for r in range(size) for c in range(size)]
    c0 = time.process_time()
    predict_gains(sim_config(size, fidelity), targets, WriteVerifyParams(), BenchLimits(), order)
    return time.process_time() - c0


def session(size: int, fidelity: str, cells: list[tuple[int, int]], path: str,
            folder: Path, stall: int = 0, compensate: bool = False,
            tracked: TrackedSettings | None = None) -> dict[str, Any]:
    """One logged write-verify session on `path` ("compiled", "start" or "numpy"):
    compensated (verify and pulse gains of the circuit model), tracked (`tracked`'s
    settings) or plain."""
    cfg = sim_config(size, fidelity)
    xbar = build_sim_crossbar(cfg)
    xbar.devices.compiled = path == "compiled"  # type: ignore[attr-defined]
    circuit = xbar.circuit
    if isinstance(circuit, WireCircuit):
        circuit.compiled = path != "numpy"
    else:
        circuit.compiled = path == "compiled"  # type: ignore[attr-defined]
    targets = np.random.default_rng(0).uniform(100e-6, 500e-6, (size, size))
    count = _Counter(lambda: xbar.g)
    log = folder / "wv.h5"
    log.unlink(missing_ok=True)
    params = WriteVerifyParams(stall_pulses=stall)
    c0, w0 = time.process_time(), time.perf_counter()
    gains_cpu = 0.0
    model = None
    if tracked is not None:
        model = _Timed(CircuitArrayModel.of_sim(cfg, params.v_read))
        preset = load_preset(cfg.device) if cfg.device != "simple" else None
        law = PulseLaw.of_preset(preset) if isinstance(preset, CompactPreset) else None
        limits = BenchLimits()
        plan = count.plan(write_verify_tracked(targets, params, model, law, cells,
                                               limits.pulse_v_max, limits.pulse_v_min, tracked))
    elif compensate:
        gains = predict_gains(cfg, targets, params, BenchLimits(), cells)
        gains_cpu = time.process_time() - c0
        plan = count.plan(write_verify_compensated(targets, params, gains, cells))
    else:
        plan = count.plan(write_verify_array(targets, params, cells=cells))
    with HDF5Writer(log) as writer:
        result = RunEngine(xbar, BenchLimits(), [writer]).run(plan, protocol="bench")
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if not isinstance(result.value, ArrayOutcome):  # a fault, not a verdict on the job
        result.raise_for_status()
    outcome: ArrayOutcome = result.value
    stalled = sum(o.reason.startswith("stuck: read stalled") for o in outcome.cells)
    idx = tuple(np.array(cells).T)
    true_ok = np.abs(xbar.g[idx] - targets[idx]) <= params.tolerance * targets[idx]
    read_ok = outcome.in_band(outcome.final)[idx]  # tracked: the estimates from the last map
    done_ok = sum(abs(count.at_done[c] - targets[c]) <= params.tolerance * targets[c]
                  for c in cells)
    return {"cpu": cpu, "wall": wall, "ops": count.ops, "map": count.map_cpu,
            "gains": gains_cpu,
            "per_op": (cpu - count.map_cpu - gains_cpu - (model.cpu if model else 0.0))
            / count.ops,
            "converged": outcome.converged, "true_ok": int(true_ok.sum()), "done_ok": done_ok,
            "read_ok": int(read_ok.sum()), "cells": len(cells), "stalled": stalled,
            "pulses": outcome.n_pulses, "maps": count.maps,
            "model": model.cpu if model is not None else 0.0,
            "passes": outcome.passes if isinstance(outcome, TrackedOutcome) else 1}


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / max(n, 1):.1f} %)"


def references(size: int, fidelity: str, cells: list[tuple[int, int]], paths: list[str],
               repeat: int, folder: Path) -> dict[str, float]:
    """Best CPU us/op of each path on `cells` (interleaved); the operations must agree."""
    best = dict.fromkeys(paths, float("inf"))
    ops: dict[str, int] = {}
    for _ in range(repeat):
        for path in paths:
            r = session(size, fidelity, cells, path, folder)
            best[path] = min(best[path], 1e6 * r["per_op"])
            ops[path] = r["ops"]
    if len(set(ops.values())) != 1:
        print(f"    note: operations differ between paths {ops} (rounding flipped a decision)")
    shown = ", ".join(f"{best[p]:.0f} us/op {p}" for p in paths)
    ratios = ", ".join(f"{best[p] / best['compiled']:.2f}x vs {p}" for p in paths[1:])
    print(f"  same {len(cells)} cells ({ops['compiled']} operations) on every path, best of "
          f"{repeat}: {shown} ({ratios})")
    return best


def run_case(name: str, args: argparse.Namespace, folder: Path) -> None:
    size, fidelity = CASES[name]
    order = [(r, c) for r in range(size) for c in range(size)]
    n_all = len(order)
    wired = fidelity != "ideal"
    print(f"\n[{name}] {size} x {size}, fidelity {fidelity}"
          + (", 1 ohm segments, 10 ohm source and sense" if wired else "")
          + (", lines driven and sensed at both ends" if wired and DRIVE == "both" else ""))
    session(size, fidelity, order[:2], "compiled", folder)  # load the compiled kernels
    paths = ["compiled", "start"] + (["numpy"] if wired else [])
    n_ref = args.ref_cells if wired else args.ref_cells_ideal
    best = (references(size, fidelity, order[:n_ref], paths, args.repeat, folder) if n_ref
            else {})
    if wired and not args.full:
        step = max(1, n_all // args.sample)
        cells = order[::step][: args.sample]
        note = (f"a sample of {len(cells)} cells (one in {step}), projected to all {n_all} "
                "cells (fewer programmed neighbours: lighter disturb than a full session)")
    else:
        cells = order
        note = f"all {n_all} cells"
    tracked = TrackedSettings(min_width=args.min_width, passes=args.passes,
                              **({"plan_pulses": args.plan_pulses} if args.plan_pulses else {}),
                              **({"plan_rounds": args.plan_rounds} if args.plan_rounds else {}),
                              **({"drift_scale": args.drift_scale} if args.drift_scale else {}))
    runs: list[tuple[int, bool, TrackedSettings | None]] = [] if args.skip_plain and wired \
        else [(0, False, None)]
    runs += [(args.stall, False, None)] if wired and args.stall else []
    runs += [(0, True, None)] if wired and args.compensate else []
    runs += [(args.compensated_stall, True, None)] if wired and args.compensated_stall else []
    runs += [(0, False, tracked)] if wired and args.tracked else []
    for stall, comp, track in runs:
        scale = n_all / len(cells)
        g_all = (gains_cost(size, fidelity) if comp and len(cells) < n_all else 0.0)
        tries = []
        for _ in range(args.runs):  # the same operations each time: the spread is the machine's
            r = session(size, fidelity, cells, "compiled", folder, stall=stall, compensate=comp,
                        tracked=track)
            g_run = r["gains"] if comp and len(cells) == n_all else g_all
            tries.append((r["per_op"] * r["ops"] * scale + r["map"] + g_run
                          + r["model"] * scale, g_run, r))
        tries.sort(key=lambda t: t[0])
        cpu_all, g_all, r = tries[len(tries) // 2]  # the median run
        per_op = r["per_op"]
        ops_all = r["ops"] * scale
        rule = ("compensated (circuit-model gains)" if comp else
                f"tracked (circuit model, device law, min width {args.min_width:g} s)" if track
                else "plain") + (f", stall rule N = {stall}" if stall else "")
        print(f"  {note}; {rule}:"
              + (f" {len(tries)} runs, whole array "
                 + ", ".join(f"{t[0]:.1f}" for t in tries) + " s CPU; the median run:"
                 if len(tries) > 1 else ""))
        print(f"    {r['ops']} operations ({r['ops'] / len(cells):.1f}/cell) + {r['maps']} read "
              f"map(s), {r['cpu']:.1f} s CPU ({r['wall']:.1f} s wall; the read maps "
              f"{r['map']:.1f} s"
              + (f", the gains {r['gains']:.1f} s" if comp else "")
              + (f", the circuit model {r['model']:.1f} s, {r['passes']} pass(es)" if track
                 else "")
              + f"), {1e6 * per_op:.0f} us/op without them; converged (on the read) "
              f"{_pct(r['converged'], r['cells'])}; true G within 1 % of target when the cell "
              f"finished {_pct(r['done_ok'], r['cells'])}, at the end (after the later cells' "
              f"disturb) {_pct(r['true_ok'], r['cells'])}; "
              + ("estimated (last map, de-embedded) in band " if track
                 else "final read map in band ")
              + _pct(r['read_ok'], r['cells'])
              + (f"; {r['stalled']} given up by the stall rule" if stall else ""))
        refs = [p for p in paths[1:] if p in best]
        if wired and track is not None and len(cells) < n_all:
            print("    whole array: run it with --full (a tracked sample does not project: its "
                  "maps and model cost do not scale with the cells)")
        elif wired:
            target = TARGETS[name]
            share = 100 * r["converged"] / r["cells"]
            true_share = 100 * r["true_ok"] / r["cells"]
            print(f"    whole array: {ops_all:.0f} operations, {cpu_all:.0f} s CPU"
                  + (f" (the gains of every cell {g_all:.1f} s included)" if comp else "")
                  + f" (target {target:.0f} s; {'met' if cpu_all <= target else 'NOT met'}) with "
                  f"converged {share:.1f} %, true G in band at the end {true_share:.1f} %"
                  + ("; the references at their cost per operation: "
                     + ", ".join(f"{ops_all * best[p] * 1e-6:.0f} s {p}" for p in refs)
                     + " (read maps not included)" if refs else ""))
        else:
            print(f"    {1e6 * (r['cpu'] / r['ops']):.1f} us/op CPU with engine and log, the final "
                  f"read map included ({1e6 * per_op:.1f} without it; target "
                  f"{1e6 * TARGETS[name]:.0f} us)"
                  + ("; the references at their cost per operation: "
                     + ", ".join(f"{ops_all * best[p] * 1e-6:.1f} s {p}" for p in refs)
                     if refs else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--sample", type=int, default=192, help="cells of a wired session")
    parser.add_argument("--full", action="store_true", help="wired cases on every cell")
    parser.add_argument("--ref-cells", type=int, default=12,
                        help="cells of the references (wired cases)")
    parser.add_argument("--ref-cells-ideal", type=int, default=256,
                        help="cells of the references (ideal case; the session's final read "
                             "map weighs on few cells)")
    parser.add_argument("--repeat", type=int, default=2, help="reference rounds (best of)")
    parser.add_argument("--stall", type=int, default=4,
                        help="also run wired samples with this stall rule (0: not)")
    parser.add_argument("--both-ends", action="store_true",
                        help="drive the rows and sense the columns at both ends")
    parser.add_argument("--runs", type=int, default=1,
                        help="run each session this many times (the median run is shown)")
    parser.add_argument("--compensated-stall", type=int, default=0,
                        help="also run the compensated session with this stall rule (0: not)")
    parser.add_argument("--compensate", action="store_true",
                        help="also run wired samples with the compensated write-verify")
    parser.add_argument("--tracked", action="store_true",
                        help="also run wired cases with the tracked write-verify")
    parser.add_argument("--min-width", type=float, default=None,
                        help="tracked: shortest pulse width (s; default: the params' width)")
    parser.add_argument("--passes", type=int, default=8, help="tracked: final passes at most")
    parser.add_argument("--plan-pulses", type=int, default=0,
                        help="tracked: pulses per cell its disturb plan follows (0: default)")
    parser.add_argument("--plan-rounds", type=int, default=0,
                        help="tracked: disturb plans per pass (0: default)")
    parser.add_argument("--drift-scale", type=float, default=0.0,
                        help="tracked: first pass's drift scale (0: default)")
    parser.add_argument("--skip-plain", action="store_true",
                        help="wired cases: only the runs asked for (not the plain one)")
    args = parser.parse_args(argv)
    global DRIVE
    DRIVE = "both" if args.both_ends else "start"
    load = os.getloadavg()
    print(f"write-verify bench: {os.cpu_count()} CPUs, load {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f}, numba {'on' if solver_kernels.AVAILABLE else 'missing'}, "
          "1 BLAS thread, CPU times")
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        for name in [n for n in CASES if n != "wires32"] if args.case == "all" else [args.case]:
            run_case(name, args, Path(tmp))
    load = os.getloadavg()
    print(f"\nload at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
