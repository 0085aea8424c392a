"""CPU time per single-cell operation on a wired array, this checkout against a reference
revision (default: where this branch left main) in the same run (issue 15).

Run: .venv/bin/python bench/bench_wired_ops.py [--reference REV] [--sizes 64 128]
     [--cells 12] [--per-cell 16] [--repeat 3]

Each side runs in its own subprocess (its own import of xbarlab: the reference is extracted
from git with `git archive`), one BLAS / numba thread on both sides, alternating sides for
`--repeat` rounds; the best round per side is shown. The operation stream is a write-verify
in miniature on a sample of cells: a grounded read at 0.2 V, then a V/2 pulse of 1 us whose
amplitude ramps by 0.02 V per pulse (SET from 1.1 V while the read is below a random target,
else RESET from -1.1 V), `--per-cell` times per cell. Arrays: 1 ohm segments, 10 ohm source
and sense, fidelity "wires" (devices at their small-signal conductance, the ideal I-V of the
wired circuit) and "nonlinear" (sinh I-V, Newton). Times are CPU seconds of the process
(time.process_time) around each read or pulse; the load average is printed.

Both sides also run the same stream with device noise off (no random draws: the states
must follow the same path) and the largest relative difference of their read and pulse
currents is printed: the cheaper path must give the same answers (to 1e-9). With sinh
devices that run also counts the compiled Newton's work per solve on each side (Newton
steps, CG iterations, residual evaluations; chain factorizations and chord steps where the
side counts them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}


def count_newton() -> dict[str, float]:
    """Totals of the compiled sinh Newton's work (`LineFactors.solve_sinh`: solves, Newton
    steps, CG iterations, residual evaluations; factorizations and chord steps where the
    side counts them), gathered from here on."""
    from xbarlab.sim import solver_case_kernels

    totals = {"solves": 0.0, "steps": 0.0, "cg": 0.0, "evals": 0.0}
    solve = getattr(solver_case_kernels.LineFactors, "solve_sinh", None)
    if solve is None:
        return totals

    def counted(self: Any, *args: Any, **kw: Any) -> Any:
        out = solve(self, *args, **kw)
        st = self.stats
        totals["solves"] += 1
        totals["steps"] += out[5]
        totals["cg"] += st[0]
        totals["evals"] += st[1] + 1  # + the start's evaluation
        if len(st) >= 5:
            totals["factors"] = totals.get("factors", 0.0) + st[3]
            totals["chord"] = totals.get("chord", 0.0) + st[4]
        return out

    solver_case_kernels.LineFactors.solve_sinh = counted  # type: ignore[method-assign]
    return totals


def op_stream(size: int, fidelity: str, cells: int, per_cell: int, noise: bool
              ) -> tuple[float, float, list[float]]:
    """(CPU s per read, CPU s per pulse, every read and pulse current) of the stream."""
    from threadpoolctl import threadpool_limits

    from xbarlab.config import SimConfig
    from xbarlab.crossbar import BiasScheme
    from xbarlab.sim.factory import build_sim_crossbar

    cfg = SimConfig(rows=size, cols=size, fidelity=fidelity,
                    r_wire_row=1.0, r_wire_col=1.0, r_source=10.0, r_sense=10.0, seed=1,
                    noise=noise)
    xbar = build_sim_crossbar(cfg)
    rng = np.random.default_rng(0)
    picks = [(int(a), int(b)) for a, b in rng.integers(0, size, (cells + 1, 2))]
    t_read = t_pulse = 0.0
    n_read = n_pulse = 0
    out: list[float] = []
    with threadpool_limits(limits=1):
        for k, cell in enumerate(picks):
            target = float(rng.uniform(100e-6, 500e-6))
            v_set, v_reset = 1.1, -1.1
            for _ in range(per_cell if k else 2):  # the first cell warms up (not timed)
                c0 = time.process_time()
                read = xbar.read([cell], 0.2, BiasScheme.GROUNDED)
                c1 = time.process_time()
                g = float(read.currents[0]) / 0.2
                if g < target:
                    v, v_set = v_set, min(v_set + 0.02, 2.1)
                else:
                    v, v_reset = v_reset, max(v_reset - 0.02, -2.4)
                c2 = time.process_time()
                pulse = xbar.pulse(cell, v, 1e-6, BiasScheme.HALF)
                c3 = time.process_time()
                if k:
                    t_read += c1 - c0
                    t_pulse += c3 - c2
                    n_read += 1
                    n_pulse += 1
                    out += [float(read.currents[0]), float(pulse.current)]
    return t_read / max(n_read, 1), t_pulse / max(n_pulse, 1), out


def worker(args: argparse.Namespace) -> None:
    read, pulse, _ = op_stream(args.size, args.fidelity, args.cells, args.per_cell, True)
    newton = count_newton() if args.check and args.fidelity == "nonlinear" else {}
    _, _, quiet = op_stream(args.size, args.fidelity, args.cells, args.per_cell, False) \
        if args.check else (0.0, 0.0, [])
    print(json.dumps({"read": read, "pulse": pulse, "quiet": quiet, "newton": newton}))


def newton_line(new: dict[str, float], ref: dict[str, float]) -> str:
    """Per-solve counts of the compiled sinh Newton on both sides."""
    names = {"steps": "Newton steps", "cg": "CG iterations", "evals": "residual evaluations",
             "factors": "factorizations", "chord": "chord steps"}
    parts = []
    for key, name in names.items():
        if key not in new:
            continue
        this = new[key] / new["solves"]
        was = f"{ref[key] / ref['solves']:.2f}" if ref.get("solves") and key in ref else "-"
        parts.append(f"{name} {this:.2f} / {was}")
    return ", ".join(parts)


def run_side(root: Path, size: int, fidelity: str, args: argparse.Namespace, check: bool
             ) -> dict[str, Any]:
    env = {**os.environ, **THREADS, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--size", str(size),
           "--fidelity", fidelity, "--cells", str(args.cells), "--per-cell",
           str(args.per_cell)] + (["--check"] if check else [])
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {root} side failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def extract(rev: str, into: Path) -> Path:
    """The reference revision's `xbarlab` package, extracted from git into `into`."""
    tar = into / "ref.tar"
    with tar.open("wb") as fh:
        done = subprocess.run(["git", "archive", rev, "xbarlab", "data"], cwd=ROOT, stdout=fh,
                              stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cannot extract revision {rev!r}: {done.stderr.decode().strip()}")
    with tarfile.open(tar) as tf:
        tf.extractall(into / "ref", filter="data")
    return into / "ref"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reference", default=None,
                        help="git revision of today's path (default: merge-base with main)")
    parser.add_argument("--this", type=Path, default=ROOT,
                        help="folder whose xbarlab is timed as the new side (default: this "
                             "checkout; e.g. a `git archive` snapshot while editing)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--fidelities", nargs="+", default=["wires", "nonlinear"])
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--per-cell", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--fidelity", default="wires", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    rev = args.reference or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True,
        check=False).stdout.strip() or "main"
    load = os.getloadavg()
    print(f"wired single-cell operations: this checkout vs {rev[:12]}, {os.cpu_count()} CPUs, "
          f"load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, 1 BLAS / numba thread, "
          f"CPU us per operation (best of {args.repeat} rounds, sides alternated)")
    with tempfile.TemporaryDirectory() as tmp:
        ref_root = extract(rev, Path(tmp))
        for size in args.sizes:
            for fidelity in args.fidelities:
                best = {"new": [np.inf, np.inf], "ref": [np.inf, np.inf]}
                quiet: dict[str, list[float]] = {}
                newton: dict[str, dict[str, float]] = {}
                for k in range(args.repeat):
                    for side, root in (("ref", ref_root), ("new", args.this)):
                        r = run_side(root, size, fidelity, args, check=k == 0)
                        best[side] = [min(best[side][0], r["read"]),
                                      min(best[side][1], r["pulse"])]
                        if k == 0:
                            quiet[side] = r["quiet"]
                            newton[side] = r.get("newton", {})
                a, b = np.array(quiet["new"]), np.array(quiet["ref"])
                diff = float(np.max(np.abs(a - b) / np.abs(b)))
                law = "sinh I-V" if fidelity == "nonlinear" else "ideal I-V"
                (nr, np_), (rr, rp) = best["new"], best["ref"]
                print(f"{size} x {size} {law:<9}: read {1e6 * nr:7.0f} us (was {1e6 * rr:7.0f}, "
                      f"{rr / nr:4.1f}x)  pulse {1e6 * np_:7.0f} us (was {1e6 * rp:7.0f}, "
                      f"{rp / np_:4.1f}x)  | noise off: {len(a)} currents, largest relative "
                      f"difference {diff:.1e}")
                if newton.get("new", {}).get("solves"):
                    print("    sinh Newton per solve (noise off), this / reference: "
                          + newton_line(newton["new"], newton.get("ref", {})))
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
